// Command plexus-nodeipam-controller is Plexus's Node IPAM controller: it gives
// LoadBalancer Services of class io.cilium/node (and, with
// --default-lb-service-ipam=nodeipam, those without a class) their nodes'
// addresses, for clusters where neither L2 announcements nor BGP can make a
// pool address reachable.
package main

import (
	"flag"
	"fmt"

	"github.com/plexus-net/plexus/controllers/nodeipam/planner"
	"github.com/plexus-net/plexus/controllers/nodeipam/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags       operator.Flags
		defaultIPAM string
	)
	flags.Bind(flag.CommandLine, "nodeipam")
	flag.StringVar(&defaultIPAM, "default-lb-service-ipam", "lbipam", `who serves LoadBalancer Services without spec.loadBalancerClass: "nodeipam" (this controller), or "lbipam" or "none" (not this controller)`)
	flag.Parse()

	switch defaultIPAM {
	case "lbipam", "nodeipam", "none":
	default:
		operator.Fatal(fmt.Errorf("--default-lb-service-ipam=%q: want lbipam, nodeipam or none", defaultIPAM), "bad flag")
	}
	scheme, err := operator.NewScheme()
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("nodeipam", &flags, scheme, reconciler.TrimEndpointSlices)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	r := &reconciler.Reconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("plexus-nodeipam"),
		Config:   planner.Config{ServeClassless: defaultIPAM == "nodeipam"},
		Passes:   flags.Passes,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the Node IPAM controller")
	}
	operator.Run(mgr)
}
