package datapath

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/bpf/policybpf"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
)

// BenchmarkVerdict times the to_pod program with BPF_PROG_TEST_RUN (the
// test run's skb comes in on loopback, ifindex 1, which stands for the
// pod's veth here), with policy maps of growing size. Cases:
//   - unmanaged: a packet for an interface that is no endpoint (one array
//     lookup): the floor of the test run and the program;
//   - established: the next packet of a connection judged allowed at the
//     maps' current generation (conntrack hit, refreshed);
//   - reply: a packet of a connection the pod opened, coming back;
//   - new-flow: the first packet of a connection (a new source port each
//     time; one test run per packet, timed by the kernel): a conntrack
//     miss, the peer's identity from the ipcache, the verdict (from its
//     cache after the first), a conntrack entry and a flow event; also
//     what it costs over the connection's second packet, timed alike;
//   - denied: a packet to a closed port (judged each time, a drop event).
//
// The figure is per packet.
func BenchmarkVerdict(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, peers := range []int{10, 1_000, 10_000, 30_000} {
		b.Run(fmt.Sprintf("peers=%d", peers), func(b *testing.B) {
			maps, err := Open(policytest.BPFFSFor(b))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = maps.Unpin(); _ = maps.Close() }()
			// Identity 1000 on "ifindex 1" enforces ingress; each of the
			// peers may reach two port ranges; the sender is the last.
			ids := make([]int64, peers)
			for i := range ids {
				ids[i] = int64(5000 + i)
			}
			var entries []nodesv1alpha1.PolicyEntry
			for i := range peers {
				name := fmt.Sprintf("p%d", i)
				entries = append(entries,
					nodesv1alpha1.PolicyEntry{Peers: name, Protocol: 6, Port: 8080, EndPort: 8080},
					nodesv1alpha1.PolicyEntry{Peers: name, Protocol: 6, Port: 9000, EndPort: 9100})
			}
			spec := nodesv1alpha1.NodePolicySpec{Identities: []nodesv1alpha1.IdentityPolicy{{Identity: 1000,
				DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: entries}}}}}
			for i := range peers {
				spec.PeerSets = append(spec.PeerSets, nodesv1alpha1.PeerSet{Name: fmt.Sprintf("p%d", i), Identities: []int64{ids[i]}})
			}
			src, dst := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.0.0.1")
			res := Desired(Input{Spec: spec, Endpoints: []Endpoint{{Ifindex: 1, Identity: 1000}},
				Addresses: map[netip.Addr]uint32{src: uint32(ids[peers-1]), dst: 1000}})
			want, problems := res.State, res.Problems
			if len(problems) > 0 {
				b.Fatal(problems)
			}
			have, _ := maps.Read()
			if _, err := maps.Apply(have, want); err != nil {
				b.Fatal(err)
			}
			const allowed, denied = 0, 2 // TC_ACT_OK, TC_ACT_SHOT
			for _, c := range []struct {
				name  string
				port  uint16
				want  uint32
				setup func(b *testing.B)
			}{
				{"unmanaged", 8080, allowed, func(b *testing.B) { b.Cleanup(maps.withoutEndpoint(b, 1)) }},
				{"established", 8080, allowed, nil},
				{"reply", 8080, allowed, func(b *testing.B) {
					// The pod's own connection out to the peer (egress is
					// not enforced), whose replies come back in.
					out := policytest.Frame(dst, src, 6, 8080, 40000)
					if ret, _, err := maps.objs.FromPod.Benchmark(out, 1, nil); err != nil || ret != allowed {
						b.Fatalf("the pod's connection out: %d (%v)", ret, err)
					}
				}},
				{"denied", 7000, denied, nil},
			} {
				b.Run(c.name, func(b *testing.B) {
					if c.setup != nil {
						c.setup(b)
					}
					pkt := policytest.Frame(src, dst, 6, 40000, c.port)
					ret, _, err := maps.objs.ToPod.Benchmark(pkt, 1, nil)
					if err != nil || ret != c.want {
						b.Fatalf("verdict %d (%v), want %d", ret, err, c.want)
					}
					ret, per, err := maps.objs.ToPod.Benchmark(pkt, b.N, nil)
					if err != nil || ret != c.want {
						b.Fatalf("verdict %d (%v), want %d", ret, err, c.want)
					}
					b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
					b.ReportMetric(float64(len(want.Policy)), "policy-entries")
				})
			}
			b.Run("new-flow", func(b *testing.B) {
				// A test run of one packet costs more than the kernel's
				// loop does per packet (its timer, a cold start): each new
				// connection's first packet is followed by its second,
				// timed the same way, and the difference is what a first
				// packet costs over an established one.
				var first, second time.Duration
				for i := range b.N {
					// Every packet a connection of its own (up to 6.4 million).
					pkt := policytest.Frame(src, dst, 6, uint16(1024+i%64000), uint16(9000+(i/64000)%101))
					for _, total := range []*time.Duration{&first, &second} {
						ret, took, err := maps.objs.ToPod.Benchmark(pkt, 1, nil)
						if err != nil || ret != allowed {
							b.Fatalf("verdict %d (%v), want %d", ret, err, allowed)
						}
						*total += took
					}
				}
				b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "ns/packet")
				b.ReportMetric(float64((first-second).Nanoseconds())/float64(b.N), "ns-over-established")
				b.ReportMetric(float64(len(want.Policy)), "policy-entries")
			})
		})
	}
}

