// Command plexus-policy-controller is Plexus's network policy controller:
// it compiles CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies and
// Kubernetes NetworkPolicies against the cluster's identities into one
// NodePolicy per node, and reports in each policy's status whether it is
// valid and enforced.
package main

import (
	"flag"

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
		idf          identity.Flags
		mode         string
		hostFirewall bool
	)
	flags.Bind(flag.CommandLine, "policy")
	idf.Bind(flag.CommandLine)
	flag.StringVar(&mode, "policy-enforcement-mode", string(compiler.ModeDefault), "default (enforce a direction once a policy selects the pod in it), always (enforce every pod) or never (enforce nothing)")
	flag.BoolVar(&hostFirewall, "host-firewall", false, "enforce policies with a nodeSelector on the nodes themselves")
	flag.Parse()

	settings, err := idf.Settings()
	if err != nil {
		operator.Fatal(err, "checking the identity flags")
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
		Settings:     settings,
		Mode:         compiler.Mode(mode),
		HostFirewall: hostFirewall,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the policy controller")
	}
	operator.Run(mgr)
}
