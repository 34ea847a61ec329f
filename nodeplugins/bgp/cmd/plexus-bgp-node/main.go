// Command plexus-bgp-node is the BGP node plugin: run on every node in the
// node's network namespace, it runs GoBGP in process and peers as its
// node's CiliumBGPNodeConfig (or a legacy CiliumBGPPeeringPolicy) says,
// advertising the routes the referenced CiliumBGPAdvertisements select, and
// reports sessions and routes in the NodeConfig's status.
//
// Stopping it closes no session: the TCP connections just end, so a peer
// with graceful restart keeps the routes until the plugin is back.
package main

import (
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/bgp"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/nodeplugins/bgp/speaker"
)

// subsys tags the logs as the seed system's agent tags its BGP logs (B67).
const subsys = "bgp-control-plane"

func main() {
	var (
		flags  nodeplugin.Flags
		cfg    bgp.Config
		device string
	)
	flags.Bind(flag.CommandLine)
	flag.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	flag.StringVar(&cfg.IPAMMode, "ipam-mode", desired.IPAMClusterPool, "the cluster's IPAM mode: cluster-pool, kubernetes or multi-pool (which pod CIDRs a PodCIDR or CiliumPodIPPool advertisement finds)")
	flag.BoolVar(&cfg.IPv4, "enable-ipv4", true, "the node runs IPv4: IPv4 routes may be advertised")
	flag.BoolVar(&cfg.IPv6, "enable-ipv6", false, "the node runs IPv6: IPv6 routes may be advertised")
	flag.StringVar(&cfg.SecretNamespace, "secret-namespace", "kube-system", "the only namespace auth Secrets (CiliumBGPPeerConfig authSecretRef) are read from")
	flag.StringVar(&device, "device", "eth0", "the node's underlay device: on a node without an IPv4 InternalIP, the router ID is the low 32 bits of its MAC address")
	flag.BoolVar(&cfg.StatusReport, "status-report", true, "write sessions and routes into the CiliumBGPNodeConfig status; false clears it")
	flag.IntVar(&cfg.RouteLimit, "status-route-limit", 100, "routes listed per instance and per peer in status (counts are always complete)")
	flag.DurationVar(&cfg.StatusInterval, "status-interval", 0, "how often route counts are refreshed in status (session changes are written at once); 0 means 10s")
	flag.Parse()
	log := flags.Logger("bgp").WithValues("subsys", subsys)
	ctrl.SetLogger(log) // controller-runtime's own lines are tagged too
	if cfg.NodeName == "" {
		operator.Fatal(nil, "--node-name (or $NODE_NAME) is required")
	}
	if cfg.RouteLimit < 0 || cfg.RouteLimit > 1000 {
		operator.Fatal(nil, "--status-route-limit must be between 0 and 1000")
	}
	if id, err := bgp.DeviceRouterID(device); err == nil {
		cfg.DerivedRouterID = id
	} else {
		log.Info("no router ID can be derived for IPv6-only use; instances need a routerID or an IPv4 InternalIP", "reason", err.Error())
	}
	scheme, err := operator.NewScheme(v2.AddToScheme, v2alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := nodeplugin.NewManager(&flags, scheme, bgp.CacheOptions(cfg))
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	sp := speaker.New(log.WithName("speaker"))
	defer sp.Stop()
	p := &bgp.Plugin{Client: mgr.GetClient(), Config: cfg, Speaker: sp, Log: log}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	operator.Run(mgr)
}
