package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/bpf/policybpf"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
)

// topology is policytest's topology with the datapath loaded from a
// bpffs of the test's own and attached to both pods' veths.
type topology struct {
	*policytest.Topology
	maps   *Maps
	pinDir string
	// services are the Service frontends program hands to Desired, and
	// hostDevices the node devices a host policy is enforced on.
	services    []Service
	hostDevices []uint32
	opts        Options
}

const idA, idB = 1000, 2000

func newTopology(t testing.TB) *topology { return newTopologyWith(t, Options{}) }

func newTopologyWith(t testing.TB, o Options) *topology {
	tp := &topology{Topology: policytest.New(t), pinDir: policytest.BPFFSFor(t), opts: o}
	tp.open(t)
	t.Cleanup(func() {
		if tp.maps != nil {
			_ = tp.maps.Unpin()
			_ = tp.maps.Close()
		}
	})
	return tp
}

// open loads (or, on a second call, adopts) the maps and attaches the
// programs to both pods' veths, as a starting plugin does.
func (tp *topology) open(t testing.TB) {
	t.Helper()
	m, err := OpenWith(tp.pinDir, tp.opts)
	if err != nil {
		t.Fatal(err)
	}
	tp.maps = m
	if err := netnstest.Do(tp.Node, func() error {
		return errors.Join(m.Attach(policytest.VethA, tp.IfA, false), m.Attach(policytest.VethB, tp.IfB, false))
	}); err != nil {
		t.Fatal(err)
	}
}

// program computes the maps for spec and applies them.
func (tp *topology) program(t testing.TB, spec nodesv1alpha1.NodePolicySpec) Changes {
	t.Helper()
	have, err := tp.maps.Read()
	if err != nil {
		t.Fatal(err)
	}
	res := Desired(Input{
		Spec:      spec,
		Endpoints: []Endpoint{{Ifindex: uint32(tp.IfA), Identity: idA}, {Ifindex: uint32(tp.IfB), Identity: idB}},
		Addresses: map[netip.Addr]uint32{
			netip.MustParseAddr(ipA): idA, netip.MustParseAddr(ipB): idB,
			netip.MustParseAddr(policytest.NodeIP): 1, netip.MustParseAddr(policytest.NodeExt): 1,
		},
		CIDRIdentities: have.CIDRIdentities(),
		Services:       tp.services,
		HostDevices:    tp.hostDevices,
	})
	want, problems := res.State, res.Problems
	if len(problems) > 0 {
		t.Fatalf("problems: %+v", problems)
	}
	c, err := tp.maps.Apply(have, want)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const ipA, ipB, ipExt = policytest.IPA, policytest.IPB, policytest.IPExt

type probe = policytest.Probe

func pr(from, to, port string, want bool) probe {
	return probe{From: from, To: to, Port: port, Want: want}
}

func (tp *topology) check(t *testing.T, stage string, probes ...probe) {
	t.Helper()
	policytest.Check(t, stage, probes...)
}

func entry(peers string, proto, port, end int32) nodesv1alpha1.PolicyEntry {
	return nodesv1alpha1.PolicyEntry{Peers: peers, Protocol: proto, Port: port, EndPort: end}
}

// The truth table of NP-02/03/04/05/13/15 in the kernel: default allow,
// default deny once enforced, the allowed peer and port only, replies of
// allowed connections, per direction, deny precedence, CIDR rules with a
// cut-out exception; a restarted plugin adopts maps and links and writes
// nothing; a policy change never drops a connection still allowed.
func TestNP04_PolicyTruthTableInTheKernel(t *testing.T) {
	tp := newTopology(t)

	// No policy: everything passes.
	tp.program(t, nodesv1alpha1.NodePolicySpec{})
	tp.check(t, "no policy",
		pr(tp.A, ipB, "8080", true), pr(tp.B, ipA, "9090", true), pr(tp.Ext, ipB, "8080", true), pr(tp.A, ipB, "icmp", true))

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
		pr(tp.A, ipB, "8080", true),    // allowed, and its replies pass B's egress (not enforced anyway)
		pr(tp.A, ipB, "9090", false),   // NP-05: other ports closed
		pr(tp.Ext, ipB, "8080", false), // another peer
		pr(tp.A, ipB, "icmp", false),
		pr(tp.B, ipA, "9090", true), // NP-03: B's egress is not enforced; A's reply passes B's ingress by conntrack
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
		pr(tp.A, ipB, "8080", true), pr(tp.B, ipA, "9090", false), pr(tp.B, ipExt, "8080", false))

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
		pr(tp.A, ipB, "8080", true), pr(tp.A, ipB, "9090", false), pr(tp.A, ipB, "icmp", true),
		pr(tp.A, ipExt, "8080", false)) // 10.240.1.5 is cut out of the CIDR set

	world.CIDRs = []string{"10.240.1.0/24"}
	aSpec.PeerSets = []nodesv1alpha1.PeerSet{pB, world}
	tp.program(t, aSpec)
	tp.check(t, "A egress to the whole /24", pr(tp.A, ipExt, "8080", true), pr(tp.A, ipExt, "9090", false))

	// Restart: a new process adopts the pinned maps and links; the same
	// policy writes nothing and enforcement held throughout.
	if err := tp.maps.Close(); err != nil {
		t.Fatal(err)
	}
	tp.check(t, "plugin stopped", pr(tp.A, ipB, "9090", false), pr(tp.A, ipExt, "8080", true))
	tp.open(t)
	if c := tp.program(t, aSpec); c != (Changes{}) {
		t.Errorf("restart rewrote %+v, want nothing", c)
	}
	tp.check(t, "after restart", pr(tp.A, ipB, "9090", false), pr(tp.A, ipExt, "8080", true))
}

