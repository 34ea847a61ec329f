package allocator

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	cniipam "github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, c := range s {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func node(name string, age int, podCIDRs ...string) Node {
	return Node{Name: name, Created: t0.Add(time.Duration(age) * time.Minute), PodCIDRs: podCIDRs}
}

func clusterCfg(v4 []string, mask4 int, v6 []string, mask6 int) Config {
	return Config{Mode: ModeClusterPool, IPv4: len(v4) > 0, IPv6: len(v6) > 0,
		ClusterPoolIPv4: Family{CIDRs: pfx(v4...), MaskSize: mask4},
		ClusterPoolIPv6: Family{CIDRs: pfx(v6...), MaskSize: mask6}}
}

func TestSpaceCarvesLowestFirst(t *testing.T) {
	s := NewSpace(pfx("10.0.0.0/8"), 24, nil)
	a, _ := s.Next()
	b, _ := s.Next()
	if a.String() != "10.0.0.0/24" || b.String() != "10.0.1.0/24" {
		t.Fatalf("got %s, %s", a, b)
	}
	if s.Take(b) {
		t.Fatal("took a subnet twice")
	}
	if !s.Take(netip.MustParsePrefix("10.255.255.0/24")) || s.Take(netip.MustParsePrefix("11.0.0.0/24")) || s.Take(netip.MustParsePrefix("10.0.5.0/25")) {
		t.Fatal("Take accepted a foreign subnet or refused its own")
	}
	if got := s.Free(); got != 65536-3 {
		t.Fatalf("free = %d", got)
	}
	v6 := NewSpace(pfx("fd00::/104"), 120, nil)
	x, _ := v6.Next()
	y, _ := v6.Next()
	if x.String() != "fd00::/120" || y.String() != "fd00::100/120" {
		t.Fatalf("got %s, %s", x, y)
	}
	huge := NewSpace(pfx("fd00:1::/64"), 120, nil) // 2^56 subnets, nothing materialised
	if h, ok := huge.Next(); !ok || h.String() != "fd00:1::/120" || !huge.Contains(netip.MustParsePrefix("fd00:1::ffff:ffff:ffff:ff00/120")) {
		t.Fatalf("huge space: %s %v", h, ok)
	}
}

func TestSpaceSkipsBlocked(t *testing.T) {
	blocked := pfx("10.0.0.0/23")
	s := NewSpace(pfx("10.0.0.0/16"), 24, &blocked)
	if p, _ := s.Next(); p.String() != "10.0.2.0/24" {
		t.Fatalf("got %s, want the first subnet clear of the blocked /23", p)
	}
}

func TestI1_I2_ClusterPoolCarvesMaskSizedCIDRsPerNode(t *testing.T) {
	res := Allocate(clusterCfg([]string{"10.0.0.0/8"}, 24, nil, 0), nil, []Node{node("b", 2), node("a", 1)})
	if got := res.Nodes["a"].PodCIDRs; !slices.Equal(got, []string{"10.0.0.0/24"}) {
		t.Fatalf("a (older) = %v", got)
	}
	if got := res.Nodes["b"].PodCIDRs; !slices.Equal(got, []string{"10.0.1.0/24"}) {
		t.Fatalf("b = %v", got)
	}
}

func TestI3_ClusterPoolDualStack(t *testing.T) {
	res := Allocate(clusterCfg([]string{"10.0.0.0/8"}, 24, []string{"fd00::/104"}, 120), nil, []Node{node("a", 1), node("b", 2)})
	if got := res.Nodes["b"].PodCIDRs; !slices.Equal(got, []string{"10.0.1.0/24", "fd00::100/120"}) {
		t.Fatalf("b = %v", got)
	}
}

func TestClusterPoolRestoresBeforeAllocating(t *testing.T) {
	// A young node already holds the first CIDR: an older node without one
	// must not be given it.
	res := Allocate(clusterCfg([]string{"10.0.0.0/16"}, 24, nil, 0), nil, []Node{node("old", 1), node("young", 2, "10.0.0.0/24")})
	if got := res.Nodes["young"].PodCIDRs; !slices.Equal(got, []string{"10.0.0.0/24"}) {
		t.Fatalf("young = %v", got)
	}
	if got := res.Nodes["old"].PodCIDRs; !slices.Equal(got, []string{"10.0.1.0/24"}) {
		t.Fatalf("old = %v", got)
	}
}

