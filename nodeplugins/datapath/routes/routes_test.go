package routes

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

type nodeOpt func(*ciliumv2.CiliumNode)

func node(name string, opts ...nodeOpt) ciliumv2.CiliumNode {
	n := ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func addr(typ, ip string) nodeOpt {
	return func(n *ciliumv2.CiliumNode) {
		n.Spec.Addresses = append(n.Spec.Addresses, ciliumv2.NodeAddress{Type: typ, IP: ip})
	}
}

func internal(ip string) nodeOpt { return addr(ciliumv2.NodeAddressInternalIP, ip) }

func podCIDR(c ...string) nodeOpt {
	return func(n *ciliumv2.CiliumNode) { n.Spec.IPAM.PodCIDRs = append(n.Spec.IPAM.PodCIDRs, c...) }
}

func pool(name string, c ...string) nodeOpt {
	return func(n *ciliumv2.CiliumNode) {
		n.Spec.IPAM.Pools.Allocated = append(n.Spec.IPAM.Pools.Allocated, ciliumv2.IPAMPoolAllocation{Pool: name, CIDRs: c})
	}
}

func route(dst, via, node string) Route {
	return Route{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via), Node: node}
}

func TestComputeNative(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []ciliumv2.CiliumNode
		want    []Route
		skipped []string
	}{{
		name: "own node skipped, others routed via their InternalIP",
		nodes: []ciliumv2.CiliumNode{
			node("n1", internal("198.18.0.1"), podCIDR("10.1.0.0/24")),
			node("n2", internal("198.18.0.2"), podCIDR("10.2.0.0/24")),
			node("n3", internal("198.18.0.3"), podCIDR("10.3.0.0/24")),
		},
		want: []Route{route("10.2.0.0/24", "198.18.0.2", "n2"), route("10.3.0.0/24", "198.18.0.3", "n3")},
	}, {
		name: "node without InternalIP skipped; ExternalIP is not used",
		nodes: []ciliumv2.CiliumNode{
			node("n1", internal("198.18.0.1")),
			node("n2", addr(ciliumv2.NodeAddressExternalIP, "203.0.113.2"), podCIDR("10.2.0.0/24")),
			node("n3", internal("198.18.0.3"), podCIDR("10.3.0.0/24")),
		},
		want:    []Route{route("10.3.0.0/24", "198.18.0.3", "n3")},
		skipped: []string{"node n2: no InternalIP"},
	}, {
		name: "multi-pool CIDRs included with podCIDRs, unmasked and duplicate CIDRs normalised",
		nodes: []ciliumv2.CiliumNode{
			node("n1", internal("198.18.0.1")),
			node("n2", internal("198.18.0.2"), podCIDR("10.2.0.0/24"),
				pool("default", "10.2.0.0/24", "10.20.0.0/26"), pool("blue", "10.30.0.7/26", "bogus")),
		},
		want: []Route{
			route("10.2.0.0/24", "198.18.0.2", "n2"),
			route("10.20.0.0/26", "198.18.0.2", "n2"),
			route("10.30.0.0/26", "198.18.0.2", "n2"),
		},
		skipped: []string{`node n2: pod CIDR "bogus" does not parse`},
	}, {
		name: "dual stack: IPv6 CIDR via IPv6 InternalIP; without one it is skipped",
		nodes: []ciliumv2.CiliumNode{
			node("n1", internal("198.18.0.1")),
			node("n2", internal("198.18.0.2"), internal("fd00:198::2"), podCIDR("10.2.0.0/24", "fd00:10:2::/64")),
			node("n3", internal("198.18.0.3"), podCIDR("10.3.0.0/24", "fd00:10:3::/64")),
		},
		want: []Route{
			route("10.2.0.0/24", "198.18.0.2", "n2"),
			route("10.3.0.0/24", "198.18.0.3", "n3"),
			route("fd00:10:2::/64", "fd00:198::2", "n2"),
		},
		skipped: []string{"node n3: pod CIDR fd00:10:3::/64: no IPv6 InternalIP to route via"},
	}, {
		name: "a CIDR claimed twice goes to the first node by name; the own node's CIDR is never routed away",
		nodes: []ciliumv2.CiliumNode{
			node("n3", internal("198.18.0.3"), podCIDR("10.2.0.0/24", "10.1.0.0/24")),
			node("n2", internal("198.18.0.2"), podCIDR("10.2.0.0/24")),
			node("n1", internal("198.18.0.1"), podCIDR("10.1.0.0/24")),
		},
		want: []Route{route("10.2.0.0/24", "198.18.0.2", "n2")},
		skipped: []string{
			"node n3: pod CIDR 10.1.0.0/24 is also node n1's",
			"node n3: pod CIDR 10.2.0.0/24 is also node n2's",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Compute(tt.nodes, "n1", ModeNative)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d.Routes, tt.want) {
				t.Errorf("routes:\n got %v\nwant %v", d.Routes, tt.want)
			}
			if !slices.Equal(d.Skipped, tt.skipped) {
				t.Errorf("skipped:\n got %q\nwant %q", d.Skipped, tt.skipped)
			}
			if len(d.VTEPs) != 0 || d.Local.IsValid() {
				t.Errorf("native mode has no VTEPs or local tunnel address: %v %v", d.VTEPs, d.Local)
			}
		})
	}
}