// An established connection that the new policy still allows survives
// a policy change that rewrites the entries around it (NP: incremental
// updates): a long-lived connection keeps exchanging data across it.
func TestPolicyChangeKeepsAllowedConnection(t *testing.T) {
	tp := newTopology(t)
	var ln net.Listener
	if err := netnstest.Do(tp.B, func() (err error) {
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
	if err := netnstest.Do(tp.A, func() (err error) {
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

// An ICMP error about an allowed flow passes directions that are enforced
// and allow no ICMP, like the flow's replies (here B's "port unreachable"
// for A's UDP, through B's egress and A's ingress; the same path carries
// "packet too big" for path MTU discovery), while new ICMP stays denied.
func TestICMPErrorsOfAllowedFlowsPass(t *testing.T) {
	tp := newTopology(t)
	closed := nodesv1alpha1.PolicyDirection{Enforced: true}
	tp.program(t, nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{
			{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{Ingress: closed,
				Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 17, 5555, 5555)}}}},
			{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{Egress: closed,
				Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pa", 17, 5555, 5555)}}}},
		},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{idA}}, {Name: "pb", Identities: []int64{idB}}},
	})
	// Nothing listens on B's UDP 5555: B answers "port unreachable",
	// which a connected socket reports as ECONNREFUSED.
	var readErr error
	if err := netnstest.Do(tp.A, func() error {
		c, err := net.Dial("udp4", ipB+":5555")
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "anyone?"); err != nil {
			return err
		}
		_, readErr = c.Read(make([]byte, 16))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(readErr, syscall.ECONNREFUSED) {
		t.Errorf("A's UDP to B's closed port: %v, want connection refused (B's ICMP error let through)", readErr)
	}
	tp.check(t, "new ICMP", pr(tp.B, ipA, "icmp", false), pr(tp.A, ipB, "icmp", false))
}

// A pod's connection to a Service address is judged by the Service's
// backends, not by the address (toServices, NP-21, through kube-proxy):
// the programs run before the node's DNAT (here an nft rule standing in
// for kube-proxy's), so the services map tells them where it leads. A
// Service whose backends the policy allows only in part is refused, as is
// one whose target port is not allowed; replies come back un-DNATed and
// pass by conntrack.
func TestNP21_EgressToServiceAddressJudgedByBackends(t *testing.T) {
	tp := newTopology(t)
	const allowed, wrongPort, mixed = "10.96.0.10", "10.96.0.11", "10.96.0.12"
	netnstest.Run(t, "ip", "netns", "exec", tp.Node, "nft",
		"add table ip svc; add chain ip svc pre { type nat hook prerouting priority dstnat; }; "+
			"add rule ip svc pre ip daddr "+allowed+" tcp dport 80 dnat to "+ipB+":8080; "+
			"add rule ip svc pre ip daddr "+wrongPort+" tcp dport 80 dnat to "+ipB+":9090; "+
			"add rule ip svc pre ip daddr "+mixed+" tcp dport 80 dnat to "+ipB+":8080")
	netnstest.Run(t, "ip", "-n", tp.A, "route", "add", "10.96.0.0/16", "via", policytest.NodeIP)

	tp.program(t, nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 6, 8080, 8080)}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pb", Identities: []int64{idB}}},
	})
	tp.check(t, "no Services known: the address is the world",
		pr(tp.A, ipB, "8080", true), pr(tp.A, allowed, "80", false))

	svc := func(frontend string, backends ...string) Service {
		s := Service{Frontend: netip.MustParseAddrPort(frontend), Proto: 6}
		for _, b := range backends {
			s.Backends = append(s.Backends, netip.MustParseAddrPort(b))
		}
		return s
	}
	tp.services = []Service{
		svc(allowed+":80", ipB+":8080"),
		svc(wrongPort+":80", ipB+":9090"),
		svc(mixed+":80", ipB+":8080", ipExt+":8080"),
	}
	if c := tp.program(t, nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 6, 8080, 8080)}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pb", Identities: []int64{idB}}},
	}); c.Put != 3 || c.Deleted != 0 {
		t.Errorf("adding three Services wrote %+v, want 3 puts", c)
	}
	tp.check(t, "Services known",
		pr(tp.A, allowed, "80", true),    // backend B:8080 is allowed
		pr(tp.A, wrongPort, "80", false), // B, but on a port the policy does not open
		pr(tp.A, mixed, "80", false),     // one backend (the outside host) is not allowed
	)
	st, err := tp.maps.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := ServiceValue{Count: 2, Backends: [MaxServiceBackends]ServiceBackend{{Identity: worldIdentity, Port: 8080}, {Identity: idB, Port: 8080}}}
	if got := st.Services[ServiceKey{Addr: netip.MustParseAddr(mixed), Port: 80, Proto: 6}]; got != want {
		t.Errorf("the mixed Service reads back as %+v, want %+v", got, want)
	}

	// The Service loses its last backend: its address is judged as itself again.
	tp.services = tp.services[1:]
	tp.program(t, nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 6, 8080, 8080)}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pb", Identities: []int64{idB}}},
	})
	tp.check(t, "Service gone", pr(tp.A, allowed, "80", false))
}

