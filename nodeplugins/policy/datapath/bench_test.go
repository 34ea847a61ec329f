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
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
)

// BenchmarkVerdict times the to_pod program on one packet with
// BPF_PROG_TEST_RUN (the test run's skb comes in on loopback, ifindex 1,
// which stands for the pod's veth here), with policy maps of growing
// size: an allowed packet of an established flow (conntrack refreshed)
// and a denied one (a verdict event each). The figure is per packet.
func BenchmarkVerdict(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, peers := range []int{10, 1_000, 30_000} {
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
			for _, c := range []struct {
				name string
				port uint16
				want uint32
			}{{"allowed", 8080, 0}, {"denied", 7000, 2}} {
				b.Run(c.name, func(b *testing.B) {
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
		})
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
// 1-byte round trip per op), with no programs attached ("off") and with
// both pods enforcing both directions ("on": A may reach B's port, the
// replies pass by connection tracking, so each round trip runs the
// programs four times).
func BenchmarkPodToPod(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, enforce := range []bool{false, true} {
		name := "enforcement=off"
		if enforce {
			name = "enforcement=on"
		}
		b.Run(name, func(b *testing.B) {
			tp := &topology{Topology: policytest.New(b), pinDir: policytest.BPFFSFor(b)}
			if enforce {
				tp.open(b)
				defer func() { _ = tp.maps.Unpin(); _ = tp.maps.Close() }()
				tp.program(b, nodesv1alpha1.NodePolicySpec{
					Identities: []nodesv1alpha1.IdentityPolicy{
						{Identity: idA, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
							Ingress: nodesv1alpha1.PolicyDirection{Enforced: true},
							Egress:  nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pb", 6, 7000, 7001)}}}},
						{Identity: idB, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
							Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{entry("pa", 6, 7000, 7001)}},
							Egress:  nodesv1alpha1.PolicyDirection{Enforced: true}}},
					},
					PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{idA}}, {Name: "pb", Identities: []int64{idB}}},
				})
			}
			netnstest.Serve(b, tp.B, ":7000", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
			netnstest.Serve(b, tp.B, ":7001", func(c net.Conn) { _, _ = io.Copy(c, c) })
			dial := func(port string) net.Conn {
				var c net.Conn
				if err := netnstest.Do(tp.A, func() (err error) {
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
		})
	}
}
