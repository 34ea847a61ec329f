package datapath

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/netnstest"
)

// topology is a node namespace with two pods, each on a veth: pod A
// (10.240.0.10, identity 1000) and pod B (10.240.0.20, identity 2000),
// and an "outside" address 10.240.1.5 behind the node (a third namespace)
// that stands for the world. Each pod serves TCP on 8080 and 9090.
type topology struct {
	node, a, b, ext string
	ifA, ifB        int
	maps            *Maps
	pinDir          string
}

const (
	ipA, ipB, ipExt = "10.240.0.10", "10.240.0.20", "10.240.1.5"
	idA, idB        = 1000, 2000
)

func newTopology(t *testing.T) *topology {
	netnstest.RequireRoot(t)
	tp := &topology{node: netnstest.New(t, "plxpn"), a: netnstest.New(t, "plxpa"), b: netnstest.New(t, "plxpb"), ext: netnstest.New(t, "plxpx")}
	run := func(args ...string) { netnstest.Run(t, "ip", args...) }
	run("-n", tp.node, "link", "set", "lo", "up")
	for _, p := range []struct{ ns, host, ip string }{{tp.a, "plxpha", ipA}, {tp.b, "plxphb", ipB}} {
		run("-n", tp.node, "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		run("-n", tp.node, "addr", "add", "10.240.0.1/32", "dev", p.host)
		run("-n", tp.node, "link", "set", p.host, "up")
		run("-n", tp.node, "route", "add", p.ip+"/32", "dev", p.host)
		run("-n", p.ns, "addr", "add", p.ip+"/32", "dev", "eth0")
		run("-n", p.ns, "link", "set", "eth0", "up")
		run("-n", p.ns, "route", "add", "10.240.0.1/32", "dev", "eth0")
		run("-n", p.ns, "route", "add", "10.240.0.0/16", "via", "10.240.0.1")
	}
	run("-n", tp.node, "link", "add", "plxphx", "type", "veth", "peer", "name", "eth0", "netns", tp.ext)
	run("-n", tp.node, "addr", "add", "10.240.1.1/24", "dev", "plxphx")
	run("-n", tp.node, "link", "set", "plxphx", "up")
	run("-n", tp.ext, "addr", "add", ipExt+"/24", "dev", "eth0")
	run("-n", tp.ext, "link", "set", "eth0", "up")
	run("-n", tp.ext, "route", "add", "10.240.0.0/24", "via", "10.240.1.1")
	netnstest.Run(t, "ip", "netns", "exec", tp.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	tp.ifA, tp.ifB = tp.ifindex(t, "plxpha"), tp.ifindex(t, "plxphb")

	for _, ns := range []string{tp.a, tp.b, tp.ext} {
		for _, port := range []string{"8080", "9090"} {
			serve(t, ns, port)
		}
	}
	// A bpffs of the test's own, so its pins go with it.
	root := t.TempDir()
	if err := EnsureBPFFS(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	tp.pinDir = filepath.Join(root, "plexus", "policy")
	tp.open(t)
	t.Cleanup(func() {
		if tp.maps != nil {
			_ = tp.maps.Unpin()
			_ = tp.maps.Close()
		}
	})
	return tp
}

func (tp *topology) ifindex(t *testing.T, name string) int {
	var idx int
	if err := netnstest.Do(tp.node, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// open loads (or, on a second call, adopts) the maps and attaches the
// programs to both pods' veths, as a starting plugin does.
func (tp *topology) open(t *testing.T) {
	t.Helper()
	m, err := Open(tp.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	tp.maps = m
	if err := netnstest.Do(tp.node, func() error {
		return errors.Join(m.Attach("plxpha", tp.ifA), m.Attach("plxphb", tp.ifB))
	}); err != nil {
		t.Fatal(err)
	}
}

// serve answers every TCP connection on port in ns with "ok" and closes.
func serve(t *testing.T, ns, port string) {
	t.Helper()
	var ln net.Listener
	if err := netnstest.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp4", ":"+port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "ok")
			c.Close()
		}
	}()
}

// program computes the maps for spec and applies them.
func (tp *topology) program(t *testing.T, spec nodesv1alpha1.NodePolicySpec) Changes {
	t.Helper()
	have, err := tp.maps.Read()
	if err != nil {
		t.Fatal(err)
	}
	want, _, problems := Desired(Input{
		Spec:      spec,
		Endpoints: []Endpoint{{Ifindex: uint32(tp.ifA), Identity: idA}, {Ifindex: uint32(tp.ifB), Identity: idB}},
		Addresses: map[netip.Addr]uint32{
			netip.MustParseAddr(ipA): idA, netip.MustParseAddr(ipB): idB,
			netip.MustParseAddr("10.240.0.1"): 1, netip.MustParseAddr("10.240.1.1"): 1,
		},
		CIDRIdentities: have.CIDRIdentities(),
	})
	if len(problems) > 0 {
		t.Fatalf("problems: %+v", problems)
	}
	c, err := tp.maps.Apply(have, want)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reach says whether a TCP connection from ns to ip:port gets its answer.
func reach(ns, ip, port string) bool {
	got, err := netnstest.ReadFrom(ns, ip+":"+port)
	return err == nil && got == "ok"
}

func ping(ns, ip string) bool {
	_, err := netnstest.Exec(ns, "ping", "-c1", "-W1", ip)
	return err == nil
}

type probe struct {
	from, to, port string
	want           bool
}

func (tp *topology) check(t *testing.T, stage string, probes ...probe) {
	t.Helper()
	for _, p := range probes {
		var got bool
		if p.port == "icmp" {
			got = ping(p.from, p.to)
		} else {
			got = reach(p.from, p.to, p.port)
		}
		if got != p.want {
			t.Errorf("%s: %s → %s:%s reached=%v, want %v", stage, p.from, p.to, p.port, got, p.want)
		}
	}
}

func entry(peers string, proto, port, end int32) nodesv1alpha1.PolicyEntry {
	return nodesv1alpha1.PolicyEntry{Peers: peers, Protocol: proto, Port: port, EndPort: end}
}

// The truth table of NP-02/03/04/05/13/15 in the kernel: default allow,
// default deny once enforced, the allowed peer and port only, replies of
// allowed connections, per direction, deny precedence, CIDR rules with a
// cut-out exception; a restarted plugin adopts maps and links and writes
// nothing; a policy change never drops a connection still allowed.
func TestPolicyEnforcedInTheKernel(t *testing.T) {
	tp := newTopology(t)

	// No policy: everything passes.
	tp.program(t, nodesv1alpha1.NodePolicySpec{})
	tp.check(t, "no policy",
		probe{tp.a, ipB, "8080", true}, probe{tp.b, ipA, "9090", true}, probe{tp.ext, ipB, "8080", true}, probe{tp.a, ipB, "icmp", true})

	// B enforces ingress: only A on TCP 8080 (and the host, implicitly).
	pA := nodesv1alpha1.PeerSet{Name: "pa", Identities: []int64{idA}}
	pHost := nodesv1alpha1.PeerSet{Name: "phost", Identities: []int64{1}}
	onlyA8080 := nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pa", 6, 8080, 8080), entry("phost", 0, 0, 65535)}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{pA, pHost},
	}
	tp.program(t, onlyA8080)
	tp.check(t, "B ingress from A on 8080 only",
		probe{tp.a, ipB, "8080", true},    // allowed, and its replies pass B's egress (not enforced anyway)
		probe{tp.a, ipB, "9090", false},   // NP-05: other ports closed
		probe{tp.ext, ipB, "8080", false}, // another peer
		probe{tp.a, ipB, "icmp", false},
		probe{tp.b, ipA, "9090", true}, // NP-03: B's egress is not enforced; A's reply passes B's ingress by conntrack
	)

	// B also enforces egress, with nothing allowed: B starts nothing, but
	// replies to A's allowed connections still leave (NP-04).
	withEgress := onlyA8080
	withEgress.Identities = []nodesv1alpha1.IdentityPolicy{{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
		Ingress: onlyA8080.Identities[0].Ingress,
		Egress:  nodesv1alpha1.PolicyDirection{Enforced: true},
	}}}
	tp.program(t, withEgress)
	tp.check(t, "B egress enforced",
		probe{tp.a, ipB, "8080", true}, probe{tp.b, ipA, "9090", false}, probe{tp.b, ipExt, "8080", false})

	// A's egress: allow everything, deny B on 9000-9999 (NP-13: the deny
	// wins inside the allow); to the world only 10.240.1.0/24 except
	// 10.240.1.5/32 (NP-15).
	world := nodesv1alpha1.PeerSet{Name: "pnet", CIDRs: []string{"10.240.1.0/30", "10.240.1.4/32", "10.240.1.6/31", "10.240.1.8/29", "10.240.1.16/28", "10.240.1.32/27", "10.240.1.64/26", "10.240.1.128/25"}}
	pB := nodesv1alpha1.PeerSet{Name: "pb", Identities: []int64{idB}}
	aSpec := nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{
				entry("pb", 0, 0, 65535), {Deny: true, Peers: "pb", Protocol: 6, Port: 9000, EndPort: 9999},
				entry("pnet", 6, 8080, 8080),
			}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{pB, world},
	}
	tp.program(t, aSpec)
	tp.check(t, "A egress with deny and CIDR",
		probe{tp.a, ipB, "8080", true}, probe{tp.a, ipB, "9090", false}, probe{tp.a, ipB, "icmp", true},
		probe{tp.a, ipExt, "8080", false}) // 10.240.1.5 is cut out of the CIDR set

	world.CIDRs = []string{"10.240.1.0/24"}
	aSpec.PeerSets = []nodesv1alpha1.PeerSet{pB, world}
	tp.program(t, aSpec)
	tp.check(t, "A egress to the whole /24", probe{tp.a, ipExt, "8080", true}, probe{tp.a, ipExt, "9090", false})

	// Restart: a new process adopts the pinned maps and links; the same
	// policy writes nothing and enforcement held throughout.
	if err := tp.maps.Close(); err != nil {
		t.Fatal(err)
	}
	tp.check(t, "plugin stopped", probe{tp.a, ipB, "9090", false}, probe{tp.a, ipExt, "8080", true})
	tp.open(t)
	if c := tp.program(t, aSpec); c != (Changes{}) {
		t.Errorf("restart rewrote %+v, want nothing", c)
	}
	tp.check(t, "after restart", probe{tp.a, ipB, "9090", false}, probe{tp.a, ipExt, "8080", true})
}

// An established connection that the new policy still allows survives
// a policy change that rewrites the entries around it (NP: incremental
// updates): a long-lived connection keeps exchanging data across it.
func TestPolicyChangeKeepsAllowedConnection(t *testing.T) {
	tp := newTopology(t)
	var ln net.Listener
	if err := netnstest.Do(tp.b, func() (err error) {
		ln, err = net.Listen("tcp4", ":7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(c, c) // echo
	}()
	pA := nodesv1alpha1.PeerSet{Name: "pa", Identities: []int64{idA}}
	spec := func(first, last int32, extra ...nodesv1alpha1.PolicyEntry) nodesv1alpha1.NodePolicySpec {
		return nodesv1alpha1.NodePolicySpec{
			Identities: []nodesv1alpha1.IdentityPolicy{{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
				Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: append([]nodesv1alpha1.PolicyEntry{entry("pa", 6, first, last)}, extra...)},
			}}},
			PeerSets: []nodesv1alpha1.PeerSet{pA},
		}
	}
	tp.program(t, spec(7000, 7000))
	var conn net.Conn
	if err := netnstest.Do(tp.a, func() (err error) {
		conn, err = net.DialTimeout("tcp4", ipB+":7000", time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(stage string) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		msg := fmt.Sprintf("%s\n", stage)
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatalf("%s: write: %v", stage, err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("%s: echo %q, %v", stage, buf, err)
		}
	}
	echo("before")
	// The range around the port changes shape (other prefixes), an
	// unrelated entry comes and goes: the connection keeps working.
	for i, s := range []nodesv1alpha1.NodePolicySpec{
		spec(6000, 7999), spec(7000, 7001, entry("pa", 17, 53, 53)), spec(1, 65535), spec(7000, 7000),
	} {
		c := tp.program(t, s)
		if c.Put == 0 {
			t.Fatalf("change %d wrote nothing", i)
		}
		echo(fmt.Sprintf("after change %d", i))
	}
	// Taken away, the connection's next packets are dropped.
	tp.program(t, spec(8000, 8000))
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(conn, "x\n")
	if _, err := conn.Read(make([]byte, 2)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("after the port was taken away: read %v, want a timeout", err)
	}
}
