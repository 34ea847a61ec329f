// Command gateway measures the gateway controller at scale on a real API
// server: a burst of Gateways, each with its HTTPRoutes, from the first
// object created until every Gateway's CiliumEnvoyConfig holds its routes
// and every route reports Accepted; then one route edit until its Gateway's
// config changes. The controller runs as its own process, so its CPU time
// and peak RSS are its own; the node proxies are not in it (their
// acknowledgements are a separate measurement, make bench-gateway).
//
// Each run starts a fresh kube-apiserver and etcd. Usage (make
// bench-gateway-scale):
//
//	go run ./test/bench/gateway -gateways 1000 -routes 10 -runs 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/bench/benchutil"
)

const namespace = "bench"

func main() {
	gateways := flag.Int("gateways", 1000, "Gateways in the burst")
	routes := flag.Int("routes", 10, "HTTPRoutes per Gateway")
	runs := flag.Int("runs", 3, "runs; the median is reported")
	workers := flag.Int("workers", 16, "the controller's concurrent writes")
	creators := flag.Int("creators", 32, "concurrent creators")
	bin := flag.String("controller", "bin/plexus-gateway-controller", "the gateway controller binary")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if out, err := exec.Command("go", "build", "-o", *bin, "./controllers/gateway/cmd/plexus-gateway-controller").CombinedOutput(); err != nil {
		fail(fmt.Errorf("building the controller: %w\n%s", err, out))
	}
	var results []result
	for i := range *runs {
		r, err := runOnce(*gateways, *routes, *workers, *creators, *bin)
		if err != nil {
			fail(fmt.Errorf("run %d: %w", i+1, err))
		}
		fmt.Fprintf(os.Stderr, "run %d: %+v\n", i+1, r)
		results = append(results, r)
	}
	med := func(f func(result) time.Duration) time.Duration {
		var xs []time.Duration
		for _, r := range results {
			xs = append(xs, f(r))
		}
		return benchutil.Median(xs)
	}
	var rss []int
	for _, r := range results {
		rss = append(rss, r.usage.PeakRSSKB)
	}
	fmt.Printf("\nMachine: %d CPUs (%s/%s), %s; median of %d runs.\n\n", goruntime.NumCPU(), goruntime.GOOS, goruntime.GOARCH, goruntime.Version(), *runs)
	fmt.Println("| Gateways | HTTPRoutes | all served (median) | after last create | one route edit to its config | controller CPU | controller peak RSS |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %d | %v | %v | %v | %v | %d MiB |\n", *gateways, *gateways**routes,
		med(func(r result) time.Duration { return r.total }).Round(time.Millisecond),
		med(func(r result) time.Duration { return r.tail }).Round(time.Millisecond),
		med(func(r result) time.Duration { return r.edit }).Round(time.Millisecond),
		med(func(r result) time.Duration { return r.usage.CPU }).Round(time.Millisecond),
		benchutil.Median(rss)/1024)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

type result struct {
	total, tail, edit time.Duration
	usage             benchutil.Usage
}

func gatewayName(i int) string { return fmt.Sprintf("gw-%04d", i) }

func runOnce(gateways, routesPer, workers, creators int, bin string) (result, error) {
	var res result
	cp, err := benchutil.Start()
	if err != nil {
		return res, err
	}
	defer cp.Stop()
	ctx := context.Background()
	c := cp.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cilium-secrets"}},
		&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: "io.cilium/gateway-controller"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: namespace}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: namespace, Labels: map[string]string{discoveryv1.LabelServiceName: "echo"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.1.10"}}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return res, err
		}
	}
	for i := 1; i <= 2; i++ {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)}}
		if err := c.Create(ctx, n); err != nil {
			return res, err
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", 10+i)}}
		if err := c.Status().Update(ctx, n); err != nil {
			return res, err
		}
	}
	stop, err := cp.StartController(bin, workers, "--proxy-ports=10000-"+fmt.Sprint(10000+gateways-1))
	if err != nil {
		return res, err
	}
	defer func() {
		if stop != nil {
			stop()
		}
	}()

	// Done when every Gateway's config holds its routes and every route
	// is Accepted: watched through informers, as a user's kubectl would.
	cecs, err := cp.Informer(ctx, &ciliumv2.CiliumEnvoyConfig{})
	if err != nil {
		return res, err
	}
	hrs, err := cp.Informer(ctx, &gwv1.HTTPRoute{})
	if err != nil {
		return res, err
	}
	var mu sync.Mutex
	servedGW := map[string]bool{}
	accepted := map[string]bool{}
	done := make(chan struct{})
	var closed atomic.Bool
	check := func() {
		if len(servedGW) == gateways && len(accepted) == gateways*routesPer && closed.CompareAndSwap(false, true) {
			close(done)
		}
	}
	onCEC := func(o any) {
		cec, ok := o.(*ciliumv2.CiliumEnvoyConfig)
		if !ok {
			return
		}
		gw := strings.TrimPrefix(cec.Name, "cilium-gateway-")
		n := 0
		for _, r := range cec.Spec.Resources {
			n += strings.Count(string(r.Raw), "HTTPRoute/"+namespace+"/")
		}
		mu.Lock()
		defer mu.Unlock()
		if n == routesPer {
			servedGW[gw] = true
		}
		check()
	}
	onRoute := func(o any) {
		hr, ok := o.(*gwv1.HTTPRoute)
		if !ok || len(hr.Status.Parents) == 0 || !meta.IsStatusConditionTrue(hr.Status.Parents[0].Conditions, "Accepted") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		accepted[hr.Name] = true
		check()
	}
	if _, err := cecs.AddEventHandler(handler(onCEC)); err != nil {
		return res, err
	}
	if _, err := hrs.AddEventHandler(handler(onRoute)); err != nil {
		return res, err
	}

	var objs []client.Object
	for g := range gateways {
		objs = append(objs, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: gatewayName(g), Namespace: namespace}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}}}})
		for r := range routesPer {
			objs = append(objs, route(g, r, fmt.Sprintf("/r%d", r)))
		}
	}
	start := time.Now()
	if err := createAll(ctx, c, objs, creators); err != nil {
		return res, err
	}
	lastCreate := time.Now()
	select {
	case <-done:
	case <-time.After(15 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		return res, fmt.Errorf("after 15 minutes %d of %d Gateways served, %d of %d routes accepted", len(servedGW), gateways, len(accepted), gateways*routesPer)
	}
	res.total, res.tail = time.Since(start), time.Since(lastCreate)

	// One edit: a route's path changes; done when its Gateway's config
	// carries the new path.
	changed := make(chan struct{})
	var once sync.Once
	if _, err := cecs.AddEventHandler(handler(func(o any) {
		if cec, ok := o.(*ciliumv2.CiliumEnvoyConfig); ok && cec.Name == "cilium-gateway-"+gatewayName(0) {
			for _, r := range cec.Spec.Resources {
				if strings.Contains(string(r.Raw), "/edited") {
					once.Do(func() { close(changed) })
				}
			}
		}
	})); err != nil {
		return res, err
	}
	var hr gwv1.HTTPRoute
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: routeName(0, 0)}, &hr); err != nil {
		return res, err
	}
	hr.Spec.Rules[0].Matches[0].Path.Value = new("/edited")
	editStart := time.Now()
	if err := c.Update(ctx, &hr); err != nil {
		return res, err
	}
	select {
	case <-changed:
		res.edit = time.Since(editStart)
	case <-time.After(2 * time.Minute):
		return res, errors.New("the edit did not reach its Gateway's config in 2 minutes")
	}
	res.usage = stop()
	stop = nil
	return res, nil
}

func routeName(g, r int) string { return fmt.Sprintf("%s-r%02d", gatewayName(g), r) }

func route(g, r int, path string) *gwv1.HTTPRoute {
	return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: routeName(g, r), Namespace: namespace}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: gwv1.ObjectName(gatewayName(g))}}},
		Rules: []gwv1.HTTPRouteRule{{
			Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchPathPrefix), Value: &path}}},
			BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "echo", Port: new(gwv1.PortNumber(80))}}}},
		}},
	}}
}

// createAll creates objs with n concurrent writers.
func createAll(ctx context.Context, c client.Client, objs []client.Object, n int) error {
	ch := make(chan client.Object)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for o := range ch {
				if err := c.Create(ctx, o); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for _, o := range objs {
		ch <- o
	}
	close(ch)
	wg.Wait()
	close(errs)
	return errors.Join(slices.Collect(func(yield func(error) bool) {
		for e := range errs {
			if !yield(e) {
				return
			}
		}
	})...)
}

// handler calls f on adds and updates.
func handler(f func(any)) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, o any) { f(o) }}
}
