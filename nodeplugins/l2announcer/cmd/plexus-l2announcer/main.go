// Command plexus-l2announcer is the L2 announcement node plugin: run on every
// node that may announce LoadBalancer addresses, in the node's network
// namespace, it answers ARP for the addresses of its L2Announcement whose
// first live candidate is this node, learning who is alive from heartbeats
// the nodes exchange directly, and reports what it announces in status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/arpresponder"
	"github.com/plexus-net/plexus/internal/heartbeat"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/l2announcer"
)

func main() {
	var (
		cfg          l2announcer.Config
		address      string
		metricsAddr  string
		probeAddr    string
		kubeAPIQPS   float64
		kubeAPIBurst int
		logOpts      zap.Options
	)
	// --kubeconfig is registered by controller-runtime's config package.
	flag.StringVar(&cfg.NodeName, "node-name", "", "this node's name: the L2Announcement it reads (required)")
	flag.StringVar(&address, "address", "", "this node's address for heartbeats (default: its own entry in the L2Announcement's spec.peers)")
	flag.IntVar(&cfg.HeartbeatPort, "heartbeat-port", heartbeat.DefaultPort, "UDP port of the heartbeats, the same on every node")
	flag.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", heartbeat.DefaultInterval, "interval between heartbeats to each peer")
	flag.DurationVar(&cfg.DeadAfter, "dead-after", heartbeat.DefaultDeadAfter, "a peer not heard for this long is dead and its addresses move (more than 2 × --heartbeat-interval)")
	flag.DurationVar(&cfg.RejoinAfter, "rejoin-after", heartbeat.DefaultRejoinAfter, "a peer (or this node, after a start) counts as alive only once heard continuously for this long, so a flapping node does not move addresses back and forth")
	flag.DurationVar(&cfg.GARPInterval, "garp-interval", arpresponder.DefaultGARPInterval, "interval between gratuitous ARPs for each address while this node holds it")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "address of the Prometheus metrics endpoint (/metrics); \"0\" turns it off")
	flag.StringVar(&probeAddr, "health-probe-bind-address", "0", "address of the /healthz and /readyz probes; \"0\" turns them off")
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 20, "client-side limit of API requests per second")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 40, "burst above --kube-api-qps")
	logOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&logOpts)).WithName("l2announcer"))

	if err := validate(&cfg, address); err != nil {
		operator.Fatal(err, "bad flags")
	}
	cfg.Log = ctrl.Log.WithName("announcer")
	if cfg.RejoinAfter < cfg.DeadAfter {
		cfg.Log.Info("warning: --rejoin-after is shorter than --dead-after: a flapping node may move addresses back and forth",
			"rejoinAfter", cfg.RejoinAfter, "deadAfter", cfg.DeadAfter)
	}

	scheme, err := operator.NewScheme(nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		operator.Fatal(err, "no Kubernetes configuration")
	}
	restCfg.QPS, restCfg.Burst = float32(kubeAPIQPS), kubeAPIBurst
	// One instance per node, each acting on its own node: no leader.
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  l2announcer.CacheOptions(cfg.NodeName),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
	})
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	if probeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			operator.Fatal(err, "adding the health check")
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			operator.Fatal(err, "adding the readiness check")
		}
	}
	a, err := l2announcer.New(cfg)
	if err != nil {
		operator.Fatal(err, "creating the announcer")
	}
	if err := l2announcer.RegisterMetrics(a); err != nil {
		operator.Fatal(err, "registering metrics")
	}
	p := &l2announcer.Plugin{Client: mgr.GetClient(), NodeName: cfg.NodeName, Announcer: a}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	operator.Run(mgr)
}

// validate checks the flags; errors name the flag.
func validate(cfg *l2announcer.Config, address string) error {
	switch {
	case cfg.NodeName == "":
		return errors.New("--node-name is required")
	case cfg.HeartbeatPort <= 0 || cfg.HeartbeatPort > 65535:
		return fmt.Errorf("--heartbeat-port=%d: want 1 to 65535", cfg.HeartbeatPort)
	case cfg.HeartbeatInterval <= 0:
		return fmt.Errorf("--heartbeat-interval=%v: want a positive duration", cfg.HeartbeatInterval)
	case cfg.DeadAfter <= 2*cfg.HeartbeatInterval:
		return fmt.Errorf("--dead-after=%v: must be more than 2 × --heartbeat-interval (%v), or one lost heartbeat moves addresses", cfg.DeadAfter, cfg.HeartbeatInterval)
	case cfg.RejoinAfter < 0:
		return fmt.Errorf("--rejoin-after=%v: want zero or more", cfg.RejoinAfter)
	case cfg.GARPInterval <= 0:
		return fmt.Errorf("--garp-interval=%v: want a positive duration", cfg.GARPInterval)
	}
	if address != "" {
		ip, err := netip.ParseAddr(address)
		if err != nil {
			return fmt.Errorf("--address=%q: %v", address, err)
		}
		cfg.Address = ip
	}
	return nil
}
