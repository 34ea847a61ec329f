package l2announce

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"

	"github.com/plexus-net/plexus/internal/arpresponder"
	"github.com/plexus-net/plexus/internal/heartbeat"
)

// Flags binds an announcer's settings to command-line flags; the egress
// gateway plugin, which moves its addresses the same way, has the same ones.
type Flags struct {
	Config
	address string
}

// Bind registers the flags on fs; port is the default heartbeat port (each
// plugin has its own, so both can run on one node).
func (f *Flags) Bind(fs *flag.FlagSet, port int) {
	fs.StringVar(&f.NodeName, "node-name", "", "this node's name: the object it reads (required)")
	fs.StringVar(&f.address, "address", "", "this node's address for heartbeats (default: its own entry in the spec's peers)")
	fs.IntVar(&f.HeartbeatPort, "heartbeat-port", port, "UDP port of the heartbeats, the same on every node")
	fs.DurationVar(&f.HeartbeatInterval, "heartbeat-interval", heartbeat.DefaultInterval, "interval between heartbeats to each peer")
	fs.DurationVar(&f.DeadAfter, "dead-after", heartbeat.DefaultDeadAfter, "a peer not heard for this long is dead and its addresses move (more than 2 × --heartbeat-interval)")
	fs.DurationVar(&f.RejoinAfter, "rejoin-after", heartbeat.DefaultRejoinAfter, "a peer (or this node, after a start) counts as alive only once heard continuously for this long, so a flapping node does not move addresses back and forth")
	fs.DurationVar(&f.GARPInterval, "garp-interval", arpresponder.DefaultGARPInterval, "interval between gratuitous ARPs for each address while this node holds it")
}

// Parsed checks the flags (errors name the flag) and returns the Config.
func (f *Flags) Parsed() (Config, error) {
	cfg := f.Config
	switch {
	case cfg.NodeName == "":
		return cfg, errors.New("--node-name is required")
	case cfg.HeartbeatPort <= 0 || cfg.HeartbeatPort > 65535:
		return cfg, fmt.Errorf("--heartbeat-port=%d: want 1 to 65535", cfg.HeartbeatPort)
	case cfg.HeartbeatInterval <= 0:
		return cfg, fmt.Errorf("--heartbeat-interval=%v: want a positive duration", cfg.HeartbeatInterval)
	case cfg.DeadAfter <= 2*cfg.HeartbeatInterval:
		return cfg, fmt.Errorf("--dead-after=%v: must be more than 2 × --heartbeat-interval (%v), or one lost heartbeat moves addresses", cfg.DeadAfter, cfg.HeartbeatInterval)
	case cfg.RejoinAfter < 0:
		return cfg, fmt.Errorf("--rejoin-after=%v: want zero or more", cfg.RejoinAfter)
	case cfg.GARPInterval <= 0:
		return cfg, fmt.Errorf("--garp-interval=%v: want a positive duration", cfg.GARPInterval)
	}
	if f.address != "" {
		ip, err := netip.ParseAddr(f.address)
		if err != nil {
			return cfg, fmt.Errorf("--address=%q: %w", f.address, err)
		}
		cfg.Address = ip
	}
	return cfg, nil
}
