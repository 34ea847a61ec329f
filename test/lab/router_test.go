package lab

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The router's addresses collide with nothing else the lab hands out on
// the segment, and the external network is outside the segment, the
// stand-in VXLAN addresses and the pod and Service ranges.
func TestRouterAddressesAreFree(t *testing.T) {
	for _, seg := range []int{0, 7, 199} {
		l := LayoutFor("/x", "plxlab", seg)
		first, last := l.LBPoolRange()
		rt := l.RouterIP()
		if !l.UnderlayPrefix().Contains(rt) || rt == l.GatewayIP() {
			t.Fatalf("segment %d: router %s not a free address of %s", seg, rt, l.UnderlayPrefix())
		}
		if !rt.Less(first) && !last.Less(rt) {
			t.Errorf("segment %d: router %s inside the LB pool %s-%s", seg, rt, first, last)
		}
		for i := range 4 { // the external host's extra addresses the egress tests use
			a := l.ClientIP().As4()
			a[3] += byte(i)
			if rt == netip.AddrFrom4(a) {
				t.Errorf("segment %d: router %s is an external host address", seg, rt)
			}
		}
		for i := 1; i <= 50; i++ {
			if rt == l.NodeIP(i) {
				t.Errorf("segment %d: router %s is node %d", seg, rt, i)
			}
			if l.ExtPrefix().Contains(l.VXLANIP(i)) {
				t.Errorf("segment %d: external network %s holds stand-in VXLAN address %s", seg, l.ExtPrefix(), l.VXLANIP(i))
			}
		}
		ext, pool := l.ExtPrefix(), l.BGPPoolPrefix()
		for _, other := range []string{l.UnderlayPrefix().String(), PodCIDR, ServiceCIDR} {
			for _, p := range []netip.Prefix{ext, pool} {
				if p.Overlaps(netip.MustParsePrefix(other)) {
					t.Errorf("segment %d: %s overlaps %s", seg, p, other)
				}
			}
		}
		if ext.Overlaps(pool) || pool.Contains(l.VXLANIP(50)) || pool.Contains(l.VXLANIP(1)) {
			t.Errorf("segment %d: BGP pool %s overlaps the external network %s or the VXLAN addresses", seg, pool, ext)
		}
		if !ext.Contains(l.RouterExtIP()) || !ext.Contains(l.ExtClientIP()) || l.RouterExtIP() == l.ExtClientIP() {
			t.Errorf("segment %d: router %s and client %s on %s", seg, l.RouterExtIP(), l.ExtClientIP(), ext)
		}
		if !netip.MustParsePrefix("198.18.0.0/15").Contains(ext.Addr()) {
			t.Errorf("segment %d: external network %s outside the benchmarking range", seg, ext)
		}
	}
}

// bgpd's configuration names every node as a neighbor of any other AS,
// with the essentials the lab's BGP tests rely on.
func TestRouterConfig(t *testing.T) {
	l := LayoutFor("/x", "plxlab", 3)
	conf := routerConfig(l, []Node{{Index: 1, Name: "plxlab-n1", IP: "198.18.3.11"}, {Index: 2, Name: "plxlab-n2", IP: "198.18.3.12"}})
	for _, want := range []string{
		"router bgp 65000\n",
		" bgp router-id 198.18.3.254\n",
		" no bgp ebgp-requires-policy\n",
		" no bgp network import-check\n",
		" bgp graceful-restart\n",
		" bgp bestpath as-path multipath-relax\n",
		" neighbor 198.18.3.11 remote-as external\n",
		" neighbor 198.18.3.12 remote-as external\n",
		" neighbor 198.18.3.12 timers connect 1\n",
		"  network 198.19.3.128/25\n",
		"  maximum-paths 8\n",
		"  neighbor 198.18.3.11 route-map lab-to-nodes out\n",
		"ip prefix-list lab-ext seq 5 permit 198.19.3.128/25\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Count(conf, "route-map lab-to-nodes out") != 4 { // 2 nodes x 2 families
		t.Errorf("every neighbor filters what it is sent, in both families:\n%s", conf)
	}
}

