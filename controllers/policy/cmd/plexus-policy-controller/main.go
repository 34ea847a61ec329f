// Command plexus-policy-controller is Plexus's network policy controller:
// it compiles CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies and
// Kubernetes NetworkPolicies against the cluster's identities into one
// NodePolicy per node, and reports in each policy's status whether it is
// valid and enforced.
package main

import (
	"errors"
	"flag"
	"strings"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/policy/compiler"
	"github.com/plexus-net/plexus/controllers/policy/reconciler"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags        operator.Flags
		cluster      string
		clusterID    uint
		labels       string
		mode         string
		hostFirewall bool
	)
	flags.Bind(flag.CommandLine, "policy")
	flag.StringVar(&cluster, "cluster-name", "default", "the cluster's name; must be the identity controller's")
	flag.UintVar(&clusterID, "cluster-id", 0, "the cluster's ID (0–255); must be the identity controller's")
	flag.StringVar(&labels, "labels", "", "label rules added to the defaults (Cilium's --labels syntax); must be the identity controller's, or pods do not find their identities")
	flag.StringVar(&mode, "policy-enforcement-mode", string(compiler.ModeDefault), "default (enforce a direction once a policy selects the pod in it), always (enforce every pod) or never (enforce nothing)")
	flag.BoolVar(&hostFirewall, "host-firewall", false, "enforce policies with a nodeSelector on the nodes themselves")
	flag.Parse()

	filter, err := identity.NewFilter(strings.Fields(labels))
	if err != nil {
		operator.Fatal(err, "parsing --labels")
	}
	r, err := identity.RangeOf(uint32(clusterID))
	if err != nil {
		operator.Fatal(err, "checking --cluster-id")
	}
	if cluster == "" {
		operator.Fatal(errors.New("--cluster-name is empty"), "checking flags")
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("policy", &flags, scheme, operator.TrimPods)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	rec := &reconciler.Reconciler{
		Client:       mgr.GetClient(),
		Recorder:     mgr.GetEventRecorder("plexus-policy"),
		Passes:       flags.Passes,
		Filter:       filter,
		Cluster:      cluster,
		Range:        r,
		Mode:         compiler.Mode(mode),
		HostFirewall: hostFirewall,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the policy controller")
	}
	operator.Run(mgr)
}
