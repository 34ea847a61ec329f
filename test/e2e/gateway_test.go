package e2e_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// The Gateway API on a 2-node lab: the gateway controller, and on each node
// the l7proxy plugin feeding the stand-in proxy (no Envoy can be had here).
// The Gateway's address comes from LB-IPAM and is announced over L2; the
// external client reaches the backends through it.
func TestGateway(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus", Gateway: true})
	for i := 1; i <= 2; i++ {
		n := l.Layout.NodeName(i)
		for _, c := range []string{lab.L7ProxyNode, lab.L7StandIn, lab.L2AnnouncerNode} {
			if !l.Running(n, c) {
				t.Fatalf("%s does not run on %s: the lab did not start it (see its output above)", c, n)
			}
		}
	}
	ctx := context.Background()
	for _, name := range []string{"gw-details", "gw-productpage"} {
		labtest.Deploy(t, l, labtest.Echo(name, 2, nil))
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: labtest.Namespace}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		}}
		if _, err := l.Client.CoreV1().Services(labtest.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Cilium.Create(ctx, &ciliumv2alpha1.CiliumL2AnnouncementPolicy{ObjectMeta: metav1.ObjectMeta{Name: "gateway"},
		Spec: ciliumv2alpha1.L2AnnouncementPolicySpec{Interfaces: []string{"^eth0$"}, LoadBalancerIPs: true}}))
	must(l.Cilium.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: "io.cilium/gateway-controller"}}))
	must(l.Cilium.Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "my-gateway", Namespace: labtest.Namespace}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "web-gw", Protocol: gwv1.HTTPProtocolType, Port: 80}},
	}}))
	backend := func(name string) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: new(gwv1.PortNumber(80))}}}
	}
	prefix := func(p string) []gwv1.HTTPRouteMatch {
		return []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchPathPrefix), Value: &p}}}
	}
	route := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "http-app-1", Namespace: labtest.Namespace}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "my-gateway"}}},
		Rules: []gwv1.HTTPRouteRule{
			{Matches: prefix("/details"), BackendRefs: []gwv1.HTTPBackendRef{backend("gw-details")}},
			{Matches: prefix("/"), BackendRefs: []gwv1.HTTPBackendRef{backend("gw-productpage")}},
		},
	}}
	must(l.Cilium.Create(ctx, route))

	var addr string
	t.Run("GW6_GW7_GW8_ProgrammedWithAnAddress", func(t *testing.T) {
		l.EventuallyIn(t, 90*time.Second, "Gateway Programmed with an address", func() error {
			var gw gwv1.Gateway
			if err := l.Cilium.Get(ctx, client.ObjectKey{Namespace: labtest.Namespace, Name: "my-gateway"}, &gw); err != nil {
				return err
			}
			c := meta.FindStatusCondition(gw.Status.Conditions, "Programmed")
			if c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("Programmed: %+v", c)
			}
			if len(gw.Status.Addresses) == 0 {
				return fmt.Errorf("no address")
			}
			addr = gw.Status.Addresses[0].Value
			return nil
		})
	})
	if addr == "" {
		t.Fatal("the Gateway has no address")
	}
	t.Run("GatewayStatusCommandShowsEachNode", func(t *testing.T) {
		out := l.Kubectl(t, "kubectl-plexus", "gateway", "status", "my-gateway", "-n", labtest.Namespace)
		for i := 1; i <= 2; i++ {
			row := regexp.MustCompile(`(?m)^` + l.Layout.NodeName(i) + `\s+\d+\s+[0-9a-f]+\s+serving$`)
			if !row.MatchString(out) {
				t.Errorf("no serving row for %s:\n%s", l.Layout.NodeName(i), out)
			}
		}
		if !strings.Contains(out, "Programmed:    True") || !strings.Contains(out, addr) {
			t.Errorf("gateway status:\n%s", out)
		}
	})
	c := l.ExternalClientHTTP()
	get := func(path string) (labtest.Answer, error) { return labtest.FetchWith(c, "http://"+addr+path) }
	t.Run("GW26_PathRoutingFromTheExternalClient", func(t *testing.T) {
		l.EventuallyIn(t, 60*time.Second, "routes served through the Gateway's address", func() error {
			for path, want := range map[string]string{"/details/1": "gw-details-", "/": "gw-productpage-", "/reviews": "gw-productpage-"} {
				a, err := get(path)
				if err != nil {
					return err
				}
				if !strings.HasPrefix(a.Pod, want) {
					return fmt.Errorf("GET %s answered by %s, want a %s pod", path, a.Pod, want)
				}
			}
			return nil
		})
	})

	// While the client keeps asking for /details, routes are added,
	// edited and deleted: the route that stays valid loses no request.
	t.Run("RouteEditsDropNoRequests", func(t *testing.T) {
		var sent, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				sent.Add(1)
				a, err := get("/details/x")
				if err == nil && !strings.HasPrefix(a.Pod, "gw-details-") {
					err = fmt.Errorf("answered by %s", a.Pod)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
		extra := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "http-app-2", Namespace: labtest.Namespace}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "my-gateway"}}},
			Rules:           []gwv1.HTTPRouteRule{{Matches: prefix("/new"), BackendRefs: []gwv1.HTTPBackendRef{backend("gw-productpage")}}},
		}}
		if err := l.Cilium.Create(ctx, extra); err != nil {
			t.Fatal(err)
		}
		l.EventuallyIn(t, 30*time.Second, "the added route served", func() error {
			a, err := get("/new/thing")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(a.Pod, "gw-productpage-") {
				return fmt.Errorf("/new answered by %s", a.Pod)
			}
			return nil
		})
		for i := range 3 {
			// The controller writes the route's status meanwhile: retry
			// on the conflict, as kubectl edit would.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var r gwv1.HTTPRoute
				if err := l.Cilium.Get(ctx, client.ObjectKeyFromObject(extra), &r); err != nil {
					return err
				}
				r.Spec.Rules[0].Matches = prefix(fmt.Sprintf("/new%d", i))
				return l.Cilium.Update(ctx, &r)
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		if err := l.Cilium.Delete(ctx, extra); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		close(stop)
		<-done
		if failed.Load() != 0 || sent.Load() < 50 {
			t.Errorf("%d of %d requests to the unchanged route failed (first: %v)", failed.Load(), sent.Load(), firstErr.Load())
		}
		t.Logf("%d requests to /details during the edits, %d failed", sent.Load(), failed.Load())
	})
}
