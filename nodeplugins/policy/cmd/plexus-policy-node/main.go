// Command plexus-policy-node is the network policy node plugin: run on
// every node, in the node's network namespace, with the BPF filesystem,
// it attaches the policy programs to the pods' veths and keeps their maps
// in line with the node's NodePolicy and the cluster's addresses, and
// reports in the NodePolicy's status what it enforces. Maps and links are
// pinned, so a restart keeps enforcing and adopts them.
package main

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/nldump"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/nodeplugins/policy"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
)

func main() {
	var (
		flags    nodeplugin.Flags
		nodeName string
		bpfRoot  string
	)
	flags.Bind(flag.CommandLine)
	flag.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default: $NODE_NAME)")
	flag.StringVar(&bpfRoot, "bpf-root", "/sys/fs/bpf", "the BPF filesystem; maps and links are pinned under plexus/policy in it (mounted if it is not)")
	flag.Parse()
	log := flags.Logger("policy")
	if nodeName == "" {
		operator.Fatal(os.ErrInvalid, "--node-name (or $NODE_NAME) is required")
	}
	if err := datapath.EnsureBPFFS(bpfRoot); err != nil {
		operator.Fatal(err, "preparing the BPF filesystem")
	}
	maps, err := datapath.Open(filepath.Join(bpfRoot, "plexus", "policy"))
	if err != nil {
		operator.Fatal(err, "loading the policy datapath")
	}
	scheme, err := operator.NewScheme(nodesv1alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := nodeplugin.NewManager(&flags, scheme, policy.CacheOptions(nodeName))
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	e := policy.NewEnforcer(maps, policy.RouteVeth, localAddresses(), log.WithName("enforcer"))
	p := &policy.Plugin{Client: mgr.GetClient(), NodeName: nodeName, Enforcer: e}
	if err := p.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the plugin")
	}
	operator.Run(mgr)
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
