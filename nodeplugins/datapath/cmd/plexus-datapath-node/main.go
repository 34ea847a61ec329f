// Command plexus-datapath-node is the netlink part of Plexus's node datapath: run
// on every node, in the node's network namespace, it routes to the other
// nodes' pod CIDRs (native routing or VXLAN) from their CiliumNodes,
// masquerades its pods' traffic leaving the cluster (--masquerade), and
// reports DatapathReady on its own CiliumNode. A restart adopts what the
// kernel already holds, so established connections are not disturbed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/datapath"
	"github.com/plexus-net/plexus/nodeplugins/datapath/kernel"
	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
)

func main() {
	var (
		flags    operator.Flags
		nodeName string
		mode     string
		cfg      kernel.Config
		resync   time.Duration
		debounce time.Duration
		nonMasq  string
		masqDevs string
	)
	flags.Bind(flag.CommandLine, "datapath")
	// One instance per node, each acting on its own kernel: no leader.
	flag.Lookup("leader-elect").DefValue = "false"
	flags.LeaderElect = false
	flag.StringVar(&nodeName, "node-name", "", "name of this node's CiliumNode (required)")
	flag.StringVar(&mode, "routing-mode", string(routes.ModeVXLAN), `how to reach other nodes' pods: "native" (routes via their InternalIPs on --device) or "vxlan" (tunnel over IPv4 InternalIPs)`)
	flag.StringVar(&cfg.Device, "device", "eth0", "underlay device that holds the node's InternalIP")
	flag.StringVar(&cfg.VXLANDevice, "vxlan-device", "plexus_vxlan", "name of the VXLAN device (vxlan mode); Plexus owns it and every FDB entry and neighbour on it")
	flag.IntVar(&cfg.VNI, "vxlan-vni", 2, "VXLAN network identifier, the same on every node")
	flag.IntVar(&cfg.Port, "vxlan-port", 8472, "VXLAN UDP port, the same on every node")
	flag.IntVar(&cfg.MTU, "mtu", 0, fmt.Sprintf("underlay MTU; 0 takes --device's. The VXLAN device gets this minus %d", kernel.VXLANOverhead))
	flag.BoolVar(&cfg.Masquerade, "masquerade", true, "masquerade IPv4 traffic from this node's pods to destinations outside every pod CIDR and --non-masquerade-cidrs (to the address of the interface it leaves by); packets marked for an egress gateway are left alone")
	flag.StringVar(&masqDevs, "masquerade-devices", "", "comma-separated interfaces whose outgoing pod traffic is masqueraded (default: --device); traffic to local pods or into the tunnel never is")
	flag.StringVar(&nonMasq, "non-masquerade-cidrs", "", "comma-separated CIDRs that pods reach with their own address besides the pod CIDRs (e.g. the underlay's, for native routing); IPv4 entries only take effect")
	flag.DurationVar(&resync, "resync-period", time.Minute, "how often to re-check the kernel without events, repairing drift")
	flag.DurationVar(&debounce, "debounce", 200*time.Millisecond, "how long to collect CiliumNode events into one pass")
	flag.Parse()

	routingMode, err := routes.ParseMode(mode)
	if err == nil {
		cfg.NonMasqueradeCIDRs, err = parseCIDRs(nonMasq)
	}
	for _, d := range strings.Split(masqDevs, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.MasqueradeDevices = append(cfg.MasqueradeDevices, d)
		}
	}
	switch {
	case err != nil:
	case nodeName == "":
		err = errors.New("--node-name is required")
	case flags.LeaderElect:
		err = errors.New("--leader-elect makes no sense for a per-node plugin")
	case cfg.VNI < 0 || cfg.VNI >= 1<<24:
		err = fmt.Errorf("--vxlan-vni=%d: want 0 to %d", cfg.VNI, 1<<24-1)
	case cfg.Port <= 0 || cfg.Port > 65535:
		err = fmt.Errorf("--vxlan-port=%d: want 1 to 65535", cfg.Port)
	case cfg.MTU != 0 && cfg.MTU < 68+kernel.VXLANOverhead:
		err = fmt.Errorf("--mtu=%d: too small", cfg.MTU)
	case resync <= 0:
		err = fmt.Errorf("--resync-period=%v: want a positive duration", resync)
	}
	if err != nil {
		operator.Fatal(err, "bad flags")
	}

	scheme, err := operator.NewScheme(ciliumv2.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("datapath", &flags, scheme)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	h, err := netlink.NewHandle()
	if err != nil {
		operator.Fatal(err, "opening netlink")
	}
	r := &datapath.Reconciler{
		Client:   mgr.GetClient(),
		NodeName: nodeName,
		Mode:     routingMode,
		Kernel:   kernel.New(h, cfg),
		Resync:   resync,
		Debounce: debounce,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the datapath controller")
	}
	operator.Run(mgr)
}

// parseCIDRs parses a comma-separated list of CIDRs ("" is none).
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("--non-masquerade-cidrs: %w", err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
