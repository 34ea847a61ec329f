package main

import (
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/nodeplugins/l2announcer"
)

func TestA17_ValidateNamesTheFlag(t *testing.T) {
	good := func() l2announcer.Config {
		return l2announcer.Config{NodeName: "n1", HeartbeatPort: 7947, HeartbeatInterval: 100 * time.Millisecond,
			DeadAfter: 400 * time.Millisecond, RejoinAfter: time.Second, GARPInterval: 10 * time.Second}
	}
	c := good()
	if err := validate(&c, "198.18.0.1"); err != nil || c.Address.String() != "198.18.0.1" {
		t.Fatalf("defaults: %v, address %v", err, c.Address)
	}
	for flag, bad := range map[string]func(*l2announcer.Config) string{
		"--node-name":          func(c *l2announcer.Config) string { c.NodeName = ""; return "" },
		"--dead-after":         func(c *l2announcer.Config) string { c.DeadAfter = 200 * time.Millisecond; return "" },
		"--heartbeat-interval": func(c *l2announcer.Config) string { c.HeartbeatInterval = 0; return "" },
		"--heartbeat-port":     func(c *l2announcer.Config) string { c.HeartbeatPort = 0; return "" },
		"--rejoin-after":       func(c *l2announcer.Config) string { c.RejoinAfter = -time.Second; return "" },
		"--garp-interval":      func(c *l2announcer.Config) string { c.GARPInterval = 0; return "" },
		"--address":            func(c *l2announcer.Config) string { return "not-an-ip" },
	} {
		c := good()
		err := validate(&c, bad(&c))
		if err == nil || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("%s: error %v, want one naming the flag", flag, err)
		}
	}
}
