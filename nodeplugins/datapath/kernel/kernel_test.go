package kernel

import (
	"strings"
	"testing"

	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
	"github.com/plexus-net/plexus/test/netlab"
	"github.com/plexus-net/plexus/test/netnstest"
)

func TestNativeRouting(t *testing.T) {
	l := netlab.New(t, 3)
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]
	// Someone else's routes: one to a CIDR Plexus does not want, one to a
	// CIDR it does.
	netnstest.Run(t, "ip", "-n", n1.NS, "route", "add", "10.99.0.0/24", "via", n3.IP(), "proto", "static")
	netnstest.Run(t, "ip", "-n", n2.NS, "route", "add", n3.CIDR(), "via", n3.IP(), "proto", "static")

	for _, n := range l.Nodes {
		ch := apply(t, n, routes.ModeNative, l.CiliumNodes())
		if n == n2 {
			if len(ch.Conflicts) != 1 || !strings.Contains(ch.Conflicts[0], n3.CIDR()) {
				t.Errorf("node-2: conflicts = %q, want the foreign route to %s", ch.Conflicts, n3.CIDR())
			}
		}
	}
	l.RequireAllReach()

	out := netnstest.Run(t, "ip", "-n", n1.NS, "route", "show", "proto", "185")
	netlab.MustContain(t, "node-1 routes", out,
		n2.CIDR()+" via "+n2.IP()+" dev eth0",
		n3.CIDR()+" via "+n3.IP()+" dev eth0")
	out = netnstest.Run(t, "ip", "-n", n1.NS, "-6", "route", "show", "proto", "185")
	netlab.MustContain(t, "node-1 IPv6 routes", out, n2.CIDR6()+" via "+n2.IP6()+" dev eth0")
	out = netnstest.Run(t, "ip", "-n", n2.NS, "route", "show", n3.CIDR())
	netlab.MustContain(t, "node-2 foreign route", out, "proto static")

	// Idempotent: a second pass writes nothing and leaves the same routes.
	before := l.State(n1)
	if ch := apply(t, n1, routes.ModeNative, l.CiliumNodes()); ch.Writes() != 0 {
		t.Errorf("second apply wrote: %+v", ch)
	}
	if after := l.State(n1); after != before {
		t.Errorf("second apply changed the kernel:\n%s\n---\n%s", before, after)
	}

	// node-3 leaves: its routes go, nothing else does.
	applyAll(t, l, routes.ModeNative, n3.Name)
	out = netnstest.Run(t, "ip", "-n", n1.NS, "route", "show")
	netlab.MustNotContain(t, "node-1 after node-3 left", out, n3.CIDR())
	netlab.MustContain(t, "node-1 after node-3 left", out, n2.CIDR()+" via "+n2.IP(), "10.99.0.0/24 via "+n3.IP()+" dev eth0 proto static")
	netlab.MustNotContain(t, "node-1 IPv6 after node-3 left", netnstest.Run(t, "ip", "-n", n1.NS, "-6", "route", "show"), n3.CIDR6())
	netlab.MustContain(t, "node-2 keeps the foreign route", netnstest.Run(t, "ip", "-n", n2.NS, "route", "show", n3.CIDR()), "proto static")
	l.RequireAllReach(n3.Name)
}

func TestVXLANRouting(t *testing.T) {
	l := netlab.New(t, 3)
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]
	for _, n := range l.Nodes {
		ch := apply(t, n, routes.ModeVXLAN, l.CiliumNodes())
		if ch.Device != "created" {
			t.Errorf("%s: device %q, want created", n.Name, ch.Device)
		}
	}
	l.RequireAllReach()

	link := netnstest.Run(t, "ip", "-n", n1.NS, "-d", "link", "show", testVXLAN)
	netlab.MustContain(t, "VXLAN device", link, "mtu 1450", "link/ether "+n1.VXLANMAC(),
		"vxlan id 2 local "+n1.IP()+" dev eth0", "dstport 8472", "nolearning")
	fdb := netnstest.Run(t, "bridge", "-n", n1.NS, "fdb", "show", "dev", testVXLAN)
	netlab.MustContain(t, "FDB", fdb, n2.VXLANMAC()+" dst "+n2.IP()+" self permanent", n3.VXLANMAC()+" dst "+n3.IP()+" self permanent")
	neigh := netnstest.Run(t, "ip", "-n", n1.NS, "neigh", "show", "dev", testVXLAN)
	netlab.MustContain(t, "neighbours", neigh, n2.IP()+" lladdr "+n2.VXLANMAC()+" PERMANENT")
	rt := netnstest.Run(t, "ip", "-n", n1.NS, "route", "show", "proto", "185")
	netlab.MustContain(t, "routes", rt, n2.CIDR()+" via "+n2.IP()+" dev "+testVXLAN+" onlink", n3.CIDR()+" via "+n3.IP()+" dev "+testVXLAN+" onlink")
	rt6 := netnstest.Run(t, "ip", "-n", n1.NS, "-6", "route", "show", "proto", "185")
	netlab.MustContain(t, "IPv6 routes", rt6, n2.CIDR6()+" via fe80::cb9:c6ff:fe12:2 dev "+testVXLAN)

	before := l.State(n1)
	if ch := apply(t, n1, routes.ModeVXLAN, l.CiliumNodes()); ch.Writes() != 0 {
		t.Errorf("second apply wrote: %+v", ch)
	}
	if after := l.State(n1); after != before {
		t.Errorf("second apply changed the kernel:\n%s\n---\n%s", before, after)
	}

	// Entries nobody wants on the device go; wrong settings are fixed in
	// place (the device keeps its index).
	netnstest.Run(t, "bridge", "-n", n1.NS, "fdb", "append", "00:00:00:00:00:00", "dev", testVXLAN, "dst", "198.18.0.99")
	netnstest.Run(t, "ip", "-n", n1.NS, "neigh", "add", "198.18.0.99", "lladdr", "0e:b9:00:00:00:99", "dev", testVXLAN, "nud", "permanent")
	netnstest.Run(t, "ip", "-n", n1.NS, "link", "set", testVXLAN, "mtu", "1300")
	ch := apply(t, n1, routes.ModeVXLAN, l.CiliumNodes())
	if ch.FDBDeleted != 1 || ch.NeighboursDeleted != 1 || ch.Device != "updated" || ch.RoutesAdded+ch.RoutesDeleted+ch.RoutesReplaced != 0 {
		t.Errorf("repair: %+v", ch)
	}
	if after := l.State(n1); after != before {
		t.Errorf("repair did not restore the state:\n%s\n---\n%s", before, after)
	}

	// node-3 leaves: its routes, FDB entry and neighbours go on the others.
	applyAll(t, l, routes.ModeVXLAN, n3.Name)
	for _, n := range []netlab.Node{n1, n2} {
		s := l.State(n)
		netlab.MustNotContain(t, n.Name+" after node-3 left", s, n3.CIDR(), n3.CIDR6(), n3.VXLANMAC(), "fe80::cb9:c6ff:fe12:3")
		other := n2
		if n == n2 {
			other = n1
		}
		netlab.MustContain(t, n.Name+" after node-3 left", s, other.CIDR(), other.CIDR6(), other.VXLANMAC()+" dst "+other.IP())
	}
	l.RequireAllReach(n3.Name)

	// A device with the wrong VNI is not ours to adopt as it is: recreated.
	netnstest.Run(t, "ip", "-n", n1.NS, "link", "del", testVXLAN)
	netnstest.Run(t, "ip", "-n", n1.NS, "link", "add", testVXLAN, "type", "vxlan", "id", "7", "dstport", "8472", "local", n1.IP(), "dev", "eth0")
	if ch := apply(t, n1, routes.ModeVXLAN, l.CiliumNodes(n3.Name)); ch.Device != "recreated" || ch.RoutesAdded != 2 {
		t.Errorf("wrong VNI: %+v", ch)
	}
	netlab.MustContain(t, "recreated device", netnstest.Run(t, "ip", "-n", n1.NS, "-d", "link", "show", testVXLAN), "vxlan id 2 ", "nolearning")
	l.RequireAllReach(n3.Name)
}