// withoutEndpoint takes ifindex out of the endpoints map and returns what
// puts it back.
func (m *Maps) withoutEndpoint(b *testing.B, ifindex uint32) func() {
	var v policybpf.PolicyEndpointValue
	if err := m.objs.PlxEndpoints.Lookup(ifindex, &v); err != nil {
		b.Fatal(err)
	}
	if err := m.deleteEndpoint(ifindex); err != nil {
		b.Fatal(err)
	}
	return func() {
		if err := m.putEndpoint(ifindex, EndpointValue{Identity: v.Identity, Flags: v.Flags}); err != nil {
			b.Error(err)
		}
	}
}

// A policy larger than the policy map is an error of Apply (which the
// plugin reports in its NodePolicy's status), never a silent partial
// program, and the map's size is the plugin's to set
// (--bpf-policy-map-max); a pinned map of another size is refused with
// what to do, not replaced behind enforcement's back: NP-25.
func TestNP25_FullPolicyMapIsReported(t *testing.T) {
	netnstest.RequireRoot(t)
	pinDir := policytest.BPFFS(t)
	maps, err := OpenWith(pinDir, Options{PolicyEntries: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = maps.Unpin(); _ = maps.Close() }()
	fill := func(n int) State {
		want := State{Policy: map[PolicyKey]uint32{}}
		for i := range n {
			want.Policy[PolicyKey{Local: 1000, Peer: uint32(5000 + i), Proto: 6, Port: 80, PortBits: 16}] = 0
		}
		return want
	}
	have, err := maps.Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := maps.Apply(have, fill(1000)); err != nil {
		t.Errorf("1,000 entries into a map of 1,000: %v", err)
	}
	have, _ = maps.Read()
	if _, err := maps.Apply(have, fill(1001)); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("1,001 entries into a map of 1,000: %v, want an error saying it is full", err)
	}
	if _, err := OpenWith(pinDir, Options{PolicyEntries: 2000}); err == nil || !strings.Contains(err.Error(), "cannot be resized") {
		t.Errorf("reopening the pins with another size: %v, want an error saying the map cannot be resized", err)
	}
}

// BenchmarkPodToPod measures what enforcement costs real traffic between
// two pods of one node (veths through the node namespace): TCP
// throughput (1 MiB per op, MB/s) and request-response latency (one
// 1-byte round trip per op), with no programs attached ("off"), with the
// programs attached but no endpoint in the maps ("attached": what the
// TCX hooks cost with a program that only looks the interface up), with
// both pods enforcing both directions through the node's stack
// ("on-stack-only": A may reach B's port, the replies pass by connection
// tracking, so each round trip runs the programs four times), and the
// same as shipped ("on": established packets go straight into the
// receiving pod, so each round trip runs the programs twice and skips
// the node's stack).
func BenchmarkPodToPod(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, mode := range []string{"off", "attached", "on-stack-only", "on"} {
		b.Run("enforcement="+mode, func(b *testing.B) {
			tp := &topology{Topology: policytest.New(b), pinDir: policytest.BPFFSFor(b), opts: Options{StackOnly: mode == "on-stack-only"}}
			if mode != "off" {
				tp.open(b)
				defer func() { _ = tp.maps.Unpin(); _ = tp.maps.Close() }()
			}
			if strings.HasPrefix(mode, "on") {
				tp.program(b, podToPodPolicy)
			}
			podTraffic(b, tp.A, tp.B)
		})
	}
}

// BenchmarkPodToPodAcrossNodes is BenchmarkPodToPod between pods of two
// nodes (veth, node 1, the underlay veth, node 2, veth), each node with
// its own maps and programs: "off", "attached" and "on" (where packets
// take the nodes' stacks, as between nodes they always do).
func BenchmarkPodToPodAcrossNodes(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, mode := range []string{"off", "attached", "on"} {
		b.Run("enforcement="+mode, func(b *testing.B) {
			tn := newTwoNodes(b)
			addresses := map[netip.Addr]uint32{netip.MustParseAddr(ipA): idA, netip.MustParseAddr(ipB): idB,
				netip.MustParseAddr(policytest.NodeIP): 1}
			for _, n := range []struct {
				node, veth string
				pod        Endpoint
			}{{tn.node1, policytest.VethA, Endpoint{Ifindex: tn.ifA, Identity: idA}}, {tn.node2, policytest.VethB, Endpoint{Ifindex: tn.ifB, Identity: idB}}} {
				if mode == "off" {
					break
				}
				m, err := Open(policytest.BPFFSFor(b))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = m.Unpin(); _ = m.Close() }()
				if err := netnstest.Do(n.node, func() error { return m.Attach(n.veth, int(n.pod.Ifindex), false) }); err != nil {
					b.Fatal(err)
				}
				if mode == "on" {
					res := Desired(Input{Spec: podToPodPolicy, Endpoints: []Endpoint{n.pod}, Addresses: addresses})
					if len(res.Problems) > 0 {
						b.Fatal(res.Problems)
					}
					if _, err := m.Apply(State{}, res.State); err != nil {
						b.Fatal(err)
					}
				}
			}
			podTraffic(b, tn.podA, tn.podB)
		})
	}
}

