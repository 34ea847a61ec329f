// Command lbipam measures how long LB-IPAM takes to give addresses to a burst
// of new LoadBalancer Services on a real API server, beside a ceiling: a
// writer that puts the same status on each Service with no allocation logic,
// through the same informer, the same merge patch and the same number of
// concurrent writers. The LB-IPAM controller runs as its own process (the
// bin/plexus-lbipam-controller binary), so its peak RSS is its own.
//
// Each run starts a fresh kube-apiserver and etcd. Usage (see make bench):
//
//	go run ./test/bench/lbipam -sizes 1000,10000 -runs 3
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/bench/benchutil"
)

type result struct {
	size      int
	mode      string
	total     time.Duration // first create until every Service holds an address
	tail      time.Duration // last create until every Service holds an address
	peakRSSKB int
	cpu       time.Duration // controller process CPU time (user+system)
}

func main() {
	sizes := flag.String("sizes", "1000,10000", "numbers of Services per run")
	runs := flag.Int("runs", 3, "runs per size and mode; the median is reported")
	workers := flag.Int("workers", 16, "concurrent status writers (controller and ceiling alike)")
	creators := flag.Int("creators", 32, "concurrent Service creators")
	controllerBin := flag.String("controller", "bin/plexus-lbipam-controller", "the LB-IPAM controller binary")
	pprofAddr := flag.String("pprof", "", "if set, the controller serves /debug/pprof on this address (to profile a run by hand)")
	modes := flag.String("modes", "ceiling,lbipam,lbipam-quiet", "what writes the statuses: ceiling, lbipam (defaults), lbipam-quiet (--allocation-events=false)")
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	if *pprofAddr != "" {
		extraControllerArgs = append(extraControllerArgs, "--pprof-bind-address="+*pprofAddr)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fail(errors.New("KUBEBUILDER_ASSETS must point at etcd and kube-apiserver (make bench sets it)"))
	}
	if err := exec.Command("go", "build", "-o", *controllerBin, "./controllers/lbipam/cmd/plexus-lbipam-controller").Run(); err != nil {
		fail(fmt.Errorf("building the controller: %w", err))
	}
	var all []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		for _, mode := range strings.Split(*modes, ",") {
			for i := range *runs {
				r, err := runOnce(n, mode, *workers, *creators, *controllerBin)
				if err != nil {
					fail(fmt.Errorf("%s with %d Services, run %d: %w", mode, n, i+1, err))
				}
				fmt.Fprintf(os.Stderr, "%-12s n=%-6d run %d: total %v, after last create %v, controller CPU %v, peak RSS %d MiB\n", mode, n, i+1, r.total.Round(time.Millisecond), r.tail.Round(time.Millisecond), r.cpu, r.peakRSSKB/1024)
				all = append(all, r)
			}
		}
	}
	report(all)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// extraControllerArgs are passed to every controller run.
var extraControllerArgs []string

func runOnce(n int, mode string, workers, creators int, controllerBin string) (result, error) {
	cp, err := benchutil.Start()
	if err != nil {
		return result{}, err
	}
	defer cp.Stop()
	cfg, c := cp.Config, cp.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{
		Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "10.128.0.0/14"}},
	}}
	if err := c.Create(ctx, pool); err != nil {
		return result{}, err
	}
	for _, ns := range []string{"bench", "plexus-system"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return result{}, err
		}
	}

	var stopWriter func() benchutil.Usage
	switch mode {
	case "lbipam":
		stopWriter, err = startController(cp, controllerBin, workers, extraControllerArgs...)
	case "lbipam-quiet":
		stopWriter, err = startController(cp, controllerBin, workers, append(extraControllerArgs, "--allocation-events=false")...)
	case "ceiling":
		stopWriter, err = startCeiling(ctx, cfg, workers)
	default:
		return result{}, fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return result{}, err
	}

	done, err := watchServed(ctx, cfg, n)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	lastCreate, err := createServices(ctx, c, n, creators)
	if err != nil {
		return result{}, err
	}
	select {
	case at := <-done:
		usage := stopWriter()
		return result{size: n, mode: mode, total: at.Sub(start), tail: at.Sub(lastCreate), peakRSSKB: usage.PeakRSSKB, cpu: usage.CPU}, nil
	case <-time.After(15 * time.Minute):
		stopWriter()
		return result{}, errors.New("Services not all served after 15 minutes")
	}
}

// createServices creates n LoadBalancer Services with creators workers and
// returns when the last create returned.
func createServices(ctx context.Context, c client.Client, n, creators int) (time.Time, error) {
	return benchutil.Create(n, creators, func(i int) error {
		return c.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i)},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"app": "bench"},
				Ports:    []corev1.ServicePort{{Port: 80}},
				// Node ports would run out first; they are not what is
				// measured.
				AllocateLoadBalancerNodePorts: new(bool),
			},
		})
	})
}

