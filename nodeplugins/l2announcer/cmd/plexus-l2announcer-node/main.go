// Command plexus-l2announcer-node is the L2 announcement node plugin: run on every
// node that may announce LoadBalancer addresses, in the node's network
// namespace, it answers ARP for the addresses of its L2Announcement whose
// first live candidate is this node, learning who is alive from heartbeats
// the nodes exchange directly, and reports what it announces in status.
package main

import (
	"flag"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/heartbeat"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/l2announcer"
)

func main() {
	var (
		af    l2announce.Flags
		flags nodeplugin.Flags
	)
	af.Bind(flag.CommandLine, heartbeat.DefaultPort)
	flags.Bind(flag.CommandLine)
	flag.Parse()
	log := flags.Logger("l2announcer")

	cfg, err := af.Parsed()
	if err != nil {
		operator.Fatal(err, "bad flags")
	}
	cfg.Log = log.WithName("announcer")
	if cfg.RejoinAfter < cfg.DeadAfter {
		cfg.Log.Info("warning: --rejoin-after is shorter than --dead-after: a flapping node may move addresses back and forth",
			"rejoinAfter", cfg.RejoinAfter, "deadAfter", cfg.DeadAfter)
	}
	scheme, err := operator.NewScheme(nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := nodeplugin.NewManager(&flags, scheme, nodeplugin.OwnObject(&nodesv1alpha1.L2Announcement{}, cfg.NodeName))
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	a, err := l2announce.New(cfg)
	if err != nil {
		operator.Fatal(err, "creating the announcer")
	}
	if err := l2announce.RegisterMetrics(a); err != nil {
		operator.Fatal(err, "registering metrics")
	}
	p := &l2announcer.Plugin{Client: mgr.GetClient(), NodeName: cfg.NodeName, Announcer: a}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	operator.Run(mgr)
}