// A host policy (NP-12) guards the node itself: on its device towards the
// outside (the programs attached the other way round) what arrives for
// the node's address and what the node's own sockets send; on the pods'
// veths what local pods send to the node. Traffic the node forwards for
// its pods, masqueraded or not, and the node's access to its own pods
// are not the host's to judge. Removing the policy detaches the device.
func TestNP12_HostPolicyInTheKernel(t *testing.T) {
	tp := newTopology(t)
	const dev = "plxphx" // the node's device towards the outside host
	for _, port := range []string{"8080", "9090"} {
		policytest.Serve(t, tp.Node, port)
	}
	idx := tp.Ifindex(t, dev)
	if err := netnstest.Do(tp.Node, func() error { return tp.maps.Attach(dev, idx, true) }); err != nil {
		t.Fatal(err)
	}
	tp.hostDevices = []uint32{uint32(idx)}
	world := nodesv1alpha1.PeerSet{Name: "world", CIDRs: []string{"0.0.0.0/0"}}
	pA := nodesv1alpha1.PeerSet{Name: "pa", Identities: []int64{idA}}
	host := nodesv1alpha1.NodePolicySpec{
		Host: &nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("world", 6, 8080, 8080), entry("pa", 0, 0, 65535)}},
			Egress:  nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("world", 6, 9090, 9090)}},
		},
		PeerSets: []nodesv1alpha1.PeerSet{world, pA},
	}
	tp.program(t, host)
	nodeExt, nodeIP := policytest.NodeExt, policytest.NodeIP
	tp.check(t, "host policy",
		pr(tp.Ext, nodeExt, "8080", true), // allowed, its replies leave by conntrack
		pr(tp.Ext, nodeExt, "9090", false), pr(tp.Ext, nodeExt, "icmp", false),
		pr(tp.A, nodeIP, "9090", true), pr(tp.A, nodeExt, "icmp", true), // pod A may reach the node
		pr(tp.B, nodeIP, "8080", false), pr(tp.B, nodeExt, "icmp", false), // B may not: judged on B's veth
		pr(tp.Node, ipExt, "9090", true), pr(tp.Node, ipExt, "8080", false), // the node's own egress
		pr(tp.Ext, ipB, "8080", true), pr(tp.A, ipExt, "8080", true), // forwarded: not the host's
		pr(tp.Node, ipA, "8080", true), // the node reaches its pods
	)

	tp.program(t, nodesv1alpha1.NodePolicySpec{})
	tp.check(t, "host policy gone", pr(tp.Ext, nodeExt, "9090", true), pr(tp.B, nodeIP, "8080", true), pr(tp.Node, ipExt, "8080", true))
}

