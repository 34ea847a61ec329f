// Command plexus-policy-node is the network policy node plugin: run on
// every node, in the node's network namespace, with the BPF filesystem,
// it attaches the policy programs to the pods' veths and keeps their maps
// in line with the node's NodePolicy and the cluster's addresses, and
// reports in the NodePolicy's status what it enforces. Maps and links are
// pinned, so a restart keeps enforcing and adopts them. Every verdict
// becomes a flow, served over the Hubble Observer API (hubble observe
// --server <node>:4244), and drop counters are Prometheus metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/nldump"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/policy"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/nodeplugins/policy/flows"
)

func main() {
	var (
		flags    nodeplugin.Flags
		nodeName string
		bpfRoot  string
		hubble   string
		buffer   int
		mapMax   uint
		devices  string
		tunnel   uint
		socket   string
		stack    bool
	)
	flags.Bind(flag.CommandLine)
	flag.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default: $NODE_NAME)")
	flag.StringVar(&bpfRoot, "bpf-root", "/sys/fs/bpf", "the BPF filesystem; maps and links are pinned under plexus/policy in it (mounted if it is not)")
	flag.StringVar(&hubble, "hubble-listen-address", "127.0.0.1:4244", "address of the Hubble Observer gRPC API serving this node's flows (plain gRPC, no TLS: the default is reachable only from the node, or through kubectl port-forward); empty turns it off (drop metrics stay)")
	flag.StringVar(&socket, "hubble-socket-path", "", "a Unix socket serving the same Hubble API to this node's own users (hubble observe --server unix://<path>; the hubble CLI's default is /var/run/cilium/hubble.sock); empty for none")
	flag.IntVar(&buffer, "hubble-buffer-size", 4095, "flows kept in memory for `hubble observe` (older ones are overwritten)")
	flag.UintVar(&mapMax, "bpf-policy-map-max", datapath.DefaultPolicyEntries, "entries of the node's policy map, shared by all its pods (a pinned map keeps its size: changing it needs the pin removed)")
	flag.StringVar(&devices, "host-devices", "auto", "the node's own devices a host policy is enforced on: a comma-separated list of names, or auto (the devices of the node's default routes)")
	flag.UintVar(&tunnel, "tunnel-port", 8472, "the VXLAN UDP port of the node's tunnel (the datapath plugin's --vxlan-port), which a host policy leaves to the pods' policies; 0 for none")
	flag.BoolVar(&stack, "bpf-stack-only", false, "leave all traffic between this node's pods to the node's IP stack; by default a pod's established connection to another pod of the node goes straight into that pod, past the node's forwarding and netfilter (a host firewall that must see it needs this)")
	flag.Parse()
	log := flags.Logger("policy")
	if nodeName == "" {
		operator.Fatal(os.ErrInvalid, "--node-name (or $NODE_NAME) is required")
	}
	if err := datapath.EnsureBPFFS(bpfRoot); err != nil {
		operator.Fatal(err, "preparing the BPF filesystem")
	}
	if mapMax == 0 || mapMax > 1<<24 {
		operator.Fatal(os.ErrInvalid, "--bpf-policy-map-max must be between 1 and 16777216")
	}
	if tunnel > 65535 {
		operator.Fatal(os.ErrInvalid, "--tunnel-port must be a UDP port (0 for none)")
	}
	hostDevices := policy.DefaultRouteDevices
	if devices != "auto" {
		names := strings.FieldsFunc(devices, func(r rune) bool { return r == ',' || r == ' ' })
		if len(names) == 0 {
			operator.Fatal(os.ErrInvalid, "--host-devices: name at least one device, or auto")
		}
		hostDevices = policy.NamedDevices(names)
	}
	maps, err := datapath.OpenWith(filepath.Join(bpfRoot, "plexus", "policy"), datapath.Options{PolicyEntries: uint32(mapMax), TunnelPort: uint16(tunnel), StackOnly: stack})
	if err != nil {
		operator.Fatal(err, "loading the policy datapath")
	}
	scheme, err := operator.NewScheme(nodesv1alpha1.AddToScheme, ciliumv2.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := nodeplugin.NewManager(&flags, scheme, policy.CacheOptions(nodeName))
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	e := policy.NewEnforcer(maps, policy.RouteVeth, localAddresses(), log.WithName("enforcer"))
	e.HostDevices = hostDevices
	p := &policy.Plugin{Client: mgr.GetClient(), NodeName: nodeName, Enforcer: e}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	metrics.Registry.MustRegister(policy.Metrics{Maps: maps})
	if hubble != "" || socket != "" {
		store := flows.NewStore(buffer)
		o := &policy.Observer{Maps: maps, Enforcer: e, Identities: mgr.GetClient(), Store: store, NodeName: nodeName}
		srv := flows.NewServer(store, nodeName, "plexus-policy-node "+version())
		runs := []func(context.Context) error{o.Run}
		for _, addr := range []struct{ network, address string }{{"tcp", hubble}, {"unix", socket}} {
			if addr.address == "" {
				continue
			}
			l, err := listen(addr.network, addr.address)
			if err != nil {
				operator.Fatal(err, "listening for the Hubble API")
			}
			runs = append(runs, func(ctx context.Context) error { return srv.Serve(ctx, l) })
		}
		for _, run := range runs {
			if err := mgr.Add(manager.RunnableFunc(run)); err != nil {
				operator.Fatal(err, "adding the flow observer")
			}
		}
	}
	operator.Run(mgr)
}

// listen opens a listener; a Unix socket left by an earlier run is
// replaced, and only the node's root (and the socket's group) may use it.
func listen(network, address string) (net.Listener, error) {
	if network != "unix" {
		return net.Listen(network, address)
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o750); err != nil {
		return nil, err
	}
	if err := os.Remove(address); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return nil, err
	}
	return l, os.Chmod(address, 0o660)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}

// localAddresses are the node's own addresses (identity host): traffic
// from the node to its pods (kubelet probes) comes from one of them.
func localAddresses() []netip.Addr {
	addrs, err := nldump.Addrs(nil, nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLoopback() {
			out = append(out, ip.Unmap())
		}
	}
	return out
}
