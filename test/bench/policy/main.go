// Command policy measures how long a policy change takes to be enforced on
// every node concerned, on a real API server: from the update of a
// CiliumNetworkPolicy until its status says Ready for that generation,
// which the policy controller writes only once every node whose pods the
// policy selects has reported its NodePolicy, holding the change,
// programmed. The identity and policy controllers run as their own
// processes; the nodes are simulated: for each node a plugin stand-in
// watches its NodePolicy and reports each new generation programmed at
// once (the kernel side is measured by the datapath benchmarks), so the
// figure is the control plane's: compile, NodePolicy writes, node
// reports, status.
//
// Usage (see make bench-policy-change):
//
//	go run ./test/bench/policy -pods 5000 -policies 1000 -nodes 50 -changes 50
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/nodeplugins/policy"
	"github.com/plexus-net/plexus/test/bench/benchutil"
)

const namespace = "bench"

func main() {
	pods := flag.Int("pods", 5000, "pods, in label sets of pods/policies")
	policies := flag.Int("policies", 1000, "CiliumNetworkPolicies, one per label set")
	nodes := flag.Int("nodes", 50, "simulated nodes the pods spread over")
	changes := flag.Int("changes", 50, "policy changes timed, one after the other")
	workers := flag.Int("workers", 16, "the controllers' concurrent writes")
	pause := flag.Duration("pause", 3*time.Second, "quiet time before each change, so that it meets an idle controller")
	pprof := flag.String("pprof", "", "host:port for the policy controller's /debug/pprof (to profile a run), its metrics one port above; empty for none")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(*pods, *policies, *nodes, *changes, *workers, *pause, *pprof); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func build(pkg, out string) error {
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", pkg, err, b)
	}
	return nil
}

func run(pods, policies, nodes, changes, workers int, pause time.Duration, pprof string) error {
	for pkg, out := range map[string]string{
		"./controllers/identity/cmd/plexus-identity-controller": "bin/plexus-identity-controller",
		"./controllers/policy/cmd/plexus-policy-controller":     "bin/plexus-policy-controller",
	} {
		if err := build(pkg, out); err != nil {
			return err
		}
	}
	cp, err := benchutil.Start()
	if err != nil {
		return err
	}
	defer cp.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := cp.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	for i := range nodes {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%03d", i)}}
		if err := c.Create(ctx, n); err != nil {
			return err
		}
	}
	if err := simulateNodes(ctx, cp); err != nil {
		return err
	}
	for _, bin := range []string{"bin/plexus-identity-controller", "bin/plexus-policy-controller"} {
		var extra []string
		if pprof != "" && bin == "bin/plexus-policy-controller" {
			host, port, err := net.SplitHostPort(pprof)
			if err != nil {
				return fmt.Errorf("-pprof: %w", err)
			}
			n, _ := strconv.Atoi(port)
			extra = append(extra, "--pprof-bind-address="+pprof, "--metrics-bind-address="+net.JoinHostPort(host, strconv.Itoa(n+1)))
		}
		stop, err := cp.StartController(bin, workers, extra...)
		if err != nil {
			return err
		}
		defer stop()
	}

	perSet := max(pods/policies, 1)
	if _, err := benchutil.Create(pods, 32, func(i int) error {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("pod-%05d", i),
				Labels: map[string]string{"app": fmt.Sprintf("app-%04d", i/perSet)}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%03d", i%nodes), Containers: []corev1.Container{{Name: "c", Image: "agnhost"}}},
		}
		if err := c.Create(ctx, p); err != nil {
			return err
		}
		ip := fmt.Sprintf("10.%d.%d.%d", 1+i>>16, (i>>8)&0xff, i&0xff)
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		return c.Status().Update(ctx, p)
	}); err != nil {
		return fmt.Errorf("creating pods: %w", err)
	}
	start := time.Now()
	if _, err := benchutil.Create(policies, 32, func(i int) error {
		return c.Create(ctx, cnp(i, policies, 8080))
	}); err != nil {
		return fmt.Errorf("creating policies: %w", err)
	}
	if err := waitAllReady(ctx, c, policies, 10*time.Minute); err != nil {
		return err
	}
	initial := time.Since(start)
	fmt.Fprintf(os.Stderr, "%d policies over %d pods on %d nodes all Ready %.2f s after the first was created\n", policies, pods, nodes, initial.Seconds())

	watch, err := newReadyWatch(ctx, cp)
	if err != nil {
		return err
	}
	var took, seen, programmed []time.Duration
	for k := range changes {
		time.Sleep(pause)
		i := (k * 37) % policies
		var p ciliumv2.CiliumNetworkPolicy
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: fmt.Sprintf("policy-%04d", i)}, &p); err != nil {
			return err
		}
		p.Spec = cnp(i, policies, int32(9000+k)).Spec
		timeline.Lock()
		timeline.firstSeen, timeline.lastReported = time.Time{}, time.Time{}
		timeline.Unlock()
		reached := watch.expect(p.Name, p.Generation+1) // a spec change moves the generation by one
		t0 := time.Now()
		if err := c.Update(ctx, &p); err != nil {
			return err
		}
		select {
		case <-reached:
		case <-time.After(time.Minute):
			return fmt.Errorf("change %d: policy %s generation %d not Ready after a minute", k, p.Name, p.Generation)
		}
		took = append(took, time.Since(t0))
		timeline.Lock()
		seen = append(seen, timeline.firstSeen.Sub(t0))
		programmed = append(programmed, timeline.lastReported.Sub(t0))
		fmt.Fprintf(os.Stderr, "change %d: first node sees it +%v, last node programmed +%v, Ready +%v\n", k,
			seen[k].Round(time.Millisecond), programmed[k].Round(time.Millisecond), took[k].Round(time.Millisecond))
		timeline.Unlock()
	}
	fmt.Printf("\nMachine: 2 CPUs; %d pods in %d label sets on %d simulated nodes, %d policies; %d changes one after the other, %v apart.\n",
		pods, policies, nodes, policies, changes, pause)
	fmt.Printf("All policies Ready %.2f s after the first was created.\n\n", initial.Seconds())
	fmt.Println("| after a change | p50 | p90 | p99 | max |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{{"first node has the new NodePolicy", seen}, {"last node reports it programmed", programmed}, {"the policy's status Ready", took}} {
		sort.Slice(row.ds, func(a, b int) bool { return row.ds[a] < row.ds[b] })
		fmt.Printf("| %s | %d ms | %d ms | %d ms | %d ms |\n", row.name, benchutil.Percentile(row.ds, 0.5).Milliseconds(),
			benchutil.Percentile(row.ds, 0.9).Milliseconds(), benchutil.Percentile(row.ds, 0.99).Milliseconds(), row.ds[len(row.ds)-1].Milliseconds())
	}
	return nil
}

