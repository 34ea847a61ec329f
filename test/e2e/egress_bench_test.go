package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/bench/benchutil"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
	"github.com/plexus-net/plexus/test/netnstest"
)

// benchEgress is the egress benchmarks' lab: 3 nodes, candidates n2 and n3
// (egress IP .240), a selected pod and an unselected one on n1, and the
// external host serving HTTP (source address), a TCP echo and a TCP sink.
type benchEgress struct {
	*labtest.Lab
	url             string
	egressIP        string
	n1, n2, n3      string
	backend, direct *corev1.Pod
	external        netip.Addr
}

func egressBenchLab(b *testing.B) *benchEgress {
	b.Helper()
	l := labtest.Start(b, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	ctx := context.Background()
	e := &benchEgress{Lab: l, n1: l.Layout.NodeName(1), n2: l.Layout.NodeName(2), n3: l.Layout.NodeName(3), external: l.ClientIP()}
	e.url = l.ExternalServer(b, 0)[0]
	eip := l.ClientIP().As4()
	eip[3] = 240
	e.egressIP = netip.AddrFrom4(eip).String()
	for _, n := range []string{e.n2, e.n3} {
		l.LabelNode(b, n, "egress-node", "true")
	}
	for _, app := range []string{"backend", "frontend"} {
		for _, p := range labtest.Deploy(b, l, labtest.Echo(app, 3, nil)) {
			if p.Spec.NodeName == e.n1 {
				p := p
				if app == "backend" {
					e.backend = &p
				} else {
					e.direct = &p
				}
			}
		}
	}
	policy := &ciliumv2.CiliumEgressGatewayPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: ciliumv2.CiliumEgressGatewayPolicySpec{
			Selectors:        []ciliumv2.EgressRule{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "backend"}}}},
			DestinationCIDRs: []string{e.external.String() + "/32"},
			EgressGateways: []ciliumv2.EgressGateway{{
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"egress-node": "true"}}, EgressIP: e.egressIP,
			}},
		},
	}
	if err := l.Cilium.Create(ctx, policy); err != nil {
		b.Fatal(err)
	}
	c := e.client(e.backend, 2*time.Second)
	l.EventuallyIn(b, 60*time.Second, "backend leaves with the egress IP", func() error {
		defer c.CloseIdleConnections()
		got, err := labtest.SourceSeen(c, e.url)
		if err == nil && got != e.egressIP {
			err = fmt.Errorf("seen from %s", got)
		}
		return err
	})
	return e
}

// client makes requests from pod's namespace, each on a new connection,
// any number at once (a request does not wait for an earlier one's dial).
func (e *benchEgress) client(pod *corev1.Pod, timeout time.Duration) *http.Client {
	c := e.HTTPClient(e.PodNetns(pod))
	c.Timeout = timeout
	tr := c.Transport.(*http.Transport)
	tr.DisableKeepAlives, tr.MaxConnsPerHost = true, 0
	return c
}