func TestClusterPoolDuplicateGoesToOlderNode(t *testing.T) {
	res := Allocate(clusterCfg([]string{"10.0.0.0/16"}, 24, nil, 0), nil, []Node{node("old", 1, "10.0.7.0/24"), node("young", 2, "10.0.7.0/24")})
	if got := res.Nodes["old"].PodCIDRs; !slices.Equal(got, []string{"10.0.7.0/24"}) {
		t.Fatalf("old = %v", got)
	}
	y := res.Nodes["young"]
	if slices.Contains(y.PodCIDRs, "10.0.7.0/24") || len(y.PodCIDRs) != 1 || !strings.Contains(strings.Join(y.Errors, ";"), "overlaps old's CIDR") {
		t.Fatalf("young = %+v", y)
	}
}

func TestI5_I6_ExhaustionThenAppend(t *testing.T) {
	cfg := clusterCfg([]string{"10.0.0.0/23"}, 24, nil, 0)
	nodes := []Node{node("a", 1), node("b", 2), node("c", 3)}
	res := Allocate(cfg, nil, nodes)
	c := res.Nodes["c"]
	if len(c.PodCIDRs) != 0 || !strings.Contains(strings.Join(c.Errors, ";"), "cluster pool exhausted: no free IPv4 /24 CIDR; append a CIDR to --cluster-pool-ipv4-cidr") {
		t.Fatalf("c = %+v", c)
	}
	if !slices.Equal(res.Pools[ClusterPoolName].Exhausted, []string{"c"}) {
		t.Fatalf("exhausted = %v", res.Pools[ClusterPoolName].Exhausted)
	}
	// Feed the result back as the cluster would hold it, then append a CIDR.
	for i := range nodes {
		nodes[i].PodCIDRs = res.Nodes[nodes[i].Name].PodCIDRs
	}
	cfg.ClusterPoolIPv4.CIDRs = pfx("10.0.0.0/23", "10.9.0.0/16")
	res2 := Allocate(cfg, nil, nodes)
	for _, n := range []string{"a", "b"} {
		if !slices.Equal(res2.Nodes[n].PodCIDRs, res.Nodes[n].PodCIDRs) {
			t.Fatalf("%s moved: %v -> %v", n, res.Nodes[n].PodCIDRs, res2.Nodes[n].PodCIDRs)
		}
	}
	if got := res2.Nodes["c"].PodCIDRs; !slices.Equal(got, []string{"10.9.0.0/24"}) || len(res2.Nodes["c"].Errors) != 0 {
		t.Fatalf("c after append = %+v", res2.Nodes["c"])
	}
}

func TestClusterPoolKeepsCIDROutsideNewConfig(t *testing.T) {
	// The mask changed from /24 to /26: the node keeps its /24 and no one is
	// given a /26 inside it.
	res := Allocate(clusterCfg([]string{"10.0.0.0/16"}, 26, nil, 0), nil, []Node{node("a", 1, "10.0.0.0/24"), node("b", 2)})
	if got := res.Nodes["a"].PodCIDRs; !slices.Equal(got, []string{"10.0.0.0/24"}) || len(res.Nodes["a"].Notes) != 1 {
		t.Fatalf("a = %+v", res.Nodes["a"])
	}
	if got := res.Nodes["b"].PodCIDRs; !slices.Equal(got, []string{"10.0.1.0/26"}) {
		t.Fatalf("b = %v", got)
	}
	if got := res.Pools[ClusterPoolName].RemovedInUse["a"]; !slices.Equal(got, []string{"10.0.0.0/24"}) {
		t.Fatalf("removed-in-use = %v", got)
	}
}

