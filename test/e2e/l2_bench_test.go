package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// l2Lab brings up the 3-node lab the L2 benchmarks use, with a policy that
// announces every Service's LoadBalancer address on eth0.
func l2Lab(b *testing.B) *labtest.Lab {
	b.Helper()
	l := labtest.Start(b, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	for i := 1; i <= 3; i++ {
		if n := l.Layout.NodeName(i); !l.Running(n, l2Plugin) {
			b.Fatalf("%s does not run on %s", l2Plugin, n)
		}
	}
	policy := &ciliumv2alpha1.CiliumL2AnnouncementPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec:       ciliumv2alpha1.L2AnnouncementPolicySpec{LoadBalancerIPs: true, Interfaces: []string{"^eth0$"}},
	}
	if err := l.Cilium.Create(context.Background(), policy); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkL2Failover measures, on a 3-node lab at default settings, the
// time from the announcing node's failure until the external client's
// requests to the Service address are answered again. The client starts a
// request on a new connection every 10 ms (each with a 250 ms timeout); the
// time is from the failure to the first answer of a request sent after it.
//
// Two failures, as sub-benchmarks:
//   - kill=node: the announcer's plexus-l2announcer is SIGKILLed and its
//     link cut at the same instant (the node is gone). The client's
//     neighbour entry still points at the dead node, so its requests come
//     back only when the new announcer's gratuitous ARP reaches it: this is
//     the failover time a user sees.
//   - kill=plugin: only the plugin is SIGKILLed. The dead node still
//     forwards, so the client never stops being served; what is measured
//     is arp-p50/p99-ms, until another node answers the client's ARP
//     (probed every 10 ms).
//
// Between kills (not timed) the link is restored, the plugin started again
// and the lab waits until exactly one node answers and the Service's
// condition names it. Reported: p50-ms, p99-ms over the kills.
//
//	make bench-l2   (go test -run '^$' -bench L2 -benchtime 20x -count 1 ./test/e2e)
func BenchmarkL2Failover(b *testing.B) {
	l := l2Lab(b)
	labtest.Deploy(b, l, labtest.Echo("echo", 3, nil))
	labtest.LoadBalancerService(b, l, "echo", "echo")
	vip := l.LoadBalancerIP(b, "echo", time.Minute)
	macs, err := l.NodeByMAC()
	if err != nil {
		b.Fatal(err)
	}
	c := clientHTTP(l, 250*time.Millisecond)
	url := "http://" + vip.String() + "/"
	l.EventuallyIn(b, 30*time.Second, "client reaches "+url, func() error {
		_, err := labtest.FetchWith(c, url)
		return err
	})

	for _, kill := range []string{"node", "plugin"} {
		b.Run("kill="+kill, func(b *testing.B) {
			var toAnswer, toARP []time.Duration
			stale := 0 // times the client's neighbour entry named another node before a kill
			for b.Loop() {
				b.StopTimer()
				old := stableAnnouncer(b, l, "echo", vip, macs, nil)
				// The client's own neighbour entry must point at old too
				// (it may still hold a node that answered earlier and still
				// forwards); if not, it resolves again.
				l.EventuallyIn(b, 10*time.Second, "client served through "+old, func() error {
					_, err := labtest.FetchWith(c, url)
					if err != nil {
						return err
					}
					if mac := clientNeighbour(l, vip); mac != macOf(macs, old).String() {
						stale++
						_ = exec.Command("ip", "-n", l.ClientNetns(), "neigh", "del", vip.String(), "dev", "eth0").Run()
						return fmt.Errorf("client's neighbour entry for %s is %q (%s), not %s", vip, mac, macs[mac], old)
					}
					return nil
				})
				b.StartTimer()

				// The link goes first: from this instant nothing reaches
				// the old node, and nothing it sends leaves it.
				killed := time.Now()
				if kill == "node" {
					if err := lab.SetNodeLink(l.StateRoot, l.Options.Name, old, false, benchLog{b}); err != nil {
						b.Fatal(err)
					}
				}
				if err := lab.KillComponent(l.StateRoot, l.Options.Name, old, l2Plugin, benchLog{b}); err != nil {
					b.Fatal(err)
				}
				answered := make(chan time.Duration, 1)
				moved := make(chan time.Duration, 1)
				go func() { answered <- firstAnswer(c, url, killed, 15*time.Second) }()
				go func() { moved <- arpMoved(l, vip, macs, old, killed, 15*time.Second) }()
				ta, tm := <-answered, <-moved
				b.StopTimer()
				if ta < 0 || tm < 0 {
					l.DumpLogs()
					b.Fatalf("no failover within 15 s after %s on %s (answer %v, ARP %v)", kill, old, ta, tm)
				}
				toAnswer, toARP = append(toAnswer, ta), append(toARP, tm)
				if kill == "node" {
					if err := lab.SetNodeLink(l.StateRoot, l.Options.Name, old, true, benchLog{b}); err != nil {
						b.Fatal(err)
					}
				}
				if err := lab.StartComponent(l.StateRoot, l.Options.Name, old, l2Plugin, benchLog{b}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(ms(percentile(toAnswer, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(toAnswer, 99)), "p99-ms")
			b.ReportMetric(ms(percentile(toARP, 50)), "arp-p50-ms")
			b.ReportMetric(ms(percentile(toARP, 99)), "arp-p99-ms")
			b.Logf("kill=%s: to first answer %v; to ARP moved %v; client neighbour entry re-resolved before %d kills", kill, toAnswer, toARP, stale)
		})
	}
}

// firstAnswer starts a request on a new connection every 10 ms from now on
// and returns how long after since the first one was answered, or -1 once
// limit has passed since since. It returns after every request it started
// has ended.
func firstAnswer(c *http.Client, url string, since time.Time, limit time.Duration) time.Duration {
	var wg sync.WaitGroup
	defer wg.Wait()
	got := make(chan time.Duration, 1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		wg.Go(func() {
			if _, err := labtest.FetchWith(c, url); err == nil {
				select {
				case got <- time.Since(since):
				default:
				}
			}
		})
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

// clientNeighbour is the MAC the client's kernel holds for ip ("" if none).
func clientNeighbour(l *labtest.Lab, ip netip.Addr) string {
	out, _ := exec.Command("ip", "-n", l.ClientNetns(), "neigh", "show", ip.String(), "dev", "eth0").Output()
	f := strings.Fields(string(out))
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// arpMoved probes ip from the client every 10 ms and returns how long after
// since exactly one node other than old answered, or -1 after limit.
func arpMoved(l *labtest.Lab, ip netip.Addr, macs map[string]string, old string, since time.Time, limit time.Duration) time.Duration {
	for time.Since(since) < limit {
		got, err := l.ARPReplies(ip, 10*time.Millisecond)
		if err == nil && len(got) == 1 && macs[got[0].String()] != old && macs[got[0].String()] != "" {
			return time.Since(since)
		}
	}
	return -1
}

// BenchmarkL2APILoad measures the API requests per second per node that the
// plexus-l2announcer node plugins make at rest with 10, 100 and 1,000
// announced Services, beside the seed system's sizing formula (one Lease
// renewal per Service per renew deadline, 5 s by default, on the node
// holding it: Services ÷ 5 s).
//
// Counting: a FlowSchema (API Priority and Fairness) matches the plugins'
// identity, the ServiceAccount plexus-l2announcer-node, and the API
// server's own counter apiserver_flowcontrol_dispatched_requests_total for
// that FlowSchema counts every request they make: reads, writes, and each
// watch once when it starts (the events on an open watch are not
// requests). The controller gets its own FlowSchema, reported as ctrl-req/s.
// Each benchmark iteration is one second of observation at rest (after
// every Service has an address, the Service condition names its announcer,
// and a 10 s settling pause); the rate is the counter's increase over all
// iterations divided by their time and by the 3 nodes. burst-req/node is
// what each node made while the new Services were being announced (it
// also shows that the FlowSchema matches the plugins).
func BenchmarkL2APILoad(b *testing.B) {
	l := l2Lab(b)
	ctx := context.Background()
	// LB-IPAM's lab pool has 40 addresses: a second pool gives the rest.
	// The addresses are never configured anywhere; the plugins answer ARP
	// for them on the lab bridge only.
	pool := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "l2-bench"},
		Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: benchPoolCIDR}}}}
	if err := l.Cilium.Create(ctx, pool); err != nil {
		b.Fatal(err)
	}
	for fs, sa := range map[string]string{fsNodes: "plexus-l2announcer-node", fsController: "plexus-l2announcer"} {
		if err := createFlowSchema(ctx, l, fs, sa); err != nil {
			b.Fatal(err)
		}
	}
	created := 0
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			first, err := dispatched(ctx, l)
			if err != nil {
				b.Fatal(err)
			}
			if err := createServices(ctx, l, created, n); err != nil {
				b.Fatal(err)
			}
			created = n
			l.EventuallyIn(b, 10*time.Minute, fmt.Sprintf("%d Services announced", n), func() error {
				return allAnnounced(ctx, l, n)
			})
			time.Sleep(10 * time.Second) // settle: the last status writes of the burst are not "at rest"
			before, err := dispatched(ctx, l)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for b.Loop() {
				time.Sleep(time.Second)
			}
			elapsed := time.Since(start).Seconds()
			after, err := dispatched(ctx, l)
			if err != nil {
				b.Fatal(err)
			}
			if after[fsNodes] == 0 {
				b.Fatalf("FlowSchema %s has counted no request at all: it does not match the node plugins", fsNodes)
			}
			nodes := (after[fsNodes] - before[fsNodes]) / elapsed / 3
			ctrl := (after[fsController] - before[fsController]) / elapsed
			burst := (before[fsNodes] - first[fsNodes]) / 3
			b.ReportMetric(nodes, "req/s/node")
			b.ReportMetric(float64(n)/5, "seed-req/s/node")
			b.ReportMetric(ctrl, "ctrl-req/s")
			b.ReportMetric(burst, "burst-req/node")
			b.Logf("%d Services: node plugins %.3f requests/s per node at rest over %.0f s (seed formula %d/5 s = %.1f), %.0f requests per node while the new Services were announced; controller %.3f/s at rest",
				n, nodes, elapsed, n, float64(n)/5, burst, ctrl)
		})
	}
}