// BenchmarkEgressFailover measures, on a 3-node lab at default settings, the
// time from the active gateway's failure (its egress plugin SIGKILLed and
// its link cut at the same instant: the node is gone) until a pod on
// another node gets an answer from the external host again, through the
// standby and with the same egress IP as its source. The pod starts a
// request on a new connection every 10 ms (250 ms timeout each); the time
// is to the first answer, seen from the egress IP, of a request sent after
// the failure. Also timed: until the source node's neighbour entry for the
// egress IP names the new holder (neigh-p50/p99-ms). Between kills (not
// timed) the node comes back and takes the address back after the rejoin
// time, and the lab waits until it holds it by every account (ARP answers,
// both neighbour entries, policy status, traffic). Reported: p50-ms,
// p99-ms, neigh-p50-ms, neigh-p99-ms.
//
//	make bench-egress   (go test -run '^$' -bench Egress -benchtime 20x -count 1 ./test/e2e)
func BenchmarkEgressFailover(b *testing.B) {
	e := egressBenchLab(b)
	c := e.client(e.backend, 250*time.Millisecond)
	macs := map[string]string{}
	for _, n := range []string{e.n2, e.n3} {
		mac, err := e.NodeMAC(n)
		if err != nil {
			b.Fatal(err)
		}
		macs[n] = mac.String()
	}
	var times, toNeigh, toExtNeigh []time.Duration
	// settled checks that n2, the first candidate, holds the egress IP by
	// every account: it alone answers ARP for it, both neighbour entries
	// (the source node's and the external host's) name it, the policy
	// status says so, and traffic flows. Status lags the nodes (coalesced
	// writes, a controller pass), so it alone does not tell who holds.
	settled := func() error {
		replies, err := e.ARPReplies(netip.MustParseAddr(e.egressIP), 50*time.Millisecond)
		if err != nil {
			return err
		}
		if got := nodesOf(replies, map[string]string{macs[e.n2]: e.n2, macs[e.n3]: e.n3}); !slices.Equal(slices.Compact(got), []string{e.n2}) {
			return fmt.Errorf("ARP for %s answered by %v", e.egressIP, got)
		}
		for _, ns := range []string{e.NodeNetns(e.n1), e.ClientNetns()} {
			if got := neighbour(ns, e.egressIP); got != macs[e.n2] {
				return fmt.Errorf("%s: neighbour entry for %s is %q, not %s's %s", ns, e.egressIP, got, e.n2, macs[e.n2])
			}
		}
		if err := activeGateway(e.Lab, "bench", e.n2); err != nil {
			return err
		}
		got, err := labtest.SourceSeen(c, e.url)
		if err == nil && got != e.egressIP {
			err = fmt.Errorf("seen from %s", got)
		}
		return err
	}
	for b.Loop() {
		b.StopTimer()
		active := e.n2
		e.EventuallyIn(b, 30*time.Second, e.n2+" holds the egress IP", settled)
		b.StartTimer()
		killed := time.Now()
		if err := lab.SetNodeLink(e.StateRoot, e.Options.Name, active, false, benchLog{b}); err != nil {
			b.Fatal(err)
		}
		if err := lab.KillComponent(e.StateRoot, e.Options.Name, active, egressPlugin, benchLog{b}); err != nil {
			b.Fatal(err)
		}
		neigh, extNeigh := make(chan time.Duration, 1), make(chan time.Duration, 1)
		go func() { neigh <- neighbourMoved(e.NodeNetns(e.n1), e.egressIP, macs[active], killed, 15*time.Second) }()
		go func() { extNeigh <- neighbourMoved(e.ClientNetns(), e.egressIP, macs[active], killed, 15*time.Second) }()
		d := firstSourced(c, e.url, e.egressIP, killed, 15*time.Second)
		b.StopTimer()
		toNeigh = append(toNeigh, <-neigh)
		toExtNeigh = append(toExtNeigh, <-extNeigh)
		if d < 0 {
			e.DumpLogs()
			b.Fatalf("no answer through the standby within 15 s of killing %s", active)
		}
		times = append(times, d)
		if err := lab.SetNodeLink(e.StateRoot, e.Options.Name, active, true, benchLog{b}); err != nil {
			b.Fatal(err)
		}
		if err := lab.StartComponent(e.StateRoot, e.Options.Name, active, egressPlugin, benchLog{b}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(times, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(times, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(toNeigh, 50)), "neigh-p50-ms")
	b.ReportMetric(ms(percentile(toNeigh, 99)), "neigh-p99-ms")
	b.Logf("to first answer through the standby: %v", times)
	b.Logf("to the source node's neighbour entry for the egress IP leaving the dead node: %v", toNeigh)
	b.Logf("to the external host's: %v", toExtNeigh)
}

// neighbourMoved polls ns's neighbour entry for ip every 10 ms and returns
// how long after since it first named a MAC other than old, or -1 after
// limit.
func neighbourMoved(ns, ip, old string, since time.Time, limit time.Duration) time.Duration {
	for time.Since(since) < limit {
		if mac := neighbour(ns, ip); mac != "" && mac != old {
			return time.Since(since)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// neighbour is the MAC ns's eth0 neighbour entry holds for ip ("" if none).
func neighbour(ns, ip string) string {
	out, _ := exec.Command("ip", "-n", ns, "neigh", "show", ip, "dev", "eth0").Output()
	f := strings.Fields(string(out))
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// firstSourced starts a request every 10 ms from since on and returns how
// long after since the first one was answered with want as the source seen,
// or -1 after limit.
func firstSourced(c *http.Client, url, want string, since time.Time, limit time.Duration) time.Duration {
	got := make(chan time.Duration, 1)
	done := make(chan struct{})
	defer close(done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		go func() {
			if s, err := labtest.SourceSeen(c, url); err == nil && s == want {
				select {
				case got <- time.Since(since):
				case <-done:
				}
			}
		}()
		select {
		case d := <-got:
			return d
		case <-tick.C:
			if time.Since(since) > limit {
				return -1
			}
		}
	}
}

// BenchmarkEgressPath compares, for a pod on n1, the path through the
// egress gateway (pod → n1 → active gateway n2, SNAT to the egress IP →
// external host) with direct egress (pod → n1, masquerade to n1's address
// → external host), both on the lab's veths and bridge:
//   - rtt-p50-us, rtt-p99-us: 1-byte request/response round trips on one
//     TCP connection (2,000 per run), after 100 warm-up ones;
//   - MB/s: one TCP stream writing 64 KiB blocks for 2 s into a sink.
//
// Sub-benchmarks path=gateway and path=direct.
func BenchmarkEgressPath(b *testing.B) {
	e := egressBenchLab(b)
	echoAddr := netip.AddrPortFrom(e.external, 9000)
	sinkAddr := netip.AddrPortFrom(e.external, 9001)
	stop := serveTCP(b, e.ClientNetns(), echoAddr, func(c net.Conn) { _, _ = io.Copy(c, c) })
	defer stop()
	stop2 := serveTCP(b, e.ClientNetns(), sinkAddr, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	defer stop2()
	for _, path := range []struct {
		name string
		pod  *corev1.Pod
	}{{"gateway", e.backend}, {"direct", e.direct}} {
		b.Run("path="+path.name, func(b *testing.B) {
			var rtts []time.Duration
			var mbps []float64
			for b.Loop() {
				r, err := roundTrips(e.PodNetns(path.pod), echoAddr, 100, 2000)
				if err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, r...)
				m, err := stream(e.PodNetns(path.pod), sinkAddr, 2*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				mbps = append(mbps, m)
			}
			b.ReportMetric(float64(percentile(rtts, 50).Microseconds()), "rtt-p50-us")
			b.ReportMetric(float64(percentile(rtts, 99).Microseconds()), "rtt-p99-us")
			b.ReportMetric(benchutil.Median(mbps), "MB/s")
		})
	}
}

// serveTCP serves addr in namespace ns with handle, one goroutine per
// connection, until stop.
func serveTCP(b *testing.B, ns string, addr netip.AddrPort, handle func(net.Conn)) (stop func()) {
	var ln net.Listener
	if err := netnstest.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return func() { _ = ln.Close() }
}

func dialFrom(ns string, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := netnstest.Do(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr.String(), 3*time.Second)
		return err
	})
	return c, err
}

// roundTrips times n 1-byte round trips on one connection from ns after
// warm ones.
func roundTrips(ns string, addr netip.AddrPort, warm, n int) ([]time.Duration, error) {
	c, err := dialFrom(ns, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	buf := []byte{0}
	out := make([]time.Duration, 0, n)
	for i := range warm + n {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= warm {
			out = append(out, time.Since(start))
		}
	}
	return out, nil
}

// stream writes into addr from ns for d and returns MB/s (10^6 bytes).
func stream(ns string, addr netip.AddrPort, d time.Duration) (float64, error) {
	c, err := dialFrom(ns, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	block := make([]byte, 64<<10)
	start := time.Now()
	var sent int64
	for time.Since(start) < d {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Write(block)
		sent += int64(n)
		if err != nil {
			return 0, err
		}
	}
	return float64(sent) / 1e6 / time.Since(start).Seconds(), nil
}

// BenchmarkEgressNewPod measures E24, the delay before a new pod's traffic
// is steered: a pod the policy selects is created on node 1, and from the
// moment its address appears in its status (when the controller can first
// know it) a request starts every 10 ms on a new connection; the time is to
// the first one the external host sees from the egress IP. Before that,
// answers come from the node's address (the seed system documents the same
// window). Reported: p50-ms, p99-ms.
func BenchmarkEgressNewPod(b *testing.B) {
	e := egressBenchLab(b)
	ctx := context.Background()
	template := labtest.Echo("backend", 1, nil).Spec.Template
	var times []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("late-%d", i), Namespace: labtest.Namespace, Labels: template.Labels},
			Spec: *template.Spec.DeepCopy()}
		pod.Spec.NodeName = e.n1
		pod.Spec.TopologySpreadConstraints = nil
		created, err := e.Client.CoreV1().Pods(labtest.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		// Poll every 10 ms: the start of the timing is when the address
		// appears, so a coarse poll would flatter the result.
		var since time.Time
		for deadline := time.Now().Add(30 * time.Second); since.IsZero(); time.Sleep(10 * time.Millisecond) {
			p, err := e.Client.CoreV1().Pods(labtest.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
			if err == nil && p.Status.PodIP != "" {
				since = time.Now()
			} else if time.Now().After(deadline) {
				b.Fatalf("%s has no address after 30 s (%v)", created.Name, err)
			}
		}
		b.StartTimer()
		d := firstSourced(e.client(created, 250*time.Millisecond), e.url, e.egressIP, since, 30*time.Second)
		b.StopTimer()
		if d < 0 {
			e.DumpLogs()
			b.Fatalf("%s was not steered within 30 s", created.Name)
		}
		times = append(times, d)
		ip := podIP(ctx, e, created.Name)
		if err := e.Client.CoreV1().Pods(labtest.Namespace).Delete(ctx, created.Name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		// The next pod may get the same address: wait until no node steers
		// it any more, or the next measurement would time a stale entry.
		e.EventuallyIn(b, 30*time.Second, "pod "+created.Name+" gone and its address no longer steered", func() error {
			if _, err := e.Client.CoreV1().Pods(labtest.Namespace).Get(ctx, created.Name, metav1.GetOptions{}); err == nil {
				return fmt.Errorf("still there")
			}
			var eg nodesv1alpha1.Egress
			if err := e.Cilium.Get(ctx, client.ObjectKey{Name: e.n1}, &eg); err != nil {
				return err
			}
			for _, st := range eg.Spec.Steering {
				if slices.Contains(st.SourceIPs, ip) {
					return fmt.Errorf("%s still steers %s", e.n1, ip)
				}
			}
			return nil
		})
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(times, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(times, 99)), "p99-ms")
	b.Logf("from the pod's address in status to its first connection seen from the egress IP: %v", times)
}

func podIP(ctx context.Context, e *benchEgress, name string) string {
	p, err := e.Client.CoreV1().Pods(labtest.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return p.Status.PodIP
}
