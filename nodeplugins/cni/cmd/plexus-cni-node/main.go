// Command plexus-cni-node is the node daemon of Plexus pod IPAM: it hands
// out pod addresses to the plexus-cni plugin over a unix socket, from the
// CIDRs of its node's CiliumNode. Run one per node (a DaemonSet).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/cni/agent"
	"github.com/plexus-net/plexus/nodeplugins/cni/client"
)

// poolCounts is a --pre-allocate value: pool=N,pool=N.
type poolCounts map[string]int

func (p poolCounts) String() string {
	var parts []string
	for k, v := range p {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	return strings.Join(parts, ",")
}

func (p poolCounts) Set(s string) error {
	clear(p)
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, num, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(num)
		if !ok || name == "" || err != nil || n < 0 {
			return fmt.Errorf("%q is not pool=N with N ≥ 0", part)
		}
		p[name] = n
	}
	return nil
}

func main() {
	cfg := agent.Config{PreAllocate: poolCounts{"default": 8}}
	var mode, metricsAddr, probeAddr string
	var logOpts zap.Options
	fs := flag.CommandLine
	fs.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "name of this node (its CiliumNode); required (default $NODE_NAME)")
	fs.StringVar(&cfg.SocketPath, "socket", client.DefaultSocket, "unix socket the CNI plugin talks to")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/plexus/cni", "directory that keeps the allocations across restarts")
	fs.StringVar(&mode, "ipam-mode", string(agent.ModeClusterPool), "IPAM mode of the cluster: cluster-pool, multi-pool, kubernetes or crd")
	fs.DurationVar(&cfg.UsedUpdateInterval, "ipam-cilium-node-update-rate", 15*time.Second, "crd mode: least time between two writes of the CiliumNode's status.ipam.used")
	fs.Var(poolCounts(cfg.PreAllocate), "pre-allocate", "multi-pool: addresses per family to hold ahead of need, as pool=N[,pool=N]")
	fs.DurationVar(&cfg.GCInterval, "gc-interval", time.Minute, "how often addresses of pods that no longer exist are collected")
	fs.DurationVar(&cfg.GCGrace, "gc-grace", 2*time.Minute, "allocations younger than this are never collected (the pod may reach CNI before the agent's cache sees it)")
	fs.DurationVar(&cfg.CIDRWait, "cidr-wait", 30*time.Second, "how long an ADD waits for the node to receive a CIDR of the pod's pool")
	fs.StringVar(&metricsAddr, "metrics-bind-address", "0", "address of the Prometheus metrics endpoint; \"0\" turns it off")
	fs.StringVar(&probeAddr, "health-probe-bind-address", "", "address of the /healthz and /readyz probes; empty turns them off")
	fs.StringVar(&cfg.NodeConfigNamespace, "node-config-namespace", "kube-system", "namespace of the CiliumNodeConfigs whose ipam-default-ip-pool sets this node's default pool (multi-pool); empty reads none")
	// --kubeconfig is registered by controller-runtime's config package.
	logOpts.BindFlags(fs)
	flag.Parse()
	cfg.Mode = agent.Mode(mode)

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&logOpts)).WithName("plexus-cni-node"))
	if cfg.NodeName == "" {
		operator.Fatal(fmt.Errorf("--node-name is required"), "bad flags")
	}
	scheme, err := agent.NewScheme()
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	rc, err := ctrl.GetConfig()
	if err != nil {
		operator.Fatal(err, "no Kubernetes configuration")
	}
	mgr, err := agent.NewManager(rc, cfg.NodeName, agent.ManagerOptions{Scheme: scheme, MetricsAddr: metricsAddr, ProbeAddr: probeAddr, NodeConfigNamespace: cfg.NodeConfigNamespace})
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	if _, err := agent.New(mgr, cfg); err != nil {
		operator.Fatal(err, "setting up the agent")
	}
	operator.Run(mgr)
}
