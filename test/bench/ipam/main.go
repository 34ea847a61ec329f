// Command ipam measures how long the IPAM controller takes to give pod CIDRs
// to a burst of new Nodes on a real API server: from the first Node created
// until every node's CiliumNode holds a CIDR. Beside it run:
//
//   - ceiling: a writer that does the controller's API writes per Node
//     (create the CiliumNode with a CIDR, then write its status) with no
//     allocation logic, through the same kind of informer and the same
//     number of concurrent writers;
//   - creates: the ceiling without the status writes: the floor for one
//     CiliumNode create per Node;
//   - kcm: kube-controller-manager's own node IPAM (--allocate-node-cidrs,
//     the range allocator), timed until every Node's spec.podCIDRs is set,
//     which is what a user compares Plexus with.
//
// The controllers run as their own processes, so their CPU time and peak
// RSS are their own. -limits off (the default) turns client-side rate
// limits off in both controllers; -limits default keeps each one's default
// (Plexus 100/s burst 200, kube-controller-manager 20/s burst 30).
//
// Each run starts a fresh kube-apiserver and etcd. Usage (see make bench):
//
//	go run ./test/bench/ipam -sizes 5000 -runs 3
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/bench/benchutil"
)

func main() {
	sizes := flag.String("sizes", "5000", "numbers of Nodes per run")
	runs := flag.Int("runs", 3, "runs per size and mode; the median is reported")
	workers := flag.Int("workers", 16, "concurrent writers (controller and ceiling alike)")
	creators := flag.Int("creators", 32, "concurrent Node creators")
	controllerBin := flag.String("controller", "bin/plexus-ipam-controller", "the IPAM controller binary")
	modes := flag.String("modes", "kcm,creates,ceiling,ipam", "who allocates: kcm (kube-controller-manager's node IPAM), creates, ceiling or ipam")
	limits := flag.String("limits", "off", "client-side rate limits of the controllers: off or default")
	kcmBin := flag.String("kcm", "", "the kube-controller-manager binary (default: $KUBEBUILDER_ASSETS/kube-controller-manager)")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if *limits != "off" && *limits != "default" {
		fail(fmt.Errorf("-limits %q: want off or default", *limits))
	}
	if *kcmBin == "" {
		*kcmBin = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager")
	}
	if out, err := exec.Command("go", "build", "-o", *controllerBin, "./controllers/ipam/cmd/plexus-ipam-controller").CombinedOutput(); err != nil {
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
				r, err := runOnce(n, mode, *workers, *creators, *controllerBin, *kcmBin, *limits == "off")
				if err != nil {
					fail(fmt.Errorf("%s with %d Nodes, run %d: %w", mode, n, i+1, err))
				}
				fmt.Fprintf(os.Stderr, "run %d: %v\n", i+1, r)
				all = append(all, r)
			}
		}
	}
	benchutil.Report(all, *runs, []string{"kcm", "creates", "ceiling", "ipam"}, "Nodes", "all allocated")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// runOnce measures from the first Node created until every CiliumNode
// (kcm: every Node) holds a CIDR.
func runOnce(n int, mode string, workers, creators int, bin, kcmBin string, unlimited bool) (benchutil.Result, error) {
	cp, err := benchutil.Start()
	if err != nil {
		return benchutil.Result{}, err
	}
	defer cp.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var stopWriter func() benchutil.Usage
	var done <-chan time.Time
	switch mode {
	case "ipam":
		var extra []string
		if !unlimited {
			extra = []string{"--kube-api-qps=100", "--kube-api-burst=200"} // after StartController's -1: the flag's default
		}
		stopWriter, err = cp.StartController(bin, workers, extra...)
	case "ceiling":
		stopWriter, err = startCeiling(ctx, cp, workers, true)
	case "creates":
		stopWriter, err = startCeiling(ctx, cp, workers, false)
	case "kcm":
		stopWriter, err = startKCM(cp, kcmBin, unlimited)
	default:
		return benchutil.Result{}, fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return benchutil.Result{}, err
	}
	if mode == "kcm" {
		done, err = watchNodeCIDRs(ctx, cp, n)
	} else {
		done, err = watchAllocated(ctx, cp, n)
	}
	if err != nil {
		return benchutil.Result{}, err
	}
	start := time.Now()
	lastCreate, err := createNodes(ctx, cp.Client, n, creators)
	if err != nil {
		return benchutil.Result{}, err
	}
	select {
	case at := <-done:
		return benchutil.Result{Size: n, Mode: mode, Total: at.Sub(start), Tail: at.Sub(lastCreate), Usage: stopWriter()}, nil
	case <-time.After(15 * time.Minute):
		stopWriter()
		return benchutil.Result{}, errors.New("CiliumNodes not all allocated after 15 minutes")
	}
}

