// Command plexus-egressgateway-controller is Plexus's egress gateway controller: it turns
// CiliumEgressGatewayPolicies into one Egress object per node (the local
// pods it steers to a gateway, the gateways it is a candidate for) and
// reports on each policy which node is the active gateway.
package main

import (
	"flag"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/egressgateway/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags operator.Flags
	)
	flags.Bind(flag.CommandLine, "egressgateway")
	flag.Parse()

	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("egressgateway", &flags, scheme, operator.TrimPods)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	r := &reconciler.Reconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("plexus-egressgateway"),
		Passes:   flags.Passes,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the egress gateway controller")
	}
	operator.Run(mgr)
}