func TestI8_I9_I10_KubernetesModeMirrorsTheNode(t *testing.T) {
	cfg := Config{Mode: ModeKubernetes, IPv4: true, IPv6: true}
	res := Allocate(cfg, nil, []Node{
		{Name: "a", KubePodCIDRs: []string{"10.244.1.0/24", "fd00:1::/64"}},
		{Name: "b", KubePodCIDRs: []string{"10.244.2.0/24"}},
	})
	if got := res.Nodes["a"].PodCIDRs; !slices.Equal(got, []string{"10.244.1.0/24", "fd00:1::/64"}) || len(res.Nodes["a"].Errors) != 0 {
		t.Fatalf("a = %+v", res.Nodes["a"])
	}
	if errs := strings.Join(res.Nodes["b"].Errors, ";"); !strings.Contains(errs, "no IPv6 pod CIDR") || !strings.Contains(errs, "network.cilium.io/ipv6-pod-cidr") {
		t.Fatalf("b errors = %q", errs)
	}
}

func pool(name string, age int, v4 []string, mask4 int, v6 []string, mask6 int) Pool {
	p := Pool{Name: name, Created: t0.Add(time.Duration(age) * time.Minute)}
	if len(v4) > 0 {
		p.IPv4 = &Family{CIDRs: pfx(v4...), MaskSize: mask4}
	}
	if len(v6) > 0 {
		p.IPv6 = &Family{CIDRs: pfx(v6...), MaskSize: mask6}
	}
	return p
}

func TestI16_MultiPoolMeetsRequestsWithMaskSizedCIDRs(t *testing.T) {
	pools := []Pool{pool("default", 1, []string{"10.10.0.0/16"}, 27, nil, 0), pool("mars", 2, []string{"10.20.0.0/16"}, 24, []string{"fd00:20::/104"}, 120)}
	n := node("a", 1)
	n.Requested = []Request{{Pool: "default", IPv4: 40}, {Pool: "mars", IPv4: 8, IPv6: 8}}
	res := Allocate(Config{Mode: ModeMultiPool}, pools, []Node{n})
	want := []PoolCIDRs{{Pool: "default", CIDRs: []string{"10.10.0.0/27", "10.10.0.32/27"}}, {Pool: "mars", CIDRs: []string{"10.20.0.0/24", "fd00:20::/120"}}}
	if fmt.Sprint(res.Nodes["a"].Allocated) != fmt.Sprint(want) {
		t.Fatalf("allocated = %v, want %v", res.Nodes["a"].Allocated, want)
	}
	// A /27 yields 29 (network, broadcast and gateway reserved): 40
	// addresses need a second one.
	if c := Capacity(netip.MustParsePrefix("10.10.0.0/27"), false, false); c != 29 {
		t.Fatalf("capacity = %d", c)
	}
}

func TestI21_PoolGrowsLive(t *testing.T) {
	p := pool("default", 1, []string{"10.10.0.0/25"}, 25, nil, 0)
	a, b := node("a", 1), node("b", 2)
	a.Requested = []Request{{Pool: "default", IPv4: 100}}
	b.Requested = []Request{{Pool: "default", IPv4: 100}}
	res := Allocate(Config{Mode: ModeMultiPool}, []Pool{p}, []Node{a, b})
	if len(res.Nodes["a"].Allocated) != 1 || !strings.Contains(strings.Join(res.Nodes["b"].Errors, ";"), `pool "default" is exhausted`) {
		t.Fatalf("a = %+v, b = %+v", res.Nodes["a"], res.Nodes["b"])
	}
	a.Allocated = res.Nodes["a"].Allocated
	b.Allocated = res.Nodes["b"].Allocated
	p.IPv4.CIDRs = pfx("10.10.0.0/25", "10.11.0.0/24")
	res = Allocate(Config{Mode: ModeMultiPool}, []Pool{p}, []Node{a, b})
	if fmt.Sprint(res.Nodes["a"].Allocated) != fmt.Sprint(a.Allocated) || fmt.Sprint(res.Nodes["b"].Allocated) != "[{default [10.11.0.0/25]}]" {
		t.Fatalf("after growing: a = %v, b = %v", res.Nodes["a"].Allocated, res.Nodes["b"].Allocated)
	}
}