func TestComputeVXLAN(t *testing.T) {
	nodes := []ciliumv2.CiliumNode{
		node("n3", internal("198.18.0.3"), podCIDR("10.3.0.0/24", "fd00:10:3::/64")),
		node("n1", internal("198.18.0.1"), podCIDR("10.1.0.0/24")),
		node("n4", internal("fd00:198::4"), podCIDR("10.4.0.0/24")),
		node("n2", internal("198.18.0.2"), podCIDR("10.2.0.0/24"), pool("blue", "10.22.0.0/26")),
	}
	d, err := Compute(nodes, "n1", ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("198.18.0.1"); d.Local != want {
		t.Errorf("local = %v, want %v", d.Local, want)
	}
	ll3 := "fe80::cb9:c6ff:fe12:3"
	wantRoutes := []Route{
		route("10.2.0.0/24", "198.18.0.2", "n2"),
		route("10.3.0.0/24", "198.18.0.3", "n3"),
		route("10.22.0.0/26", "198.18.0.2", "n2"),
		route("fd00:10:3::/64", ll3, "n3"),
	}
	if !reflect.DeepEqual(d.Routes, wantRoutes) {
		t.Errorf("routes:\n got %v\nwant %v", d.Routes, wantRoutes)
	}
	if d.Nodes != 2 {
		t.Errorf("nodes = %d, want 2", d.Nodes)
	}
	var got []string
	for _, v := range d.VTEPs {
		got = append(got, v.Node+" "+v.Underlay.String()+" "+v.MAC.String()+" "+joinAddrs(v.Neighbours))
	}
	want := []string{
		"n2 198.18.0.2 0e:b9:c6:12:00:02 198.18.0.2",
		"n3 198.18.0.3 0e:b9:c6:12:00:03 198.18.0.3," + ll3,
	}
	if !slices.Equal(got, want) {
		t.Errorf("VTEPs:\n got %q\nwant %q", got, want)
	}
	if wantSkip := []string{"node n4: pod CIDR 10.4.0.0/24: VXLAN needs the node's IPv4 InternalIP"}; !slices.Equal(d.Skipped, wantSkip) {
		t.Errorf("skipped = %q, want %q", d.Skipped, wantSkip)
	}
}

func joinAddrs(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func TestComputeDeterministic(t *testing.T) {
	nodes := []ciliumv2.CiliumNode{
		node("a", internal("198.18.0.1")),
		node("d", internal("198.18.0.4"), podCIDR("10.4.0.0/24"), pool("p", "10.40.0.0/26", "10.0.9.0/26")),
		node("c", internal("198.18.0.3"), podCIDR("fd00:10:3::/64", "10.3.0.0/24")),
		node("b", internal("198.18.0.2"), podCIDR("10.2.0.0/24")),
	}
	first, err := Compute(nodes, "a", ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		shuffled := slices.Clone(nodes)
		// a fixed rotation and reversal per round covers every position
		slices.Reverse(shuffled)
		shuffled = append(shuffled[i%len(shuffled):], shuffled[:i%len(shuffled)]...)
		got, err := Compute(shuffled, "a", ModeVXLAN)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("order %d gives a different result:\n%+v\n%+v", i, got, first)
		}
	}
}

func TestComputeLocalNodeProblems(t *testing.T) {
	other := node("n2", internal("198.18.0.2"), podCIDR("10.2.0.0/24"))
	if _, err := Compute([]ciliumv2.CiliumNode{other}, "n1", ModeNative); err == nil || !strings.Contains(err.Error(), `"n1" not found`) {
		t.Errorf("missing local node: err = %v", err)
	}
	v6only := node("n1", internal("fd00:198::1"))
	if _, err := Compute([]ciliumv2.CiliumNode{v6only, other}, "n1", ModeVXLAN); err == nil || !strings.Contains(err.Error(), "no IPv4 InternalIP") {
		t.Errorf("VXLAN without local IPv4: err = %v", err)
	}
	if d, err := Compute([]ciliumv2.CiliumNode{v6only, other}, "n1", ModeNative); err != nil || len(d.Routes) != 1 {
		t.Errorf("native mode needs no local address: %v %v", d.Routes, err)
	}
}

func TestMACAndLinkLocal(t *testing.T) {
	mac := MAC(netip.MustParseAddr("198.18.1.2"))
	if mac.String() != "0e:b9:c6:12:01:02" || mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
		t.Errorf("MAC = %v: want 0e:b9:c6:12:01:02, unicast and locally administered", mac)
	}
	if ll := LinkLocal(mac); ll.String() != "fe80::cb9:c6ff:fe12:102" || !ll.IsLinkLocalUnicast() {
		t.Errorf("LinkLocal = %v", ll)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"native", "vxlan"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("geneve"); err == nil {
		t.Error("ParseMode(geneve) succeeded")
	}
}

// The masquerading needs every pod CIDR, a node's own and those of nodes
// that cannot be routed to included.
func TestComputePodCIDRs(t *testing.T) {
	nodes := []ciliumv2.CiliumNode{
		node("n2", internal("198.18.0.2"), podCIDR("10.2.0.0/24", "fd00:10:2::/64"), pool("blue", "10.22.0.0/26")),
		node("n1", internal("198.18.0.1"), podCIDR("10.1.0.0/24", "10.1.0.0/24")),
		node("n3", podCIDR("10.3.0.0/24")), // no InternalIP: not routed
		node("n4", internal("198.18.0.4"), podCIDR("10.2.0.0/24")),
	}
	d, err := Compute(nodes, "n1", ModeNative)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.LocalPodCIDRs); got != "[10.1.0.0/24]" {
		t.Errorf("local pod CIDRs %s", got)
	}
	if got := fmt.Sprint(d.PodCIDRs); got != "[10.1.0.0/24 10.2.0.0/24 10.3.0.0/24 10.22.0.0/26 fd00:10:2::/64]" {
		t.Errorf("pod CIDRs %s", got)
	}
}