// cnp is policy i: app i admits app i+1 on port.
func cnp(i, n int, port int32) *ciliumv2.CiliumNetworkPolicy {
	var p ciliumv2.CiliumNetworkPolicy
	doc := fmt.Sprintf(`
metadata: {name: policy-%04d, namespace: %s}
spec:
  endpointSelector: {matchLabels: {app: app-%04d}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: app-%04d}}]
    toPorts: [{ports: [{port: "%d", protocol: TCP}]}]
`, i, namespace, i, (i+1)%n, port)
	if err := yaml.Unmarshal([]byte(doc), &p); err != nil {
		panic(err) // the document above is fixed
	}
	return &p
}

// timeline is when, after a change, the first node saw its new
// NodePolicy and the last node reported it programmed.
var timeline struct {
	sync.Mutex
	firstSeen, lastReported time.Time
}

// simulateNodes reports every NodePolicy generation programmed as soon as
// it is seen, as a node plugin does once its maps are written: from its
// cache, patching the status only.
func simulateNodes(ctx context.Context, cp *benchutil.ControlPlane) error {
	inf, err := cp.Informer(ctx, &nodesv1alpha1.NodePolicy{})
	if err != nil {
		return err
	}
	work := make(chan string, 1<<12)
	var mu sync.Mutex
	pending := map[string]*nodesv1alpha1.NodePolicy{} // the latest seen, per node
	enqueue := func(o any) {
		np, ok := o.(*nodesv1alpha1.NodePolicy)
		if !ok || np.Status.ObservedGeneration == np.Generation {
			return
		}
		timeline.Lock()
		if timeline.firstSeen.IsZero() {
			timeline.firstSeen = time.Now()
		}
		timeline.Unlock()
		mu.Lock()
		defer mu.Unlock()
		if pending[np.Name] == nil {
			work <- np.Name
		}
		pending[np.Name] = np
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return err
	}
	for range 8 {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case name := <-work:
					mu.Lock()
					seen := pending[name]
					delete(pending, name)
					mu.Unlock()
					np := seen.DeepCopy()
					entries := 0
					for _, ip := range np.Spec.Identities {
						entries += len(ip.Ingress.Entries) + len(ip.Egress.Entries)
					}
					policy.ApplyReport(&np.Status, policy.Report{Generation: np.Generation, Identities: len(np.Spec.Identities), Entries: entries})
					if err := cp.Client.Status().Patch(ctx, np, client.MergeFrom(seen)); err != nil {
						if ctx.Err() == nil {
							fmt.Fprintf(os.Stderr, "simulated node %s: %v\n", name, err)
						}
						continue
					}
					timeline.Lock()
					timeline.lastReported = time.Now()
					timeline.Unlock()
				}
			}
		}()
	}
	return nil
}

func ready(p *ciliumv2.CiliumNetworkPolicy, generation int64) bool {
	c := meta.FindStatusCondition(p.Status.Conditions, conditions.TypeReady)
	return p.Status.ObservedGeneration == generation && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation
}

// readyWatch tells, through a watch on the policies (as `kubectl get -w`
// would), when a policy reaches Ready for a generation: polling the API
// server would load the very machine being measured.
type readyWatch struct {
	mu      sync.Mutex
	name    string
	gen     int64
	reached chan struct{}
}

func newReadyWatch(ctx context.Context, cp *benchutil.ControlPlane) (*readyWatch, error) {
	w := &readyWatch{}
	inf, err := cp.Informer(ctx, &ciliumv2.CiliumNetworkPolicy{})
	if err != nil {
		return nil, err
	}
	check := func(o any) {
		p, ok := o.(*ciliumv2.CiliumNetworkPolicy)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.reached != nil && p.Name == w.name && ready(p, w.gen) {
			close(w.reached)
			w.reached = nil
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }}); err != nil {
		return nil, err
	}
	return w, nil
}

// expect arms the watch for a policy's generation, before the change.
func (w *readyWatch) expect(name string, generation int64) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.name, w.gen, w.reached = name, generation, make(chan struct{})
	return w.reached
}

func waitAllReady(ctx context.Context, c client.Client, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var list ciliumv2.CiliumNetworkPolicyList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		count := 0
		for i := range list.Items {
			if ready(&list.Items[i], list.Items[i].Generation) {
				count++
			}
		}
		if count == n {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("the policies did not all turn Ready")
}
