// Command l2announcer is Plexus's L2 announcements controller: it turns
// CiliumL2AnnouncementPolicies into one L2Announcement per candidate node and
// reports on each Service which node answers ARP for its addresses.
package main

import (
	"flag"
	"time"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/l2announcer/controller"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags        operator.Flags
		workers      int
		passInterval time.Duration
	)
	flags.Bind(flag.CommandLine, "l2announcer")
	flag.IntVar(&workers, "workers", 16, "API writes in flight at once")
	flag.DurationVar(&passInterval, "min-pass-interval", 100*time.Millisecond, "least time between two passes while events keep coming")
	flag.Parse()

	scheme, err := operator.NewScheme(ciliumv2alpha1.AddToScheme, nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("l2announcer", &flags, scheme)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	r := &controller.Reconciler{
		Client:          mgr.GetClient(),
		Recorder:        mgr.GetEventRecorder("plexus-l2announcer"),
		Workers:         workers,
		MinPassInterval: passInterval,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the L2 announcer controller")
	}
	operator.Run(mgr)
}