func TestMultiPoolRemovedCIDRStaysWithItsNode(t *testing.T) {
	p := pool("mars", 1, []string{"10.21.0.0/16"}, 24, nil, 0) // 10.20.0.0/16 was removed
	a, b := node("a", 1), node("b", 2)
	a.Allocated = []PoolCIDRs{{Pool: "mars", CIDRs: []string{"10.20.0.0/24"}}}
	b.Requested = []Request{{Pool: "mars", IPv4: 10}}
	res := Allocate(Config{Mode: ModeMultiPool}, []Pool{p}, []Node{a, b})
	if fmt.Sprint(res.Nodes["a"].Allocated) != "[{mars [10.20.0.0/24]}]" {
		t.Fatalf("a lost its CIDR: %v", res.Nodes["a"].Allocated)
	}
	if got := res.Pools["mars"].RemovedInUse["a"]; !slices.Equal(got, []string{"10.20.0.0/24"}) {
		t.Fatalf("removed in use = %v", got)
	}
	if fmt.Sprint(res.Nodes["b"].Allocated) != "[{mars [10.21.0.0/24]}]" {
		t.Fatalf("b = %v", res.Nodes["b"].Allocated)
	}
}

func TestMultiPoolRefusals(t *testing.T) {
	older := pool("older", 1, []string{"10.30.0.0/16"}, 24, nil, 0)
	newer := pool("newer", 2, []string{"10.30.128.0/17"}, 24, nil, 0)
	gone := pool("gone", 3, []string{"10.40.0.0/16"}, 24, nil, 0)
	gone.Deleting = true
	n := node("a", 1)
	n.Requested = []Request{{Pool: "newer", IPv4: 1}, {Pool: "gone", IPv4: 1}, {Pool: "nope", IPv4: 1}, {Pool: "older", IPv6: 1}}
	res := Allocate(Config{Mode: ModeMultiPool}, []Pool{newer, older, gone}, []Node{n})
	errs := strings.Join(res.Nodes["a"].Errors, "\n")
	for _, want := range []string{
		`pool "newer" hands out nothing: 10.30.128.0/17 overlaps 10.30.0.0/16 of pool "older"`,
		`pool "gone" is being deleted`,
		`pool "nope" requested by the node does not exist`,
		`pool "older" has no IPv6 CIDRs`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("errors lack %q:\n%s", want, errs)
		}
	}
	if len(res.Nodes["a"].Allocated) != 0 {
		t.Errorf("allocated %v despite refusals", res.Nodes["a"].Allocated)
	}
}

func TestCapacity(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		want uint64
	}{
		{"10.0.1.0/24", 253},
		{"10.0.0.0/30", 1},
		{"10.0.0.0/31", 2},
		{"10.0.0.7/32", 1},
		{"fd00::/120", 253},
		{"fd00::/64", 1<<62 - 3},
	} {
		if got := Capacity(netip.MustParsePrefix(tc.cidr), false, false); got != tc.want {
			t.Errorf("Capacity(%s) = %d, want %d", tc.cidr, got, tc.want)
		}
	}
}

