// Command plexus-identity-controller is Plexus's security identity
// controller: it gives every set of security-relevant pod labels a number,
// stored as a CiliumIdentity, and deletes the numbers no pod has carried
// for the grace period.
package main

import (
	"errors"
	"flag"
	"time"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/identity/reconciler"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/operator"
)

func main() {
	var (
		flags operator.Flags
		idf   identity.Flags
		grace time.Duration
	)
	flags.Bind(flag.CommandLine, "identity")
	idf.Bind(flag.CommandLine)
	flag.DurationVar(&grace, "gc-grace", 30*time.Minute, "how long an identity stays after the last pod with its labels is gone")
	flag.Parse()

	settings, err := idf.Settings()
	if err != nil {
		operator.Fatal(err, "checking the identity flags")
	}
	if grace < 0 {
		operator.Fatal(errors.New("--gc-grace is negative"), "checking flags")
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
		Settings: settings,
		Grace:    grace,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the identity controller")
	}
	operator.Run(mgr)
}