// watchServed reports on the returned channel the moment n Services hold an
// address.
func watchServed(ctx context.Context, cfg *rest.Config, n int) (<-chan time.Time, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("bench"))
	inf := f.Core().V1().Services().Informer()
	var mu sync.Mutex
	served := map[types.UID]bool{}
	done := make(chan time.Time, 1)
	check := func(obj any) {
		svc, ok := obj.(*corev1.Service)
		if !ok || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !served[svc.UID] {
			served[svc.UID] = true
			if len(served) == n {
				done <- time.Now()
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return done, nil
}

// startController runs bin/plexus-lbipam-controller against the control plane.
func startController(cp *benchutil.ControlPlane, bin string, workers int, extraArgs ...string) (func() benchutil.Usage, error) {
	return cp.StartBinary(bin, append([]string{"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--kube-api-qps=-1", fmt.Sprintf("--workers=%d", workers), "--zap-log-level=error"}, extraArgs...)...)
}

// startCeiling writes, for each new Service, an address and a satisfied
// condition, with nothing computed: the cost of the writes alone.
func startCeiling(ctx context.Context, cfg *rest.Config, workers int) (func() benchutil.Usage, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("bench"))
	inf := f.Core().V1().Services().Informer()
	queue := make(chan *corev1.Service, 1<<16)
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) { queue <- o.(*corev1.Service) }}); err != nil {
		return nil, err
	}
	var next atomic.Uint32
	base := netip.MustParseAddr("10.128.0.0").As4()
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-wctx.Done():
					return
				case svc := <-queue:
					i := next.Add(1) - 1
					ip := netip.AddrFrom4([4]byte{base[0], base[1] + byte(i>>16), byte(i >> 8), byte(i)})
					desired := svc.DeepCopy()
					vip := corev1.LoadBalancerIPModeVIP
					desired.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}
					desired.Status.Conditions = append(desired.Status.Conditions, metav1.Condition{
						Type: "cilium.io/IPAMRequestSatisfied", Status: metav1.ConditionTrue, Reason: "satisfied", LastTransitionTime: metav1.Now(),
					})
					patch := client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})
					if err := c.Status().Patch(wctx, desired, patch); err != nil && wctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "ceiling write:", err)
					}
				}
			}
		})
	}
	f.Start(wctx.Done())
	f.WaitForCacheSync(wctx.Done())
	return func() benchutil.Usage {
		stop()
		wg.Wait()
		return benchutil.Usage{}
	}, nil
}

func report(all []result) {
	type key struct {
		size int
		mode string
	}
	groups := map[key][]result{}
	for _, r := range all {
		k := key{r.size, r.mode}
		groups[k] = append(groups[k], r)
	}
	median := func(rs []result, f func(result) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = f(r)
		}
		return benchutil.Median(ds)
	}
	var sizes []int
	for k := range groups {
		if !slices.Contains(sizes, k.size) {
			sizes = append(sizes, k.size)
		}
	}
	slices.SortFunc(sizes, cmp.Compare)
	fmt.Printf("\nMachine: %d CPUs (%s/%s), %s; median of %d runs.\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), len(groups[key{sizes[0], "lbipam"}]))
	fmt.Println("| Services | writer | all served (median) | ratio to ceiling | after last create (median) | controller CPU (median) | controller peak RSS |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|")
	total := func(r result) time.Duration { return r.total }
	tail := func(r result) time.Duration { return r.tail }
	for _, n := range sizes {
		ceil := groups[key{n, "ceiling"}]
		for _, mode := range []string{"ceiling", "lbipam", "lbipam-quiet"} {
			rs := groups[key{n, mode}]
			if len(rs) == 0 {
				continue
			}
			peak := 0
			for _, r := range rs {
				peak = max(peak, r.peakRSSKB)
			}
			ratio := "–"
			if len(ceil) > 0 {
				ratio = fmt.Sprintf("%.2f", median(rs, total).Seconds()/median(ceil, total).Seconds())
			}
			rss, cpu := "–", "–"
			if peak > 0 {
				rss = fmt.Sprintf("%d MiB", peak/1024)
				cpu = fmt.Sprintf("%.2f s", median(rs, func(r result) time.Duration { return r.cpu }).Seconds())
			}
			fmt.Printf("| %d | %s | %.2f s | %s | %.3f s | %s | %s |\n", n, mode, median(rs, total).Seconds(), ratio, median(rs, tail).Seconds(), cpu, rss)
		}
	}
}
