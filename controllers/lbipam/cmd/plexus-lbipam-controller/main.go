// Command plexus-lbipam-controller is Plexus's LB-IPAM controller: it hands out addresses from
// CiliumLoadBalancerIPPools to Services of type LoadBalancer.
package main

import (
	"flag"
	"fmt"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
	"github.com/plexus-net/plexus/controllers/lbipam/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags       operator.Flags
		families    allocator.Config
		defaultIPAM string
		allocEvents bool
	)
	flags.Bind(flag.CommandLine, "lbipam")
	flag.BoolVar(&families.IPv4Enabled, "enable-ipv4", true, "allocate IPv4 addresses")
	flag.BoolVar(&families.IPv6Enabled, "enable-ipv6", false, "allocate IPv6 addresses (for dual-stack and IPv6 Services)")
	flag.StringVar(&defaultIPAM, "default-lb-service-ipam", "lbipam", `who serves LoadBalancer Services without spec.loadBalancerClass: "lbipam" (this controller), "nodeipam" or "none" (not this controller)`)
	flag.IntVar(&flags.Passes.Workers, "status-workers", 16, "deprecated: use --workers")
	flag.BoolVar(&allocEvents, "allocation-events", true, "emit a Normal IPAllocated Event when a Service's addresses change (warnings are always emitted); off, a burst of new Services costs one API write each instead of two")
	flag.Parse()

	switch defaultIPAM {
	case "lbipam", "nodeipam", "none":
	default:
		operator.Fatal(fmt.Errorf("--default-lb-service-ipam=%q: want lbipam, nodeipam or none", defaultIPAM), "bad flag")
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("lbipam", &flags, scheme)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	r := &reconciler.Reconciler{
		Client:           mgr.GetClient(),
		Recorder:         mgr.GetEventRecorder("plexus-lbipam"),
		Families:         families,
		ServeClassless:   defaultIPAM == "lbipam",
		Passes:           flags.Passes,
		AllocationEvents: allocEvents,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the LB-IPAM controller")
	}
	operator.Run(mgr)
}
