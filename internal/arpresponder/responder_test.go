package arpresponder_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/internal/arpresponder"
	"github.com/plexus-net/plexus/test/arptest"
	"github.com/plexus-net/plexus/test/netnstest"
)

var (
	vip1 = netip.MustParseAddr("198.18.10.100")
	vip2 = netip.MustParseAddr("198.18.10.101")
	vip3 = netip.MustParseAddr("198.18.11.100")
)

// topology is a "node" namespace and a "client" namespace joined by two
// veth pairs: eth0 (198.18.10.0/24) and eth1 (198.18.11.0/24).
type topology struct {
	node, client string
}

func newTopology(t *testing.T) topology {
	t.Helper()
	tp := topology{node: netnstest.New(t, "arpn"), client: netnstest.New(t, "arpc")}
	for i := range 2 {
		tp.connect(t, i)
	}
	return tp
}

// connect (re)creates the veth pair eth<i> between node and client.
func (tp topology) connect(t *testing.T, i int) {
	t.Helper()
	eth := "eth" + string(rune('0'+i))
	tmp := netnstest.Name("arpv")
	netnstest.Run(t, "ip", "-n", tp.node, "link", "add", eth, "type", "veth", "peer", "name", tmp, "netns", tp.client)
	netnstest.Run(t, "ip", "-n", tp.client, "link", "set", tmp, "name", eth)
	for j, ns := range []string{tp.node, tp.client} {
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", "198.18.1"+string(rune('0'+i))+"."+string(rune('1'+j))+"/24", "dev", eth)
		netnstest.Run(t, "ip", "-n", ns, "link", "set", eth, "up")
	}
}

