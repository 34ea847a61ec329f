// Command plexus-bgp-controller is Plexus's BGP control-plane controller: it turns
// CiliumBGPClusterConfigs (with the nodes' CiliumBGPNodeConfigOverrides)
// into one CiliumBGPNodeConfig per selected node, which the node's BGP
// agent peers from, and reports on the cluster and peer configs whether
// they apply and how many of their sessions are established.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/bgp/planner"
	"github.com/plexus-net/plexus/controllers/bgp/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
)

// subsys tags the controller's logs as the seed system's operator tags its
// BGP logs (B67).
const subsys = "bgp-cp-operator"

func main() {
	var (
		flags           operator.Flags
		secretNamespace string
		routerIDMode    string
		routerIDPool    string
	)
	flags.Bind(flag.CommandLine, "bgp")
	flag.StringVar(&secretNamespace, "secret-namespace", "kube-system", "namespace of the Secrets that CiliumBGPPeerConfig authSecretRef names (the only namespace whose Secrets are read)")
	flag.StringVar(&routerIDMode, "router-id-mode", planner.RouterIDDefault, "router ID allocation: \"default\" (the node's IPv4 InternalIP; IPv6-only nodes derive one themselves) or \"ip-pool\" (unique addresses from --router-id-pool, kept across restarts)")
	flag.StringVar(&routerIDPool, "router-id-pool", "", "IPv4 CIDR (e.g. 10.0.0.0/24) router IDs are taken from in ip-pool mode")
	flag.Parse()

	r := &reconciler.Reconciler{
		SecretNamespace: secretNamespace,
		RouterIDMode:    routerIDMode,
		Passes:          flags.Passes,
	}
	// Flag errors go to stderr as the flag package's own do: the logger
	// exists only with the manager.
	if routerIDPool != "" {
		pool, err := netip.ParsePrefix(routerIDPool)
		if err != nil {
			usage("--router-id-pool: %v", err)
		}
		r.RouterIDPool = pool
	}
	if err := r.Validate(); err != nil {
		usage("--router-id-mode/--router-id-pool: %v", err)
	}

	scheme, err := operator.NewScheme(ciliumv2.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("bgp", &flags, scheme, reconciler.CacheOptions(secretNamespace), func(o *ctrl.Options) {
		o.Logger = ctrl.Log.WithValues("subsys", subsys)
	})
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	r.Client = mgr.GetClient()
	r.Recorder = mgr.GetEventRecorder("plexus-bgp")
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the BGP controller")
	}
	operator.Run(mgr)
}

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
