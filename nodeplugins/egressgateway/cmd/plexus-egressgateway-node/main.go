// Command plexus-egressgateway-node is the egress gateway node plugin: run on
// every node in the node's network namespace, it steers the local pods'
// traffic that a CiliumEgressGatewayPolicy selects to its gateway and, on
// gateway candidates, holds the floating egress IP while it is the first
// live candidate and translates the traffic to it. It reads only its node's
// Egress object and reports what it does in its status.
package main

import (
	"flag"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/egressgateway"
	"github.com/plexus-net/plexus/nodeplugins/egressgateway/kernel"
)

// DefaultHeartbeatPort is next to the L2 announcer's, so both run on a node.
const DefaultHeartbeatPort = 7948

func main() {
	var (
		af          l2announce.Flags
		flags       nodeplugin.Flags
		clearOnStop bool
	)
	af.Bind(flag.CommandLine, DefaultHeartbeatPort)
	flags.Bind(flag.CommandLine)
	flag.BoolVar(&clearOnStop, "clear-on-stop", false, "remove the steering and translation rules when stopping (default: keep them, so traffic flows while the plugin restarts)")
	flag.Parse()
	log := flags.Logger("egressgateway")

	ann, err := af.Parsed()
	if err != nil {
		operator.Fatal(err, "bad flags")
	}
	k, err := kernel.New()
	if err != nil {
		operator.Fatal(err, "opening the datapath")
	}
	agent, err := egressgateway.New(egressgateway.Config{Announcer: ann, Datapath: k, ClearOnStop: clearOnStop, Log: log.WithName("agent")})
	if err != nil {
		operator.Fatal(err, "creating the agent")
	}
	scheme, err := operator.NewScheme(nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := nodeplugin.NewManager(&flags, scheme, nodeplugin.OwnObject(&nodesv1alpha1.Egress{}, ann.NodeName))
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	p := &egressgateway.Plugin{Client: mgr.GetClient(), NodeName: ann.NodeName, Agent: agent}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	operator.Run(mgr)
}