func (tp topology) nodeMAC(t *testing.T, eth string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := netnstest.Do(tp.node, func() error {
		ifi, err := net.InterfaceByName(eth)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

func (tp topology) responder(t *testing.T) *arpresponder.Responder {
	r := arpresponder.New(arpresponder.Config{
		Rescan:      200 * time.Millisecond,
		InNamespace: func(f func() error) error { return netnstest.Do(tp.node, f) },
	})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func client(t *testing.T, ns, eth string) *arptest.Client {
	t.Helper()
	c, err := arptest.Open(ns, eth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ask(t *testing.T, c *arptest.Client, ip netip.Addr) []string {
	t.Helper()
	macs, err := c.Ask(ip, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(macs) > 1 {
		t.Errorf("%v: %d replies %v to one request, want at most one", ip, len(macs), macs)
	}
	return arptest.Distinct(macs)
}

func TestA10_A14_A26_AnswersExactlyTheHeldPairs(t *testing.T) {
	tp := newTopology(t)
	r := tp.responder(t)
	mac0 := tp.nodeMAC(t, "eth0").String()
	c0, c1 := client(t, tp.client, "eth0"), client(t, tp.client, "eth1")

	if got := ask(t, c0, vip1); len(got) != 0 {
		t.Fatalf("answered before anything was held: %v", got)
	}
	if err := r.Set([]arpresponder.Pair{{IP: vip1, Interface: "eth0"}}); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, c0, vip1); len(got) != 1 || got[0] != mac0 {
		t.Errorf("held %v on eth0: replies %v, want [%s]", vip1, got, mac0)
	}
	if got := ask(t, c0, vip2); len(got) != 0 {
		t.Errorf("%v is not held, but answered by %v", vip2, got)
	}
	// eth1 is not selected for vip1: the same question there is not
	// answered (the client asks from 198.18.11.2, the kernel would not
	// answer for a foreign address either).
	if got := ask(t, c1, vip1); len(got) != 0 {
		t.Errorf("%v is held on eth0 only, but answered on eth1 by %v", vip1, got)
	}
	st := r.Stats()[arpresponder.Pair{IP: vip1, Interface: "eth0"}]
	if st.Answered != 1 || !st.Active {
		t.Errorf("stats %+v, want 1 answered and active", st)
	}

	// Removal takes effect before Set returns.
	if err := r.Set(nil); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, c0, vip1); len(got) != 0 {
		t.Errorf("answered right after removal: %v", got)
	}
	if len(r.Stats()) != 0 {
		t.Errorf("stats of removed pairs remain: %v", r.Stats())
	}
}

// TestGratuitousARPUpdatesNeighbour: a client that has the address on
// another MAC (the previous holder) moves to the new holder's MAC on the
// gratuitous ARP alone, with the default arp_accept=0; and the burst is
// three frames.
func TestA18_GratuitousARPUpdatesNeighbour(t *testing.T) {
	tp := newTopology(t)
	r := tp.responder(t)
	mac0 := tp.nodeMAC(t, "eth0").String()
	netnstest.Run(t, "ip", "-n", tp.client, "neigh", "replace", vip1.String(), "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale")

	pair := arpresponder.Pair{IP: vip1, Interface: "eth0"}
	if err := r.Set([]arpresponder.Pair{pair}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for arptest.Neighbour(t, tp.client, vip1) != mac0 {
		if time.Now().After(deadline) {
			t.Fatalf("client neighbour %v is %q, want %s after the gratuitous ARP", vip1, arptest.Neighbour(t, tp.client, vip1), mac0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the burst is 0/100/300 ms
	if got := r.Stats()[pair].GARPs; got != 3 {
		t.Errorf("%d gratuitous ARPs after the burst, want 3", got)
	}
}

// TestInterfaceThatComesBackIsReopened: the interface is deleted and
// created again (a new index and MAC); the responder answers on the new one
// with the new MAC, without a new Set.
func TestInterfaceThatComesBackIsReopened(t *testing.T) {
	tp := newTopology(t)
	r := tp.responder(t)
	pair := arpresponder.Pair{IP: vip3, Interface: "eth1"}
	if err := r.Set([]arpresponder.Pair{pair}); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, client(t, tp.client, "eth1"), vip3); len(got) != 1 {
		t.Fatalf("replies %v, want one", got)
	}

	netnstest.Run(t, "ip", "-n", tp.node, "link", "del", "eth1")
	deadline := time.Now().Add(3 * time.Second)
	for r.Stats()[pair].Active {
		if time.Now().After(deadline) {
			t.Fatal("the pair stays active after its interface was deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("deleted interface: %+v", r.Stats()[pair])

	tp.connect(t, 1)
	mac1 := tp.nodeMAC(t, "eth1").String()
	c1 := client(t, tp.client, "eth1")
	deadline = time.Now().Add(3 * time.Second)
	for {
		got := ask(t, c1, vip3)
		if len(got) == 1 && got[0] == mac1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recreated interface: replies %v, want [%s]; stats %+v", got, mac1, r.Stats()[pair])
		}
	}
}

func TestSetRejectsBadPairsAndReportsMissingInterfaces(t *testing.T) {
	tp := newTopology(t)
	r := tp.responder(t)
	err := r.Set([]arpresponder.Pair{
		{IP: vip1, Interface: "eth0"},
		{IP: netip.MustParseAddr("fd00::1"), Interface: "eth0"},
		{IP: vip2, Interface: "nosuch0"},
	})
	if err == nil || !strings.Contains(err.Error(), "fd00::1") || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("error %v, want it to name the IPv6 pair and the missing interface", err)
	}
	st := r.Stats()
	if !st[arpresponder.Pair{IP: vip1, Interface: "eth0"}].Active {
		t.Error("the good pair is not active")
	}
	if s := st[arpresponder.Pair{IP: vip2, Interface: "nosuch0"}]; s.Active || s.Error == "" {
		t.Errorf("pair on a missing interface: %+v, want inactive with an error", s)
	}
	if got := ask(t, client(t, tp.client, "eth0"), vip1); len(got) != 1 {
		t.Errorf("good pair: replies %v", got)
	}
}
