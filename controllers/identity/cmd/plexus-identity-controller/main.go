// Command plexus-identity-controller is Plexus's security identity
// controller: it gives every set of security-relevant pod labels a number,
// stored as a CiliumIdentity, and deletes the numbers no pod has carried
// for the grace period.
package main

import (
	"errors"
	"flag"
	"strings"
	"time"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/identity/reconciler"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags     operator.Flags
		cluster   string
		clusterID uint
		grace     time.Duration
		labels    string
	)
	flags.Bind(flag.CommandLine, "identity")
	flag.StringVar(&cluster, "cluster-name", "default", "the cluster's name, in every identity as the label io.cilium.k8s.policy.cluster")
	flag.UintVar(&clusterID, "cluster-id", 0, "the cluster's ID (0–255), the high bits of its identities' numbers; unique per cluster in a Cluster Mesh")
	flag.DurationVar(&grace, "gc-grace", 30*time.Minute, "how long an identity stays after the last pod with its labels is gone")
	flag.StringVar(&labels, "labels", "", "label rules added to the defaults, space-separated, Cilium's --labels syntax: [source:]regexp includes, [source:]!regexp excludes; with an including rule only included labels count")
	flag.Parse()

	filter, err := identity.NewFilter(strings.Fields(labels))
	if err != nil {
		operator.Fatal(err, "parsing --labels")
	}
	r, err := identity.RangeOf(uint32(clusterID))
	if err != nil {
		operator.Fatal(err, "checking --cluster-id")
	}
	if cluster == "" || grace < 0 {
		operator.Fatal(errors.New("--cluster-name is empty or --gc-grace negative"), "checking flags")
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("identity", &flags, scheme, operator.TrimPods)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	rec := &reconciler.Reconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("plexus-identity"),
		Passes:   flags.Passes,
		Filter:   filter,
		Cluster:  cluster,
		Range:    r,
		Grace:    grace,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the identity controller")
	}
	operator.Run(mgr)
}
