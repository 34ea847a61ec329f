package l2announce

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/arptest"
	"github.com/plexus-net/plexus/test/netnstest"
)

// node runs one Announcer in its namespace, as the plugin process would.
type node struct {
	name, ns, mac string
	a             *Announcer
	cancel        context.CancelCauseFunc
	done          chan error
}

func startNode(t *testing.T, name, ns string, spec nodesv1alpha1.L2AnnouncementSpec) *node {
	t.Helper()
	a, err := New(Config{
		NodeName:    name,
		InNamespace: func(f func() error) error { return netnstest.Do(ns, f) },
		Log:         testr.NewWithOptions(t, testr.Options{Verbosity: 0}).WithName(name),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.SetDesired(Desired{Generation: 1, Spec: spec})
	ctx, cancel := context.WithCancelCause(context.Background())
	n := &node{name: name, ns: ns, mac: netnstest.MAC(t, ns, "eth0"), a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- a.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// kill stops the node as a killed process: sockets closed, no goodbye.
func (n *node) kill() { n.cancel(errKilled); <-n.done; n.done <- nil }

// stop stops the node cleanly (goodbye to the peers).
func (n *node) stop() { n.cancel(nil); <-n.done; n.done <- nil }

func (n *node) announces(ip string) bool {
	return slices.ContainsFunc(n.a.Report().Announcing, func(a AnnouncingAddress) bool { return a.IP == ip })
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// prober asks from a client namespace and checks the single-responder rule
// on every request.
type prober struct {
	t *testing.T
	c *arptest.Client
	// known maps MACs to node names for messages.
	known map[string]string
}

func (p *prober) ask(ip netip.Addr, window time.Duration) []string {
	p.t.Helper()
	macs, err := p.c.Ask(ip, window)
	if err != nil {
		p.t.Fatal(err)
	}
	got := arptest.Distinct(macs)
	if len(got) > 1 {
		var names []string
		for _, m := range got {
			names = append(names, p.known[m])
		}
		p.t.Errorf("%v: one request answered by %d nodes %v (%v)", ip, len(got), names, got)
	}
	return got
}

// TestFailoverOnASegment: three nodes on a bridge with the same spec, two
// addresses with different candidate orders, and two clients (one asks ARP
// itself, one holds a kernel neighbour entry that only gratuitous ARP can
// move). Rows A3 and A14 (exactly one node answers), A18 (gratuitous ARP on
// takeover), and the failover: a killed announcer's address is
// answered by the next candidate within 2 s; the restarted node takes it
// back only after RejoinAfter, with never two nodes answering; a cleanly
// stopped node hands over at once.
func TestA3_A14_A15_A18_FailoverOnASegment(t *testing.T) {
	netnstest.RequireRoot(t)
	seg := netnstest.NewSegment(t, 30)
	var nss []string
	spec := nodesv1alpha1.L2AnnouncementSpec{}
	for i := 1; i <= 3; i++ {
		ns, ip := seg.Attach("l2n", i)
		nss = append(nss, ns)
		spec.Peers = append(spec.Peers, nodesv1alpha1.L2Peer{Node: fmt.Sprintf("n%d", i), Address: ip.String()})
	}
	vipA, vipB := netip.MustParseAddr("198.18.30.100"), netip.MustParseAddr("198.18.30.101")
	spec.Addresses = []nodesv1alpha1.L2Address{
		{IP: vipA.String(), Services: []string{"default/a"}, Candidates: []string{"n1", "n2", "n3"}},
		{IP: vipB.String(), Services: []string{"default/b"}, Interfaces: []string{"^eth"}, Candidates: []string{"n2", "n3", "n1"}},
	}
	asker, _ := seg.Attach("l2c", 200)
	holder, _ := seg.Attach("l2h", 201)

	nodes := []*node{startNode(t, "n1", nss[0], spec), startNode(t, "n2", nss[1], spec), startNode(t, "n3", nss[2], spec)}
	c, err := arptest.Open(asker, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &prober{t: t, c: c, known: map[string]string{}}
	for _, n := range nodes {
		p.known[n.mac] = n.name
	}

	// The nodes start one after another, so each counts the others (and
	// itself) alive at a slightly different moment: wait for all views.
	waitFor(t, 5*time.Second, "every node seeing all three alive, n1 announcing A and n2 announcing B", func() bool {
		for _, n := range nodes {
			if !slices.Equal(n.a.Report().LivePeers, []string{"n1", "n2", "n3"}) {
				return false
			}
		}
		return nodes[0].announces(vipA.String()) && nodes[1].announces(vipB.String())
	})
	if got := p.ask(vipA, 300*time.Millisecond); !slices.Equal(got, []string{nodes[0].mac}) {
		t.Errorf("A answered by %v, want n1 only (%s)", got, nodes[0].mac)
	}
	if got := p.ask(vipB, 300*time.Millisecond); !slices.Equal(got, []string{nodes[1].mac}) {
		t.Errorf("B answered by %v, want n2 only (%s)", got, nodes[1].mac)
	}

	// The holder client reaches A through its kernel: its neighbour entry
	// points at n1.
	_ = netnstest.Do(holder, func() error {
		conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(vipA, 9).String(), 300*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return nil
	})
	if got := arptest.Neighbour(t, holder, vipA); got != nodes[0].mac {
		t.Fatalf("holder's neighbour entry for A is %q, want n1's %s", got, nodes[0].mac)
	}

	// Kill n1: n2 answers for A within 2 s.
	killed := time.Now()
	nodes[0].kill()
	var sent time.Time // of the first request n2 answered
	for {
		sent = time.Now()
		got := p.ask(vipA, 100*time.Millisecond)
		if slices.Equal(got, []string{nodes[1].mac}) {
			break
		}
		if len(got) == 1 && got[0] != nodes[1].mac {
			t.Fatalf("A answered by %s after n1 was killed, want n2", p.known[got[0]])
		}
		if time.Since(killed) > 2*time.Second {
			t.Fatalf("A unanswered %v after n1 was killed", time.Since(killed))
		}
	}
	t.Logf("failover after a kill: A answered by n2 (request sent %v after the kill; DeadAfter 400ms)", sent.Sub(killed))
	waitFor(t, time.Second, "the holder's neighbour entry for A to move to n2 by gratuitous ARP", func() bool {
		return arptest.Neighbour(t, holder, vipA) == nodes[1].mac
	})
	t.Logf("holder's neighbour entry on n2 %v after the kill", time.Since(killed))
	if got := p.ask(vipB, 300*time.Millisecond); !slices.Equal(got, []string{nodes[1].mac}) {
		t.Errorf("B answered by %v, want n2 still", got)
	}

	// Restart n1: A moves back only after RejoinAfter, never answered by
	// two nodes in between.
	restarted := time.Now()
	nodes[0] = startNode(t, "n1", nss[0], spec)
	for {
		sent = time.Now()
		got := p.ask(vipA, 50*time.Millisecond)
		if slices.Equal(got, []string{nodes[0].mac}) {
			break
		}
		if time.Since(restarted) > 4*time.Second {
			t.Fatalf("A not back on n1 %v after its restart (answered by %v)", time.Since(restarted), got)
		}
	}
	back := sent.Sub(restarted)
	t.Logf("failback: A answered by n1 again (request sent %v after its restart; RejoinAfter 1s)", back)
	if back < 900*time.Millisecond {
		t.Errorf("A moved back to n1 %v after its restart, before RejoinAfter", back)
	}
	for range 5 {
		if got := p.ask(vipA, 100*time.Millisecond); !slices.Equal(got, []string{nodes[0].mac}) {
			t.Errorf("after failback A answered by %v, want n1 only", got)
		}
	}
	waitFor(t, time.Second, "the holder's neighbour entry for A back on n1", func() bool {
		return arptest.Neighbour(t, holder, vipA) == nodes[0].mac
	})

	// Stop n2 cleanly: it stops answering, says goodbye, n3 takes B at once.
	stopped := time.Now()
	nodes[1].stop()
	for {
		sent = time.Now()
		got := p.ask(vipB, 50*time.Millisecond)
		if slices.Equal(got, []string{nodes[2].mac}) {
			break
		}
		if time.Since(stopped) > 2*time.Second {
			t.Fatalf("B unanswered %v after n2 stopped", time.Since(stopped))
		}
	}
	t.Logf("clean stop: B answered by n3 (request sent %v after the stop began)", sent.Sub(stopped))
	if got := nodes[2].a.Report().LivePeers; !slices.Equal(got, []string{"n1", "n3"}) {
		t.Errorf("n3 sees %v alive after n2 left", got)
	}
}