// crd mode: every listed single address is a host route to its node, in
// either map and family; an entry that is no address is reported.
func TestI24_ComputeCRDModeListedAddresses(t *testing.T) {
	listed := func(v4 []string, v6 ...string) nodeOpt {
		return func(n *ciliumv2.CiliumNode) {
			n.Spec.IPAM.Pool, n.Spec.IPAM.IPv6Pool = ciliumv2.AllocationMap{}, ciliumv2.AllocationMap{}
			for _, ip := range v4 {
				n.Spec.IPAM.Pool[ip] = ciliumv2.AllocationIP{}
			}
			for _, ip := range v6 {
				n.Spec.IPAM.IPv6Pool[ip] = ciliumv2.AllocationIP{}
			}
		}
	}
	nodes := []ciliumv2.CiliumNode{
		node("n1", internal("198.18.0.1"), listed([]string{"10.1.0.9"})),
		node("n2", internal("198.18.0.2"), internal("fd18::2"), listed([]string{"10.1.0.7"}, "fd00::7"), func(n *ciliumv2.CiliumNode) {
			n.Spec.IPAM.IPv6Pool["not-an-ip"] = ciliumv2.AllocationIP{}
		}),
	}
	d, err := Compute(nodes, "n1", ModeNative)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.LocalPodCIDRs); got != "[10.1.0.9/32]" {
		t.Errorf("local pod CIDRs %s", got)
	}
	want := []Route{route("10.1.0.7/32", "198.18.0.2", "n2"), route("fd00::7/128", "fd18::2", "n2")}
	if !reflect.DeepEqual(d.Routes, want) {
		t.Errorf("routes %v, want %v", d.Routes, want)
	}
	if !slices.ContainsFunc(d.Skipped, func(s string) bool { return strings.Contains(s, `"not-an-ip"`) }) {
		t.Errorf("the bad entry is not reported: %v", d.Skipped)
	}
}
