package l2announce

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Bind(fs, 7947)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.Parsed()
}

// A17: bad settings are refused with an error that names the flag.
func TestA17_FlagsNameTheFlag(t *testing.T) {
	c, err := parse(t, "--node-name=n1", "--address=198.18.0.1")
	if err != nil || c.Address.String() != "198.18.0.1" || c.DeadAfter != 400*time.Millisecond || c.HeartbeatPort != 7947 {
		t.Fatalf("defaults: %v, %+v", err, c)
	}
	for flagName, args := range map[string][]string{
		"--node-name":          {},
		"--dead-after":         {"--node-name=n1", "--dead-after=200ms"},
		"--heartbeat-interval": {"--node-name=n1", "--heartbeat-interval=0s"},
		"--heartbeat-port":     {"--node-name=n1", "--heartbeat-port=0"},
		"--rejoin-after":       {"--node-name=n1", "--rejoin-after=-1s"},
		"--garp-interval":      {"--node-name=n1", "--garp-interval=0s"},
		"--address":            {"--node-name=n1", "--address=not-an-ip"},
	} {
		_, err := parse(t, args...)
		if err == nil || !strings.HasPrefix(err.Error(), flagName) {
			t.Errorf("%s: error %v, want one naming the flag", flagName, err)
		}
	}
}