func createNodes(ctx context.Context, c client.Client, n, creators int) (time.Time, error) {
	return benchutil.Create(n, creators, func(i int) error {
		return c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%05d", i)}})
	})
}

// watchAllocated reports on the returned channel the moment n CiliumNodes
// hold a pod CIDR.
func watchAllocated(ctx context.Context, cp *benchutil.ControlPlane, n int) (<-chan time.Time, error) {
	return watchUntil(ctx, cp, &ciliumv2.CiliumNode{}, n, func(o any) (string, bool) {
		cn, ok := o.(*ciliumv2.CiliumNode)
		if !ok {
			return "", false
		}
		return cn.Name, len(cn.Spec.IPAM.PodCIDRs) > 0
	})
}

// watchNodeCIDRs reports the moment n Nodes have spec.podCIDRs.
func watchNodeCIDRs(ctx context.Context, cp *benchutil.ControlPlane, n int) (<-chan time.Time, error) {
	return watchUntil(ctx, cp, &corev1.Node{}, n, func(o any) (string, bool) {
		node, ok := o.(*corev1.Node)
		if !ok {
			return "", false
		}
		return node.Name, len(node.Spec.PodCIDRs) > 0
	})
}

// watchUntil reports the moment n objects of obj's kind are allocated
// (allocated names an object and says whether it is).
func watchUntil(ctx context.Context, cp *benchutil.ControlPlane, obj client.Object, n int, allocated func(any) (string, bool)) (<-chan time.Time, error) {
	inf, err := cp.Informer(ctx, obj)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan time.Time, 1)
	check := func(o any) {
		name, ok := allocated(o)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[name] {
			seen[name] = true
			if len(seen) == n {
				done <- time.Now()
			}
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }})
	return done, err
}

// startKCM runs kube-controller-manager with only its node IPAM controller,
// allocating /24s of 10.0.0.0/8 as the Plexus controller does, and returns
// once it answers its health check.
func startKCM(cp *benchutil.ControlPlane, bin string, unlimited bool) (func() benchutil.Usage, error) {
	addr, err := benchutil.FreeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"--controllers=nodeipam", "--allocate-node-cidrs=true", "--cluster-cidr=10.0.0.0/8", "--node-cidr-mask-size=24",
		"--leader-elect=false", "--bind-address=" + host, "--secure-port=" + port, "--v=0"}
	if unlimited {
		args = append(args, "--kube-api-qps=1000000", "--kube-api-burst=1000000")
	}
	p, err := cp.StartProcess(bin, args...)
	if err != nil {
		return nil, err
	}
	// Its serving certificate is self-signed; only the answer matters.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Second} //nolint:gosec // loopback health check of a process this run started
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p.Stop, nil
			}
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("kube-controller-manager at %s not healthy within a minute", addr)
		}
	}
}

// startCeiling gives each new Node a CiliumNode holding the next /24 and then
// writes its status: the controller's writes with nothing decided.
func startCeiling(ctx context.Context, cp *benchutil.ControlPlane, workers int, status bool) (func() benchutil.Usage, error) {
	inf, err := cp.Informer(ctx, &corev1.Node{})
	if err != nil {
		return nil, err
	}
	queue := make(chan string, 1<<16)
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(o any) { queue <- o.(*corev1.Node).Name }}); err != nil {
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
				case name := <-queue:
					i := next.Add(1) - 1
					cn := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: name},
						Spec: ciliumv2.NodeSpec{IPAM: ciliumv2.IPAMSpec{PodCIDRs: []string{fmt.Sprintf("10.%d.%d.0/24", i>>8, i&255)}}}}
					if err := cp.Client.Create(wctx, cn); err != nil {
						if wctx.Err() == nil {
							fmt.Fprintln(os.Stderr, "ceiling create:", err)
						}
						continue
					}
					if !status {
						continue
					}
					orig := cn.DeepCopy()
					cn.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Allocated", LastTransitionTime: metav1.Now()}}
					if err := cp.Client.Status().Patch(wctx, cn, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && wctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "ceiling status:", err)
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
