// Command plexus-l2announcer-controller is Plexus's L2 announcements controller: it turns
// CiliumL2AnnouncementPolicies into one L2Announcement per candidate node and
// reports on each Service which node answers ARP for its addresses.
package main

import (
	"flag"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/l2announcer/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags operator.Flags
	)
	flags.Bind(flag.CommandLine, "l2announcer")
	flag.Parse()

	scheme, err := operator.NewScheme(ciliumv2alpha1.AddToScheme, nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("l2announcer", &flags, scheme)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	r := &reconciler.Reconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("plexus-l2announcer"),
		Passes:   flags.Passes,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the L2 announcer controller")
	}
	operator.Run(mgr)
}
