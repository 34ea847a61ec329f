// Command identity measures how long the identity controller takes to give
// identities to a burst of new pods on a real API server: from the first pod
// created until every label set among them has a CiliumIdentity. Pods come
// in label sets of -per-set pods each (replicas), so 10,000 pods at 10 per
// set make 1,000 identities; consecutive pods share a set, so the last set
// appears with the last pods and the figure covers the whole burst. Beside it runs a ceiling: a writer that creates
// one CiliumIdentity per new label set, through the same kind of informer
// and the same number of concurrent writers, with nothing computed (the
// set is one label, numbers are counted up). The controller runs as its own
// process (bin/plexus-identity-controller), so its CPU time and peak RSS are
// its own.
//
// Each run starts a fresh kube-apiserver and etcd. Usage (see make bench):
//
//	go run ./test/bench/identity -sizes 10000 -per-set 10 -runs 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/bench/benchutil"
)

const namespace = "bench"

func main() {
	sizes := flag.String("sizes", "10000", "numbers of pods per run")
	perSet := flag.Int("per-set", 10, "pods per label set")
	runs := flag.Int("runs", 3, "runs per size and mode; the median is reported")
	workers := flag.Int("workers", 16, "concurrent writers (controller and ceiling alike)")
	creators := flag.Int("creators", 32, "concurrent pod creators")
	bin := flag.String("controller", "bin/plexus-identity-controller", "the identity controller binary")
	modes := flag.String("modes", "ceiling,identity", "who writes the identities: ceiling or identity")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if out, err := exec.Command("go", "build", "-o", *bin, "./controllers/identity/cmd/plexus-identity-controller").CombinedOutput(); err != nil {
		fail(fmt.Errorf("building the controller: %w\n%s", err, out))
	}
	var all []benchutil.Result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		for _, mode := range strings.Split(*modes, ",") {
			for i := range *runs {
				r, err := runOnce(n, *perSet, mode, *workers, *creators, *bin)
				if err != nil {
					fail(fmt.Errorf("%s with %d pods, run %d: %w", mode, n, i+1, err))
				}
				fmt.Fprintf(os.Stderr, "run %d: %v\n", i+1, r)
				all = append(all, r)
			}
		}
	}
	benchutil.Report(all, *runs, []string{"ceiling", "identity"}, "Pods", "every label set has an identity")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// runOnce measures from the first pod created until every label set has an
// identity.
func runOnce(n, perSet int, mode string, workers, creators int, bin string) (benchutil.Result, error) {
	cp, err := benchutil.Start()
	if err != nil {
		return benchutil.Result{}, err
	}
	defer cp.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return benchutil.Result{}, err
	}

	var stopWriter func() benchutil.Usage
	switch mode {
	case "identity":
		stopWriter, err = cp.StartController(bin, workers)
	case "ceiling":
		stopWriter, err = startCeiling(ctx, cp, workers)
	default:
		return benchutil.Result{}, fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return benchutil.Result{}, err
	}
	sets := (n + perSet - 1) / perSet
	done, err := watchIdentities(ctx, cp, sets)
	if err != nil {
		return benchutil.Result{}, err
	}
	start := time.Now()
	lastCreate, err := benchutil.Create(n, creators, func(i int) error {
		return cp.Client.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("pod-%05d", i),
				Labels: map[string]string{"app": fmt.Sprintf("app-%04d", i/perSet), "pod-template-hash": strconv.Itoa(i)}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "agnhost"}}},
		})
	})
	if err != nil {
		return benchutil.Result{}, err
	}
	select {
	case at := <-done:
		return benchutil.Result{Size: n, Mode: mode, Total: at.Sub(start), Tail: at.Sub(lastCreate), Usage: stopWriter()}, nil
	case <-time.After(15 * time.Minute):
		stopWriter()
		return benchutil.Result{}, errors.New("label sets not all given an identity after 15 minutes")
	}
}

// watchIdentities reports on the returned channel the moment sets
// CiliumIdentities exist.
func watchIdentities(ctx context.Context, cp *benchutil.ControlPlane, sets int) (<-chan time.Time, error) {
	inf, err := cp.Informer(ctx, &ciliumv2.CiliumIdentity{})
	if err != nil {
		return nil, err
	}
	var seen atomic.Int64
	done := make(chan time.Time, 1)
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(any) {
		if seen.Add(1) == int64(sets) {
			done <- time.Now()
		}
	}})
	return done, err
}

// startCeiling creates one CiliumIdentity for each label set the first
// time a pod shows it: the controller's writes with nothing decided.
func startCeiling(ctx context.Context, cp *benchutil.ControlPlane, workers int) (func() benchutil.Usage, error) {
	inf, err := cp.Informer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, err
	}
	var (
		mu    sync.Mutex
		known = map[string]bool{}
		queue = make(chan string, 1<<16)
	)
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		app := o.(*corev1.Pod).Labels["app"]
		mu.Lock()
		defer mu.Unlock()
		if !known[app] {
			known[app] = true
			queue <- app
		}
	}}); err != nil {
		return nil, err
	}
	var next atomic.Uint32
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-wctx.Done():
					return
				case app := <-queue:
					id := &ciliumv2.CiliumIdentity{
						ObjectMeta:     metav1.ObjectMeta{Name: strconv.Itoa(int(256 + next.Add(1))), Labels: map[string]string{"app": app}},
						SecurityLabels: map[string]string{"k8s:app": app, "k8s:io.kubernetes.pod.namespace": namespace},
					}
					if err := cp.Client.Create(wctx, id); err != nil && wctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "ceiling create:", err)
					}
				}
			}
		})
	}
	return func() benchutil.Usage {
		stop()
		wg.Wait()
		return benchutil.Usage{}
	}, nil
}