// Random histories of nodes joining, leaving and asking for more never give
// overlapping CIDRs to two nodes and never move a CIDR a node holds.
func TestInvariantsOverRandomHistories(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		pools := []Pool{pool("default", 0, []string{"10.10.0.0/20"}, 26, []string{"fd00:10::/112"}, 120), pool("mars", 1, []string{"10.20.0.0/22"}, 25, nil, 0)}
		cfg := clusterCfg([]string{"10.0.0.0/20", "10.1.0.0/22"}, 24, []string{"fd00::/112"}, 120)
		var nodes []Node
		for step := range 40 {
			switch rng.IntN(4) {
			case 0, 1:
				n := node(fmt.Sprintf("n%d", step), step)
				nodes = append(nodes, n)
			case 2:
				if len(nodes) > 0 {
					i := rng.IntN(len(nodes))
					nodes = slices.Delete(nodes, i, i+1)
				}
			case 3:
				if rng.IntN(2) == 0 && len(cfg.ClusterPoolIPv4.CIDRs) < 4 {
					cfg.ClusterPoolIPv4.CIDRs = append(cfg.ClusterPoolIPv4.CIDRs, pfx(fmt.Sprintf("10.%d.0.0/23", 50+step))...)
				}
			}
			for i := range nodes {
				nodes[i].Requested = []Request{{Pool: "default", IPv4: rng.IntN(200), IPv6: rng.IntN(300)}, {Pool: "mars", IPv4: rng.IntN(300)}}
			}
			for _, mode := range []Mode{ModeClusterPool, ModeMultiPool} {
				cfg.Mode = mode
				res := Allocate(cfg, pools, nodes)
				var held []netip.Prefix
				for i, n := range nodes {
					nr := res.Nodes[n.Name]
					got := slices.Clone(nr.PodCIDRs)
					for _, a := range nr.Allocated {
						got = append(got, a.CIDRs...)
					}
					before := slices.Clone(n.PodCIDRs)
					if mode == ModeMultiPool {
						before = nil
						for _, a := range n.Allocated {
							before = append(before, a.CIDRs...)
						}
					}
					for _, c := range before {
						if !slices.Contains(got, c) {
							t.Fatalf("seed %d step %d %s: node %s lost %s", seed, step, mode, n.Name, c)
						}
					}
					for _, c := range got {
						p := netip.MustParsePrefix(c)
						for _, h := range held {
							if h.Overlaps(p) {
								t.Fatalf("seed %d step %d %s: %s overlaps %s", seed, step, mode, p, h)
							}
						}
						held = append(held, p)
					}
					if mode == ModeClusterPool {
						nodes[i].PodCIDRs = nr.PodCIDRs
					} else {
						nodes[i].Allocated = nr.Allocated
					}
				}
			}
		}
	}
}

// The controller sizes a node's CIDRs by what the node's CNI agent will hand
// out of them; the two must agree, or nodes ask for more than they get.
func TestCapacityAgreesWithTheAgent(t *testing.T) {
	for _, c := range []string{"10.0.0.0/24", "10.0.0.0/27", "10.0.0.0/29", "10.0.0.0/30", "10.0.0.0/31", "10.0.0.1/32", "fd00::/120", "fd00::/112", "fd00::/127"} {
		p := netip.MustParsePrefix(c)
		for _, l := range []cniipam.Layout{{}, {AllowFirst: true}, {AllowLast: true}, {AllowFirst: true, AllowLast: true}} {
			if mine, agent := Capacity(p, l.AllowFirst, l.AllowLast), cniipam.Capacity(p, l); agent.Cmp(new(big.Int).SetUint64(mine)) != 0 {
				t.Errorf("%s %+v: controller counts %d, agent %s", c, l, mine, agent)
			}
		}
	}
}

// crd mode hands out nothing; it counts each node's listed addresses and
// reports, on the newer node, an address two nodes list and entries that are
// no address.
func TestI24_CRDModeChecksListedAddresses(t *testing.T) {
	older := Node{Name: "b-older", Created: t0, Listed: []string{"10.0.0.2", "10.0.0.1", "fd00::1"}}
	newer := Node{Name: "a-newer", Created: t0.Add(time.Minute), Listed: []string{"10.0.0.3", "::ffff:10.0.0.2", "10.0.0.4/32"}}
	empty := Node{Name: "c-empty", Created: t0}
	res := Allocate(Config{Mode: ModeCRD, IPv4: true}, nil, []Node{newer, empty, older})
	if nr := res.Nodes["b-older"]; nr.Listed != 3 || len(nr.Errors) > 0 || len(nr.PodCIDRs) > 0 {
		t.Errorf("older node: %+v", nr)
	}
	nr := res.Nodes["a-newer"]
	want := []string{
		`spec.ipam.pool entry "10.0.0.4/32" is not an IP address`,
		"10.0.0.2 is also listed in the pool of node b-older: pods on both nodes could get it",
	}
	if nr.Listed != 1 || !slices.Equal(nr.Errors, want) {
		t.Errorf("newer node: listed %d, errors %q, want 1 and %q", nr.Listed, nr.Errors, want)
	}
	if nr := res.Nodes["c-empty"]; nr.Listed != 0 || len(nr.Errors) > 0 {
		t.Errorf("empty node: %+v", nr)
	}
}