// podToPodPolicy lets A reach B's ports 7000-7001 and nothing else, both
// pods enforcing both directions.
var podToPodPolicy = nodesv1alpha1.NodePolicySpec{
	Identities: []nodesv1alpha1.IdentityPolicy{
		{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true},
			Egress:  nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 6, 7000, 7001)}}}},
		{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pa", 6, 7000, 7001)}},
			Egress:  nodesv1alpha1.PolicyDirection{Enforced: true}}},
	},
	PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{idA}}, {Name: "pb", Identities: []int64{idB}}},
}

// podTraffic runs the throughput and round-trip benchmarks from pod A's
// namespace to servers in pod B's (ipB, ports 7000 and 7001).
func podTraffic(b *testing.B, podA, podB string) {
	netnstest.Serve(b, podB, ":7000", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	netnstest.Serve(b, podB, ":7001", func(c net.Conn) { _, _ = io.Copy(c, c) })
	dial := func(port string) net.Conn {
		var c net.Conn
		if err := netnstest.Do(podA, func() (err error) {
			c, err = net.DialTimeout("tcp4", ipB+":"+port, time.Second)
			return err
		}); err != nil {
			b.Fatalf("connecting to %s: %v", port, err)
		}
		return c
	}
	b.Run("throughput", func(b *testing.B) {
		c := dial("7000")
		defer func() { _ = c.Close() }()
		chunk := make([]byte, 1<<20)
		b.SetBytes(int64(len(chunk)))
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("round-trip", func(b *testing.B) {
		c := dial("7001")
		defer func() { _ = c.Close() }()
		buf := []byte{1}
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// twoNodes is pod A (ipA) on node 1 and pod B (ipB) on node 2, each on a
// veth as policytest's pods are, the nodes joined by a veth of
// 198.18.0.0/24 (the underlay) and routing the other's pod across it.
type twoNodes struct {
	node1, node2, podA, podB string
	ifA, ifB                 uint32
}

func newTwoNodes(b *testing.B) *twoNodes {
	tn := &twoNodes{node1: netnstest.New(b, "plxn1"), node2: netnstest.New(b, "plxn2"), podA: netnstest.New(b, "plxa"), podB: netnstest.New(b, "plxb")}
	run := func(args ...string) { netnstest.Run(b, "ip", args...) }
	for _, n := range []struct{ node, pod, veth, ip, self, other, otherPod string }{
		{tn.node1, tn.podA, policytest.VethA, ipA, "198.18.0.1", "198.18.0.2", ipB},
		{tn.node2, tn.podB, policytest.VethB, ipB, "198.18.0.2", "198.18.0.1", ipA},
	} {
		run("-n", n.node, "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.pod)
		run("-n", n.node, "addr", "add", policytest.NodeIP+"/32", "dev", n.veth)
		run("-n", n.node, "link", "set", n.veth, "up")
		run("-n", n.node, "route", "add", n.ip+"/32", "dev", n.veth)
		run("-n", n.pod, "addr", "add", n.ip+"/32", "dev", "eth0")
		run("-n", n.pod, "link", "set", "eth0", "up")
		run("-n", n.pod, "route", "add", policytest.NodeIP+"/32", "dev", "eth0")
		run("-n", n.pod, "route", "add", "10.240.0.0/16", "via", policytest.NodeIP)
		netnstest.Run(b, "ip", "netns", "exec", n.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		if n.node == tn.node1 {
			run("-n", n.node, "link", "add", "under", "type", "veth", "peer", "name", "under", "netns", tn.node2)
		}
		run("-n", n.node, "addr", "add", n.self+"/24", "dev", "under")
		run("-n", n.node, "link", "set", "under", "up")
		run("-n", n.node, "route", "add", n.otherPod+"/32", "via", n.other)
	}
	tn.ifA = uint32((&policytest.Topology{Node: tn.node1}).Ifindex(b, policytest.VethA))
	tn.ifB = uint32((&policytest.Topology{Node: tn.node2}).Ifindex(b, policytest.VethB))
	return tn
}