// The guard drops only the external network's packets to the host, and
// refuses what the router has no route for only from the external side, in
// each family.
func TestRouterGuard(t *testing.T) {
	l := LayoutFor("/x", "plxlab", 3)
	for _, c := range []struct {
		v6   bool
		want []string
	}{
		{false, []string{"table ip plexus-lab-router {\n", "ip saddr 198.19.3.128/25 ip daddr 198.18.3.1 drop",
			`iifname "ext0" fib daddr type != local fib daddr oif missing reject with icmp type net-unreachable`}},
		{true, []string{"table ip6 plexus-lab-router {\n", "ip6 saddr 2001:2:1:3::/64 ip6 daddr 2001:2:0:3::1 drop",
			`iifname "ext0" fib daddr type != local fib daddr oif missing reject with icmpv6 type no-route`}},
	} {
		g := routerGuard(l, c.v6)
		for _, want := range c.want {
			if !strings.Contains(g, want) {
				t.Errorf("guard lacks %q:\n%s", want, g)
			}
		}
		if strings.Count(g, "policy accept") != 2 {
			t.Errorf("the guard's chains must accept everything else:\n%s", g)
		}
	}
}

// BIRD's configuration names every node, applies per-neighbor statements
// (one "neighbor" line replacing the default), and BIRD itself accepts it.
func TestBirdConfig(t *testing.T) {
	l := LayoutFor(t.TempDir(), "plxlab", 3)
	nodes := []Node{{Index: 1, Name: "plxlab-n1", IP: "198.18.3.11"}, {Index: 2, Name: "plxlab-n2", IP: "198.18.3.12"}}
	conf := birdConfig(l, nodes, map[string][]string{"198.18.3.12": {"neighbor 198.18.3.12 internal;", `password "s3cret";`}})
	for _, want := range []string{
		"router id 198.18.3.253;",
		"local 198.18.3.253 as 65100;",
		"connect retry time 1;",
		"protocol bgp n1 from lab_nodes {\n\tdescription \"plxlab-n1\";\n\tneighbor 198.18.3.11 external;\n}",
		"protocol bgp n2 from lab_nodes {\n\tdescription \"plxlab-n2\";\n\tneighbor 198.18.3.12 internal;\n\tpassword \"s3cret\";\n}",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "neighbor 198.18.3.12 external") {
		t.Errorf("the default neighbor line stayed:\n%s", conf)
	}
	if BirdAvailable() != nil {
		t.Log("bird not installed: configuration not parsed by BIRD")
		return
	}
	f := filepath.Join(t.TempDir(), "bird.conf")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(birdBinary, "-p", "-c", f).CombinedOutput(); err != nil {
		t.Fatalf("bird -p: %v: %s\n%s", err, out, conf)
	}
}

// FRR's bgpd accepts the configuration (its dry run reports every line it
// cannot take, though it exits 0).
func TestRouterConfigParses(t *testing.T) {
	if RouterAvailable() != nil {
		t.Skip("FRR is not installed")
	}
	l := LayoutFor("/x", "plxlab", 3)
	for _, nodes := range [][]Node{
		{{Index: 1, Name: "plxlab-n1", IP: "198.18.3.11"}},
		{{Index: 1, Name: "plxlab-n1", IP: "198.18.3.11", IPv6: "2001:2:0:3::11"}}, // --ip-family dual
	} {
		f := filepath.Join(t.TempDir(), "bgpd.conf")
		conf := routerConfig(l, nodes)
		if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(frrDir, routerBGPd), "-C", "-S", "-f", f, "-P", "0", "--log", "stdout").CombinedOutput()
		if err != nil || strings.Contains(string(out), "[EC ") {
			t.Fatalf("bgpd -C: %v: %s\n%s", err, out, conf)
		}
	}
}

// In a dual-stack lab each node is also a neighbor at its IPv6 address,
// for IPv6 unicast only, and is sent the external IPv6 network.
func TestRouterConfigDualStack(t *testing.T) {
	l := LayoutFor("/x", "plxlab", 3)
	conf := routerConfig(l, []Node{{Index: 1, Name: "plxlab-n1", IP: "198.18.3.11", IPv6: "2001:2:0:3::11"}})
	for _, want := range []string{
		"ipv6 prefix-list lab-ext6 seq 5 permit 2001:2:1:3::/64\n",
		" neighbor 2001:2:0:3::11 remote-as external\n",
		"  no neighbor 2001:2:0:3::11 activate\n",
		"  network 2001:2:1:3::/64\n",
		"  neighbor 2001:2:0:3::11 activate\n  neighbor 2001:2:0:3::11 route-map lab-to-nodes out\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if v4 := routerConfig(l, []Node{{Index: 1, Name: "plxlab-n1", IP: "198.18.3.11"}}); strings.Contains(v4, "2001:") {
		t.Errorf("an IPv4 lab's config mentions IPv6 addresses:\n%s", v4)
	}
}