// The Go twin of the programs' conntrack key (which an upgrade uses to
// carry old entries over) names the entry the programs make, for either
// direction, either order of the ends, and ICMP echo.
func TestConntrackKeyAsTheProgramsMakeIt(t *testing.T) {
	netnstest.RequireRoot(t)
	m, err := Open(policytest.BPFFSFor(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Unpin(); _ = m.Close() })
	// A test run's packet comes in on lo (ifindex 1): a managed endpoint
	// enforcing nothing, so every packet opens a connection.
	if _, err := m.Apply(State{}, State{Endpoints: map[uint32]EndpointValue{1: {Identity: idA}}}); err != nil {
		t.Fatal(err)
	}
	lo, hi := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.0.1")
	for _, c := range []struct {
		name         string
		dir          Direction
		src, dst     netip.Addr
		proto        uint8
		sport, dport uint16
	}{
		{"egress, lower end first", Egress, lo, hi, 6, 40000, 80},
		{"egress, higher end first", Egress, hi, lo, 6, 40000, 80},
		{"ingress, lower end first", Ingress, lo, hi, 17, 5353, 53},
		{"ingress, higher end first", Ingress, hi, lo, 17, 5353, 53},
		{"same address, ports decide", Egress, lo, lo, 6, 40000, 80},
		{"echo request", Egress, hi, lo, 1, 8 << 8, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if ret, err := m.TestRun(c.dir, policytest.Frame(c.src, c.dst, c.proto, c.sport, c.dport)); err != nil || ret != 0 {
				t.Fatalf("verdict %d (%v), want pass", ret, err)
			}
			old := oldConntrackKey{Saddr: c.src.As16(), Daddr: c.dst.As16(), Sport: be16(c.sport), Dport: be16(c.dport), Proto: c.proto, Dir: uint8(c.dir)}
			if c.proto == 1 { // the echo identifier (0 here) is the "port"
				old.Sport = 0
			}
			var v policybpf.PolicyCtValue
			// Test runs come in on lo: interface 1.
			if err := m.objs.PlxConntrack.Lookup(old.conntrackKey(1), &v); err != nil {
				var entries []string
				var k policybpf.PolicyCtKey
				it := m.objs.PlxConntrack.Iterate()
				for it.Next(&k, &v) {
					entries = append(entries, fmt.Sprintf("%+v", k))
				}
				t.Fatalf("no entry at %+v: %v; the map holds %s", old.conntrackKey(1), err, strings.Join(entries, ", "))
			}
			if v.Opener != uint8(c.dir) {
				t.Errorf("opener %d, want %d", v.Opener, c.dir)
			}
		})
	}
}