const (
	fsNodes       = "bench-l2-node-plugins"
	fsController  = "bench-l2-controller"
	benchPoolCIDR = "198.18.200.0/22" // outside every lab segment (198.18.0-199.0/24)
	benchLabel    = "plexus.dev/bench"
)

// createFlowSchema makes the API server count the requests of ServiceAccount
// sa under FlowSchema name (matched before the built-in schemas).
func createFlowSchema(ctx context.Context, l *labtest.Lab, name, sa string) error {
	fs := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "workload-high"},
			MatchingPrecedence:         50,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount,
					ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: lab.PlexusNamespace, Name: sa}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
					ClusterScope: true, Namespaces: []string{"*"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}
	_, err := l.Client.FlowcontrolV1().FlowSchemas().Create(ctx, fs, metav1.CreateOptions{})
	return err
}

// dispatched reads apiserver_flowcontrol_dispatched_requests_total of the
// benchmark's FlowSchemas from the API server's /metrics.
func dispatched(ctx context.Context, l *labtest.Lab) (map[string]float64, error) {
	raw, err := l.Client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_flowcontrol_dispatched_requests_total{") {
			continue
		}
		for _, fs := range []string{fsNodes, fsController} {
			if strings.Contains(line, `flow_schema="`+fs+`"`) {
				v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
				if err != nil {
					return nil, fmt.Errorf("metric line %q: %w", line, err)
				}
				out[fs] += v
			}
		}
	}
	return out, sc.Err()
}

