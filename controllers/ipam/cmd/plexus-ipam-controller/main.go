// Command plexus-ipam-controller is Plexus's pod IPAM controller: it gives every node its pod
// CIDRs, in cluster-pool, multi-pool or kubernetes mode, through the node's
// CiliumNode; in crd mode it creates the CiliumNodes and checks the addresses
// another actor lists in them.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/controllers/ipam/reconciler"
	"github.com/plexus-net/plexus/internal/operator"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// prefixList is a comma-separated CIDR list flag.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	*l = nil
	for _, c := range strings.Split(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return err
		}
		if p != p.Masked() {
			return fmt.Errorf("%s has host bits set; write %s", p, p.Masked())
		}
		*l = append(*l, p)
	}
	return nil
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		flags       operator.Flags
		cfg         allocator.Config
		mode        string
		autoCreate  stringList
		statusDefer time.Duration
	)
	cfg.ClusterPoolIPv4.CIDRs = prefixList{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.ClusterPoolIPv6.CIDRs = prefixList{netip.MustParsePrefix("fd00::/104")}
	flags.Bind(flag.CommandLine, "ipam")
	flag.StringVar(&mode, "ipam-mode", string(allocator.ModeClusterPool), "cluster-pool (CIDRs from --cluster-pool-*), multi-pool (CIDRs from CiliumPodIPPools) kubernetes (the Node's spec.podCIDRs) or crd (single addresses another actor lists in each CiliumNode's spec.ipam.pool)")
	flag.BoolVar(&cfg.IPv4, "enable-ipv4", true, "nodes need an IPv4 pod CIDR")
	flag.BoolVar(&cfg.IPv6, "enable-ipv6", false, "nodes need an IPv6 pod CIDR")
	flag.Var((*prefixList)(&cfg.ClusterPoolIPv4.CIDRs), "cluster-pool-ipv4-cidr", "cluster-pool IPv4 CIDRs, comma-separated; append to grow, never edit or remove one in use")
	flag.IntVar(&cfg.ClusterPoolIPv4.MaskSize, "cluster-pool-ipv4-mask-size", 24, "prefix length of each node's IPv4 pod CIDR")
	flag.Var((*prefixList)(&cfg.ClusterPoolIPv6.CIDRs), "cluster-pool-ipv6-cidr", "cluster-pool IPv6 CIDRs, comma-separated")
	flag.IntVar(&cfg.ClusterPoolIPv6.MaskSize, "cluster-pool-ipv6-mask-size", 120, "prefix length of each node's IPv6 pod CIDR")
	flag.DurationVar(&statusDefer, "status-defer", 30*time.Second, "while CiliumNodes wait for their CIDRs (a burst of new nodes), healthy nodes' status writes wait up to this long, so that CIDRs come first, and then trickle out; 0 writes them at once")
	flag.Var(&autoCreate, "auto-create-pool", "multi-pool: a CiliumPodIPPool to create at start if missing, as name=ipv4-cidrs:CIDR[,CIDR];ipv4-mask-size:N[;ipv6-cidrs:...;ipv6-mask-size:N] (repeatable)")
	flag.Parse()

	cfg.Mode = allocator.Mode(mode)
	if err := validate(cfg); err != nil {
		operator.Fatal(err, "bad flags")
	}
	var pools []*ciliumv2alpha1.CiliumPodIPPool
	for _, s := range autoCreate {
		p, err := reconciler.ParseAutoCreatePool(s)
		if err != nil {
			operator.Fatal(err, "bad flag --auto-create-pool")
		}
		pools = append(pools, p)
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, ciliumv2alpha1.AddToScheme)
	if err != nil {
		operator.Fatal(err, "building the scheme")
	}
	mgr, err := operator.NewManager("ipam", &flags, scheme)
	if err != nil {
		operator.Fatal(err, "creating the manager")
	}
	if len(pools) > 0 {
		// Once leader: a refused pool stops the controller with the API
		// server's message, which names the field.
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			return reconciler.EnsurePools(ctx, mgr.GetClient(), pools)
		})); err != nil {
			operator.Fatal(err, "adding the pool creator")
		}
	}
	r := &reconciler.Reconciler{
		Client:      mgr.GetClient(),
		Recorder:    mgr.GetEventRecorder("plexus-ipam"),
		Config:      cfg,
		Passes:      flags.Passes,
		StatusDefer: statusDefer,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		operator.Fatal(err, "setting up the IPAM controller")
	}
	operator.Run(mgr)
}

func validate(cfg allocator.Config) error {
	switch cfg.Mode {
	case allocator.ModeClusterPool, allocator.ModeMultiPool, allocator.ModeKubernetes, allocator.ModeCRD:
	default:
		return fmt.Errorf("--ipam-mode=%q: want cluster-pool, multi-pool, kubernetes or crd (eni, azure and alibabacloud are not implemented; see docs/ipam.md)", cfg.Mode)
	}
	if !cfg.IPv4 && !cfg.IPv6 {
		return fmt.Errorf("--enable-ipv4 and --enable-ipv6 are both off")
	}
	for _, f := range []struct {
		name string
		fam  allocator.Family
		v4   bool
		on   bool
	}{{"ipv4", cfg.ClusterPoolIPv4, true, cfg.IPv4}, {"ipv6", cfg.ClusterPoolIPv6, false, cfg.IPv6}} {
		if !f.on || cfg.Mode != allocator.ModeClusterPool {
			continue
		}
		bits := 32
		if !f.v4 {
			bits = 128
		}
		if f.fam.MaskSize < 1 || f.fam.MaskSize > bits-2 {
			return fmt.Errorf("--cluster-pool-%s-mask-size=%d: want 1 to %d (each node needs room for pods)", f.name, f.fam.MaskSize, bits-2)
		}
		for _, p := range f.fam.CIDRs {
			if p.Addr().Is4() != f.v4 {
				return fmt.Errorf("--cluster-pool-%s-cidr: %s is of the other family", f.name, p)
			}
			if p.Bits() > f.fam.MaskSize {
				return fmt.Errorf("--cluster-pool-%s-cidr: %s is smaller than one /%d node CIDR", f.name, p, f.fam.MaskSize)
			}
		}
	}
	return nil
}