// A conntrack map pinned by an earlier plugin (plx_ct: keyed by the
// opening packet, valued by the expiry alone or with a generation) is
// carried over when a new plugin opens the maps, each entry on the
// interface the node routes its endpoint's address to: the connections'
// replies keep passing an enforcing endpoint, each connection's next
// packet the opening way is judged again (no generation), entries of
// endpoints gone are left behind, and the old map goes.
func TestOpenUpgradesAnOldConntrackMap(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.0.0.1")
	gone := netip.MustParseAddr("10.1.0.99")
	for _, valueSize := range []uint32{8, 16} {
		t.Run(fmt.Sprintf("value of %d bytes", valueSize), func(t *testing.T) {
			// The node: the endpoint a behind lo (where test runs come
			// in), no route to the endpoint gone.
			ns := netnstest.New(t, "ctup")
			netnstest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
			netnstest.Run(t, "ip", "-n", ns, "route", "add", a.String()+"/32", "dev", "lo")
			pinDir := policytest.BPFFSFor(t)
			if err := os.MkdirAll(pinDir, 0o700); err != nil {
				t.Fatal(err)
			}
			old, err := ebpf.NewMap(&ebpf.MapSpec{Name: oldConntrackMap, Type: ebpf.LRUHash, KeySize: 40, ValueSize: valueSize, MaxEntries: 1024})
			if err != nil {
				t.Fatal(err)
			}
			// a connected out to b; so did the endpoint gone.
			key := oldConntrackKey{Saddr: a.As16(), Daddr: b.As16(), Sport: be16(40000), Dport: be16(80), Proto: 6, Dir: uint8(Egress)}
			goneKey := key
			goneKey.Saddr = gone.As16()
			expires := uint64(1) << 62 // far ahead
			value := make([]byte, valueSize)
			binary.NativeEndian.PutUint64(value, expires)
			for _, k := range []oldConntrackKey{key, goneKey} {
				if err := old.Put(k, value); err != nil {
					t.Fatal(err)
				}
			}
			if err := old.Pin(filepath.Join(pinDir, oldConntrackMap)); err != nil {
				t.Fatal(err)
			}
			old.Close()

			if err := netnstest.Do(ns, func() error {
				m, err := Open(pinDir)
				if err != nil {
					return fmt.Errorf("opening over an old conntrack map: %w", err)
				}
				t.Cleanup(func() { _ = m.Unpin(); _ = m.Close() })
				var v policybpf.PolicyCtValue
				if err := m.objs.PlxConntrack.Lookup(key.conntrackKey(1), &v); err != nil {
					return fmt.Errorf("the old entry was not carried over to interface 1: %w", err)
				}
				if v.Expires != expires || v.Generation != 0 || v.Opener != uint8(Egress) {
					t.Errorf("carried over as %+v, want the old expiry, opened egress, at generation 0", v)
				}
				if n := countEntries(t, m.objs.PlxConntrack); n != 1 {
					t.Errorf("%d entries carried over, want 1 (not the endpoint's gone)", n)
				}
				if _, err := os.Stat(filepath.Join(pinDir, oldConntrackMap)); !os.IsNotExist(err) {
					t.Errorf("the old map is still pinned (%v)", err)
				}
				// Both directions enforced, nothing allowed: the reply
				// passes by the carried entry alone, and the next packet out
				// is refused.
				if _, err := m.Apply(State{}, State{Endpoints: map[uint32]EndpointValue{
					1: {Identity: idA, Flags: epIngressEnforced | epEgressEnforced}}}); err != nil {
					return err
				}
				if ret, err := m.TestRun(Ingress, policytest.Frame(b, a, 6, 80, 40000)); err != nil || ret != 0 {
					t.Errorf("the reply: verdict %d (%v), want pass", ret, err)
				}
				if ret, err := m.TestRun(Egress, policytest.Frame(a, b, 6, 40000, 80)); err != nil || ret != 2 {
					t.Errorf("the next packet out: verdict %d (%v), want drop (judged again)", ret, err)
				}
				var gen uint32
				if err := m.objs.PlxGeneration.Lookup(uint32(0), &gen); err != nil || gen == 0 {
					t.Errorf("generation %d (%v), want one that is not 0", gen, err)
				}
				// Opened again (a plugin restart), the generation stays.
				again, err := Open(pinDir)
				if err != nil {
					return err
				}
				defer again.Close()
				var genAgain uint32
				if err := again.objs.PlxGeneration.Lookup(uint32(0), &genAgain); err != nil || genAgain != gen {
					t.Errorf("generation after a restart %d (%v), want %d", genAgain, err, gen)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func countEntries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var (
		n int
		k policybpf.PolicyCtKey
		v policybpf.PolicyCtValue
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A pod that sends with another pod's address finds none of that pod's
// connections: its packets are judged as its own (conntrack entries are
// per interface), so it cannot slip into a connection the other pod's
// policy allowed.
func TestSpoofedSourceIsJudgedAsTheSender(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "spoof")
	netnstest.Run(t, "ip", "-n", ns, "link", "add", "victim", "index", "7", "type", "veth", "peer", "name", "spoofer", "index", "8")
	m, err := Open(policytest.BPFFSFor(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Unpin(); _ = m.Close() })
	// The victim (7) may reach the server; the spoofer (8) may reach
	// nothing.
	victim, server := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.0.0.1")
	res := Desired(Input{
		Spec: nodesv1alpha1.NodePolicySpec{
			Identities: []nodesv1alpha1.IdentityPolicy{
				{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
					Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("server", 6, 80, 80)}}}},
				{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{Egress: nodesv1alpha1.PolicyDirection{Enforced: true}}},
			},
			PeerSets: []nodesv1alpha1.PeerSet{{Name: "server", Identities: []int64{3000}}},
		},
		Endpoints: []Endpoint{{Ifindex: 7, Identity: idA}, {Ifindex: 8, Identity: idB}},
		Addresses: map[netip.Addr]uint32{victim: idA, server: 3000},
	})
	if len(res.Problems) > 0 {
		t.Fatal(res.Problems)
	}
	if _, err := m.Apply(State{}, res.State); err != nil {
		t.Fatal(err)
	}
	frame := policytest.Frame(victim, server, 6, 40000, 80)
	from := func(ifindex uint32) uint32 { return fromPodOn(t, m, ns, ifindex, frame) }
	if got := from(7); got != 0 {
		t.Fatalf("the victim's own connection: verdict %d, want pass", got)
	}
	if got := from(7); got != 0 {
		t.Fatalf("the victim's next packet: verdict %d, want pass", got)
	}
	if got := from(8); got != 2 {
		t.Errorf("the same packet from the spoofer's veth: verdict %d, want drop (judged as the spoofer)", got)
	}
}

// The programs find endpoints on interfaces of index below 65,536 in the
// array index and the others in the endpoints map, and a plugin that opens
// the maps rebuilds the index from the endpoints map (after an upgrade from
// plugins without it, or a stop between an endpoint's two writes) before
// its programs read it.
func TestEndpointIndex(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "epx")
	const low, high = 7, 70000
	netnstest.Run(t, "ip", "-n", ns, "link", "add", "low", "index", "7", "type", "veth", "peer", "name", "lowpeer", "index", "8")
	netnstest.Run(t, "ip", "-n", ns, "link", "add", "high", "index", "70000", "type", "veth", "peer", "name", "highpeer")
	pinDir := policytest.BPFFSFor(t)
	m, err := Open(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Unpin(); _ = m.Close() })

	frame := policytest.Frame(netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.0.0.1"), 6, 40000, 80)
	const allowed, dropped = 0, 2 // TC_ACT_OK, TC_ACT_SHOT
	verdict := func(m *Maps, ifindex uint32) uint32 { return fromPodOn(t, m, ns, ifindex, frame) }
	// Egress enforced with no rule: a managed interface drops the packet.
	enforcing := EndpointValue{Identity: idA, Flags: epEgressEnforced}
	have, err := m.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := State{Endpoints: map[uint32]EndpointValue{low: enforcing, high: enforcing}}
	if _, err := m.Apply(have, want); err != nil {
		t.Fatal(err)
	}
	for ifindex, w := range map[uint32]uint32{low: dropped, high: dropped, 8: allowed} {
		if got := verdict(m, ifindex); got != w {
			t.Errorf("interface %d: verdict %d, want %d", ifindex, got, w)
		}
	}

	// The index is what the programs read below 65,536: out of it, the
	// endpoint is unmanaged; a stale entry manages an interface.
	if err := m.objs.PlxEndpointIndex.Put(uint32(low), policybpf.PolicyEndpointValue{}); err != nil {
		t.Fatal(err)
	}
	if err := m.objs.PlxEndpointIndex.Put(uint32(8), policybpf.PolicyEndpointValue{Identity: idB, Flags: epEgressEnforced | epIndexed}); err != nil {
		t.Fatal(err)
	}
	if got := verdict(m, low); got != allowed {
		t.Fatalf("interface %d out of the index: verdict %d, want %d (the array is not what the programs read)", low, got, allowed)
	}
	again, err := Open(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for ifindex, w := range map[uint32]uint32{low: dropped, high: dropped, 8: allowed} {
		if got := verdict(again, ifindex); got != w {
			t.Errorf("after reopening: interface %d: verdict %d, want %d", ifindex, got, w)
		}
	}

	// Taken out, both are unmanaged again.
	if _, err := again.Apply(want, State{}); err != nil {
		t.Fatal(err)
	}
	for _, ifindex := range []uint32{low, high} {
		if got := verdict(again, ifindex); got != allowed {
			t.Errorf("interface %d after its endpoint went: verdict %d, want %d", ifindex, got, allowed)
		}
	}
}

// A pod's established traffic to another pod of the node goes straight
// into it once the receiving side tracks the connection: past the node's
// stack and the receiving veth (whose transmit counter stays still), with
// the TTL a route gives it. StackOnly leaves it all to the node's stack,
// which is also this test's control: there the veth counts every packet.
func TestLocalDelivery(t *testing.T) {
	for _, c := range []struct {
		name      string
		opts      Options
		redirects bool
	}{{"redirect", Options{}, true}, {"stack only", Options{StackOnly: true}, false}} {
		t.Run(c.name, func(t *testing.T) {
			tp := newTopologyWith(t, c.opts)
			tp.program(t, nodesv1alpha1.NodePolicySpec{
				Identities: []nodesv1alpha1.IdentityPolicy{
					{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
						Egress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 17, 5555, 5555), entry(nodesv1alpha1.AnyPeer, 6, 8080, 8080)}}}},
					{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
						Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pa", 17, 5555, 5555)}}}},
				},
				PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{idA}}, {Name: "pb", Identities: []int64{idB}}},
			})
			// B echoes each datagram back with the TTL it arrived with.
			var server *net.UDPConn
			if err := netnstest.Do(tp.B, func() (err error) {
				server, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 5555})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			raw, err := server.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			if err := raw.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVTTL, 1) }); err != nil {
				t.Fatal(err)
			}
			go func() {
				buf, oob := make([]byte, 64), make([]byte, 64)
				for {
					n, oobn, _, from, err := server.ReadMsgUDP(buf, oob)
					if err != nil {
						return
					}
					ttl := -1
					if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
						for _, m := range msgs {
							if m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_TTL && len(m.Data) >= 4 {
								ttl = int(m.Data[0])
							}
						}
					}
					_, _ = server.WriteToUDP(fmt.Appendf(nil, "%s ttl=%d", buf[:n], ttl), from)
				}
			}()
			txOfB := func() uint64 {
				var tx uint64
				if err := netnstest.Do(tp.Node, func() error {
					l, err := netlink.LinkByName(policytest.VethB)
					if err != nil {
						return err
					}
					tx = l.Attrs().Statistics.TxPackets
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return tx
			}
			const messages = 50
			var replies []string
			before := txOfB()
			if err := netnstest.Do(tp.A, func() error {
				conn, err := net.Dial("udp4", ipB+":5555")
				if err != nil {
					return err
				}
				defer conn.Close()
				buf := make([]byte, 64)
				for i := range messages {
					_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
					if _, err := fmt.Fprintf(conn, "m%d", i); err != nil {
						return err
					}
					n, err := conn.Read(buf)
					if err != nil {
						return fmt.Errorf("reply to message %d: %w", i, err)
					}
					replies = append(replies, string(buf[:n]))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			through := txOfB() - before
			for i, r := range replies {
				if want := fmt.Sprintf("m%d ttl=63", i); r != want {
					t.Errorf("reply %d: %q, want %q (one hop, as routed)", i, r, want)
				}
			}
			if c.redirects && through > 5 {
				t.Errorf("%d of %d packets to B went through B's veth, want only the first few (delivered straight into B)", through, messages)
			}
			if c.redirects {
				// A's connection to the outside host learns, at its first
				// packet after the opening one, that the peer is not here.
				var local netip.AddrPort
				if err := netnstest.Do(tp.A, func() error {
					conn, err := net.DialTimeout("tcp4", ipExt+":8080", time.Second)
					if err != nil {
						return err
					}
					defer conn.Close()
					local = netip.MustParseAddrPort(conn.LocalAddr().String())
					_, err = io.ReadAll(conn)
					return err
				}); err != nil {
					t.Fatalf("A to the outside host: %v", err)
				}
				key := oldConntrackKey{Saddr: local.Addr().As16(), Daddr: netip.MustParseAddr(ipExt).As16(), Sport: be16(local.Port()), Dport: be16(8080),
					Proto: 6, Dir: uint8(Egress)}
				var v policybpf.PolicyCtValue
				if err := tp.maps.objs.PlxConntrack.Lookup(key.conntrackKey(uint32(tp.IfA)), &v); err != nil {
					t.Fatalf("A's connection to the outside host is not tracked: %v", err)
				}
				if v.PeerElsewhere != 1 {
					t.Errorf("A's connection to the outside host: %+v, want the peer known to be elsewhere", v)
				}
			}
			if !c.redirects && through < messages {
				t.Errorf("%d of %d packets to B went through B's veth, want all (stack only)", through, messages)
			}
		})
	}
}

// fromPodOn is from_pod's verdict on frame coming in on interface ifindex
// of namespace ns (a test run, which may set the interface).
func fromPodOn(t *testing.T, m *Maps, ns string, ifindex uint32, frame []byte) uint32 {
	t.Helper()
	var ctx [11]uint32 // __sk_buff up to ifindex, the 11th field
	ctx[10] = ifindex
	var ret uint32
	if err := netnstest.Do(ns, func() (err error) {
		ret, err = m.objs.FromPod.Run(&ebpf.RunOptions{Data: frame, Context: ctx})
		return err
	}); err != nil {
		t.Fatalf("running the program on interface %d: %v", ifindex, err)
	}
	return ret
}