// createServices creates LoadBalancer Services bench-<from>..bench-<to-1>
// (no selector, no node ports: only their addresses matter), 8 at a time.
func createServices(ctx context.Context, l *labtest.Lab, from, to int) error {
	// The lab's client keeps client-go's default 5 requests/s: a burst of
	// Services needs more.
	rc, err := clientcmd.BuildConfigFromFlags("", l.Layout.Kubeconfig())
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, to-from)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", i), Namespace: labtest.Namespace, Labels: map[string]string{benchLabel: "l2"}},
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
						Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
				}
				if _, err := cs.CoreV1().Services(labtest.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					errs <- err
				}
			}
		})
	}
	for i := from; i < to; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// allAnnounced checks that n benchmark Services have an address and a True
// L2Announced condition naming one node for it.
func allAnnounced(ctx context.Context, l *labtest.Lab, n int) error {
	list, err := l.Client.CoreV1().Services(labtest.Namespace).List(ctx, metav1.ListOptions{LabelSelector: benchLabel + "=l2"})
	if err != nil {
		return err
	}
	ok, noIP := 0, 0
	var example string
	for _, s := range list.Items {
		if len(s.Status.LoadBalancer.Ingress) == 0 {
			noIP++
			continue
		}
		ip, err := netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		if err != nil {
			return err
		}
		announced := false
		for _, c := range s.Status.Conditions {
			if c.Type == l2Condition && c.Status == metav1.ConditionTrue && len(announcersIn(c.Message, ip)) == 1 {
				announced = true
			} else if c.Type == l2Condition {
				example = s.Name + ": " + c.Message
			}
		}
		if announced {
			ok++
		}
	}
	if ok < n {
		return fmt.Errorf("%d of %d Services announced (%d of %d without an address; e.g. %s)", ok, n, noIP, len(list.Items), example)
	}
	return nil
}

// benchLog writes the lab's messages to the benchmark log.
type benchLog struct{ b *testing.B }

func (w benchLog) Write(p []byte) (int, error) {
	w.b.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