func TestVXLANNameTakenByAnotherLink(t *testing.T) {
	l := netlab.New(t, 2)
	n1 := l.Nodes[0]
	netnstest.Run(t, "ip", "-n", n1.NS, "link", "add", testVXLAN, "type", "bridge")
	_, err := tryApply(t, n1, routes.ModeVXLAN, l.CiliumNodes())
	if err == nil || !strings.Contains(err.Error(), "not VXLAN") {
		t.Fatalf("err = %v, want a refusal to touch the bridge", err)
	}
	// Leaving VXLAN mode does not delete it either.
	apply(t, n1, routes.ModeNative, l.CiliumNodes())
	netnstest.Run(t, "ip", "-n", n1.NS, "link", "show", testVXLAN)
}

func TestModeSwitch(t *testing.T) {
	l := netlab.New(t, 3)
	n1 := l.Nodes[0]
	applyAll(t, l, routes.ModeNative)
	l.RequireAllReach()
	native := l.State(n1)

	applyAll(t, l, routes.ModeVXLAN)
	l.RequireAllReach()
	vxlanRoutes := netnstest.Run(t, "ip", "-n", n1.NS, "route", "show", "proto", "185") +
		netnstest.Run(t, "ip", "-n", n1.NS, "-6", "route", "show", "proto", "185")
	netlab.MustContain(t, "vxlan after native", vxlanRoutes, "dev "+testVXLAN+" onlink")
	netlab.MustNotContain(t, "vxlan after native", vxlanRoutes, "dev eth0")

	applyAll(t, l, routes.ModeNative)
	l.RequireAllReach()
	if back := l.State(n1); back != native {
		t.Errorf("native → vxlan → native did not converge:\n%s\n---\n%s", native, back)
	}
	if _, err := netnstest.Exec(n1.NS, "ip", "link", "show", testVXLAN); err == nil {
		t.Error("the VXLAN device outlived VXLAN mode")
	}
}

// TestRestartKeepsConnections streams over a TCP connection between pods on
// two nodes while a fresh Kernel (a restarted plugin: nothing in memory)
// applies the same state: it must change nothing and the stream must not
// stall.
func TestRestartKeepsConnections(t *testing.T) {
	for _, mode := range []routes.Mode{routes.ModeNative, routes.ModeVXLAN} {
		t.Run(string(mode), func(t *testing.T) {
			l := netlab.New(t, 2)
			n1, n2 := l.Nodes[0], l.Nodes[1]
			applyAll(t, l, mode)
			l.RequireReach(n1, n2.EchoAddr())

			stream := netlab.StartStream(t, n1.Pod, n2.EchoAddr())
			stream.Wait(20)

			before := map[string]string{n1.Name: l.State(n1), n2.Name: l.State(n2)}
			for range 3 { // restart a few times while data flows
				for _, n := range l.Nodes {
					if ch := apply(t, n, mode, l.CiliumNodes()); ch.Writes() != 0 {
						t.Errorf("%s: restart wrote to the kernel: %+v", n.Name, ch)
					}
				}
				stream.Wait(5)
			}
			for _, n := range l.Nodes {
				if after := l.State(n); after != before[n.Name] {
					t.Errorf("%s: state changed across restarts:\n%s\n---\n%s", n.Name, before[n.Name], after)
				}
			}
			stream.Wait(20)
		})
	}
}
