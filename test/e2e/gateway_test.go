package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
	"github.com/plexus-net/plexus/test/netnstest"
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

	// configuredGateway creates a Gateway <name> of its own class, whose
	// CiliumGatewayClassConfig sets svc on the generated Service, with one
	// HTTP listener routing to gw-productpage.
	configuredGateway := func(name string, svc ciliumv2alpha1.GatewayServiceConfig) {
		must(l.Cilium.Create(ctx, &ciliumv2alpha1.CiliumGatewayClassConfig{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: labtest.Namespace},
			Spec: ciliumv2alpha1.GatewayClassConfigSpec{Service: &svc}}))
		must(l.Cilium.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: gwv1.GatewayClassSpec{
			ControllerName: "io.cilium/gateway-controller",
			ParametersRef: &gwv1.ParametersReference{Group: "cilium.io", Kind: "CiliumGatewayClassConfig", Name: name,
				Namespace: new(gwv1.Namespace(labtest.Namespace))},
		}}))
		must(l.Cilium.Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: labtest.Namespace}, Spec: gwv1.GatewaySpec{
			GatewayClassName: gwv1.ObjectName(name), Listeners: []gwv1.Listener{{Name: "web", Protocol: gwv1.HTTPProtocolType, Port: 80}},
		}}))
		must(l.Cilium.Create(ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: labtest.Namespace}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: gwv1.ObjectName(name)}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("gw-productpage")}}},
		}}))
	}

	// With externalTrafficPolicy Cluster (the default) the node the
	// address reaches hands the connection to its own proxy (the l7proxy
	// plugin's redirect), so the backend sees the external client in
	// X-Forwarded-For, not a node.
	t.Run("GW45_SourceIPWithExternalTrafficPolicyCluster", func(t *testing.T) {
		want := l.Layout.ExtClientIP().String()
		l.EventuallyIn(t, 60*time.Second, "the external client in X-Forwarded-For", func() error {
			a, err := get("/")
			if err != nil {
				return err
			}
			if a.ForwardedFor != want {
				return fmt.Errorf("X-Forwarded-For %q at %s, want the external client %s", a.ForwardedFor, a.Pod, want)
			}
			return nil
		})
	})

	// Weights edited in place (no new Gateway): 99/1 sends at most 3 % of
	// 1,000 requests to the 1 side.
	t.Run("GW38_WeightsEditedInPlace", func(t *testing.T) {
		weighted := func(name string, w int32) gwv1.HTTPBackendRef {
			b := backend(name)
			b.Weight = &w
			return b
		}
		split := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "split", Namespace: labtest.Namespace}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "my-gateway"}}},
			Rules:           []gwv1.HTTPRouteRule{{Matches: prefix("/split"), BackendRefs: []gwv1.HTTPBackendRef{weighted("gw-details", 50), weighted("gw-productpage", 50)}}},
		}}
		must(l.Cilium.Create(ctx, split))
		count := func(n int) (details, productpage int, err error) {
			for range n {
				a, err := get("/split")
				if err != nil {
					return 0, 0, err
				}
				switch {
				case strings.HasPrefix(a.Pod, "gw-details-"):
					details++
				case strings.HasPrefix(a.Pod, "gw-productpage-"):
					productpage++
				}
			}
			return details, productpage, nil
		}
		l.EventuallyIn(t, 60*time.Second, "a 50/50 split", func() error {
			d, p, err := count(100)
			if err != nil {
				return err
			}
			if d < 20 || p < 20 {
				return fmt.Errorf("%d to gw-details, %d to gw-productpage of 100", d, p)
			}
			return nil
		})
		must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := l.Cilium.Get(ctx, client.ObjectKeyFromObject(split), split); err != nil {
				return err
			}
			split.Spec.Rules[0].BackendRefs = []gwv1.HTTPBackendRef{weighted("gw-details", 99), weighted("gw-productpage", 1)}
			return l.Cilium.Update(ctx, split)
		}))
		l.EventuallyIn(t, 90*time.Second, "at most 3 % of 1,000 requests to the weight-1 backend", func() error {
			d, p, err := count(1000)
			if err != nil {
				return err
			}
			if p > 30 || d+p != 1000 {
				return fmt.Errorf("%d to gw-details, %d to gw-productpage of 1,000", d, p)
			}
			return nil
		})
	})

	// A class whose config asks for externalTrafficPolicy Local: every
	// node runs the proxy, so kube-proxy's health check answers 200 on
	// every node's healthCheckNodePort, and the client's address is kept.
	t.Run("GW46_HealthCheckNodePortOnEveryNode", func(t *testing.T) {
		configuredGateway("local-gateway", ciliumv2alpha1.GatewayServiceConfig{ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal})
		l.EventuallyIn(t, 90*time.Second, "healthCheckNodePort 200 on every node, and the client kept", func() error {
			svc, err := l.Client.CoreV1().Services(labtest.Namespace).Get(ctx, "cilium-gateway-local-gateway", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || svc.Spec.HealthCheckNodePort == 0 || len(svc.Status.LoadBalancer.Ingress) == 0 {
				return fmt.Errorf("service: policy %s, healthCheckNodePort %d, ingress %+v", svc.Spec.ExternalTrafficPolicy, svc.Spec.HealthCheckNodePort, svc.Status.LoadBalancer.Ingress)
			}
			for i := 1; i <= 2; i++ {
				url := fmt.Sprintf("http://%s:%d/healthz", l.Layout.NodeIP(i), svc.Spec.HealthCheckNodePort)
				resp, err := c.Get(url)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s: %s", url, resp.Status)
				}
			}
			a, err := labtest.FetchWith(c, "http://"+svc.Status.LoadBalancer.Ingress[0].IP+"/")
			if err != nil {
				return err
			}
			if want := l.Layout.ExtClientIP().String(); a.ForwardedFor != want {
				return fmt.Errorf("X-Forwarded-For %q, want the external client %s", a.ForwardedFor, want)
			}
			return nil
		})
	})

	// A class whose CiliumGatewayClassConfig asks for NodePort Services:
	// the Gateway is reached on its node port at every node's address.
	t.Run("GW12_NodePortGatewayFromTheExternalClient", func(t *testing.T) {
		configuredGateway("np-gateway", ciliumv2alpha1.GatewayServiceConfig{Type: corev1.ServiceTypeNodePort})
		l.EventuallyIn(t, 90*time.Second, "every node's address answers on the Gateway's node port", func() error {
			var gw gwv1.Gateway
			if err := l.Cilium.Get(ctx, client.ObjectKey{Namespace: labtest.Namespace, Name: "np-gateway"}, &gw); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(gw.Status.Conditions, "Programmed"); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("Programmed: %+v", c)
			}
			if len(gw.Status.Addresses) != 2 {
				return fmt.Errorf("addresses %+v, want both nodes'", gw.Status.Addresses)
			}
			svc, err := l.Client.CoreV1().Services(labtest.Namespace).Get(ctx, "cilium-gateway-np-gateway", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].NodePort == 0 {
				return fmt.Errorf("service %s with ports %+v", svc.Spec.Type, svc.Spec.Ports)
			}
			for _, a := range gw.Status.Addresses {
				ans, err := labtest.FetchWith(c, fmt.Sprintf("http://%s:%d/", a.Value, svc.Spec.Ports[0].NodePort))
				if err != nil {
					return err
				}
				if !strings.HasPrefix(ans.Pod, "gw-productpage-") {
					return fmt.Errorf("%s answered by %s", a.Value, ans.Pod)
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
	t.Run("Ingress", func(t *testing.T) { ingressSubtests(t, l) })
}

// ingressSubtests run the seed's Ingress examples on the Gateway lab (its
// gw-details and gw-productpage Services): each Ingress is reached from the
// external client through the address LB-IPAM gives its load balancer.
func ingressSubtests(t *testing.T, l *labtest.Lab) {
	ctx := context.Background()
	ns := labtest.Namespace
	ings := l.Client.NetworkingV1().Ingresses(ns)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Client.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"},
		Spec: networkingv1.IngressClassSpec{Controller: "cilium.io/ingress-controller"}}, metav1.CreateOptions{})
	must(err)
	path := func(p, svc string) networkingv1.HTTPIngressPath {
		return networkingv1.HTTPIngressPath{Path: p, PathType: new(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}
	}
	basic := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "basic-ingress", Namespace: ns}, Spec: networkingv1.IngressSpec{
		IngressClassName: new("cilium"),
		Rules: []networkingv1.IngressRule{{IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{path("/details", "gw-details"), path("/", "gw-productpage")}}}}},
	}}
	_, err = ings.Create(ctx, basic, metav1.CreateOptions{})
	must(err)
	address := func(name string) (string, error) {
		ing, err := ings.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if len(ing.Status.LoadBalancer.Ingress) == 0 {
			return "", fmt.Errorf("Ingress %s has no address yet", name)
		}
		return ing.Status.LoadBalancer.Ingress[0].IP, nil
	}
	c := l.ExternalClientHTTP()
	routes := func(addr string) error {
		for p, want := range map[string]string{"/details/1": "gw-details-", "/": "gw-productpage-"} {
			a, err := labtest.FetchWith(c, "http://"+addr+p)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(a.Pod, want) {
				return fmt.Errorf("GET %s answered by %s, want a %s pod", p, a.Pod, want)
			}
		}
		return nil
	}

	var dedicated string
	t.Run("IN1_IN4_DedicatedIngressFromTheExternalClient", func(t *testing.T) {
		l.EventuallyIn(t, 90*time.Second, "the Ingress's address answers its paths", func() error {
			var err error
			if dedicated, err = address("basic-ingress"); err != nil {
				return err
			}
			return routes(dedicated)
		})
		svc, err := l.Client.CoreV1().Services(ns).Get(ctx, "cilium-ingress-basic-ingress", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 || svc.Status.LoadBalancer.Ingress[0].IP != dedicated {
			t.Errorf("the Ingress shows %s, its Service %+v", dedicated, svc.Status.LoadBalancer)
		}
	})

	t.Run("IN5_IN7_SwitchedToTheSharedLoadBalancer", func(t *testing.T) {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			ing, err := ings.Get(ctx, "basic-ingress", metav1.GetOptions{})
			if err != nil {
				return err
			}
			ing.Annotations = map[string]string{"ingress.cilium.io/loadbalancer-mode": "shared"}
			_, err = ings.Update(ctx, ing, metav1.UpdateOptions{})
			return err
		})
		must(err)
		l.EventuallyIn(t, 90*time.Second, "the Ingress moved to the shared address", func() error {
			shared, err := l.Client.CoreV1().Services(lab.PlexusNamespace).Get(ctx, lab.SharedIngressService, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(shared.Status.LoadBalancer.Ingress) == 0 {
				return fmt.Errorf("the shared Service has no address")
			}
			want := shared.Status.LoadBalancer.Ingress[0].IP
			got, err := address("basic-ingress")
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("the Ingress shows %s, the shared Service has %s", got, want)
			}
			if _, err := l.Client.CoreV1().Services(ns).Get(ctx, "cilium-ingress-basic-ingress", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("the dedicated Service is still there: %w", err)
			}
			return routes(want)
		})
	})

	t.Run("IN18_IN20_TLSTermination", func(t *testing.T) {
		cert, err := os.ReadFile("../../controllers/gateway/reconciler/testdata/tls.crt")
		must(err)
		key, err := os.ReadFile("../../controllers/gateway/reconciler/testdata/tls.key")
		must(err)
		_, err = l.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "demo-cert", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}, metav1.CreateOptions{})
		must(err)
		_, err = ings.Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "tls-ingress", Namespace: ns}, Spec: networkingv1.IngressSpec{
			IngressClassName: new("cilium"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"bookinfo.cilium.rocks"}, SecretName: "demo-cert"}},
			Rules: []networkingv1.IngressRule{{Host: "bookinfo.cilium.rocks", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{path("/details", "gw-details"), path("/", "gw-productpage")}}}}},
		}}, metav1.CreateOptions{})
		must(err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cert)
		tr := c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: "bookinfo.cilium.rocks", MinVersion: tls.VersionTLS12}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		do := func(url string) (*http.Response, error) {
			req, err := http.NewRequest("GET", url, nil)
			if err != nil {
				return nil, err
			}
			req.Host = "bookinfo.cilium.rocks"
			return hc.Do(req)
		}
		l.EventuallyIn(t, 90*time.Second, "HTTPS with the Ingress's certificate, HTTP redirected", func() error {
			addr, err := address("tls-ingress")
			if err != nil {
				return err
			}
			resp, err := do("https://" + addr + "/details/1")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("HTTPS: %s", resp.Status)
			}
			resp, err = do("http://" + addr + "/details/1")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://bookinfo.cilium.rocks/details/1" {
				return fmt.Errorf("HTTP: %s to %q, want a 301 to HTTPS", resp.Status, resp.Header.Get("Location"))
			}
			return nil
		})
	})
}

// Host network mode (the controller's --host-network with a node
// selector): no LoadBalancer Service; only the selected node's proxy
// listens, on the listener port itself, and the Gateway's address is that
// node's. A second Gateway on the same port is not served; a port already
// taken on the node is refused by the proxy, and the Gateway says so.
func TestGatewayHostNetwork(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus",
		Gateway: true, GatewayHostNetwork: true, GatewayHostNodes: "plexus.dev/edge=true"})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	edge, inner := l.Layout.NodeName(1), l.Layout.NodeName(2)
	must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := l.Client.CoreV1().Nodes().Get(ctx, edge, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Labels["plexus.dev/edge"] = "true"
		_, err = l.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	}))
	labtest.Deploy(t, l, labtest.Echo("hn-echo", 2, nil))
	labtest.Service(t, l, "hn-echo")
	must(l.Cilium.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: "io.cilium/gateway-controller"}}))
	gateway := func(name string, port int32) {
		must(l.Cilium.Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: labtest.Namespace}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "web", Protocol: gwv1.HTTPProtocolType, Port: gwv1.PortNumber(port)}},
		}}))
		must(l.Cilium.Create(ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: labtest.Namespace}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: gwv1.ObjectName(name)}}},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
				Name: "hn-echo", Port: new(gwv1.PortNumber(80))}}}}}},
		}}))
	}
	programmed := func(name string) (metav1.Condition, []gwv1.GatewayStatusAddress, error) {
		var gw gwv1.Gateway
		if err := l.Cilium.Get(ctx, client.ObjectKey{Namespace: labtest.Namespace, Name: name}, &gw); err != nil {
			return metav1.Condition{}, nil, err
		}
		c := meta.FindStatusCondition(gw.Status.Conditions, "Programmed")
		if c == nil {
			return metav1.Condition{}, nil, fmt.Errorf("%s has no Programmed condition", name)
		}
		return *c, gw.Status.Addresses, nil
	}
	c := l.ExternalClientHTTP()

	t.Run("GW19_GW20_OnlyTheSelectedNodeListens", func(t *testing.T) {
		gateway("host", 7080)
		l.EventuallyIn(t, 90*time.Second, "programmed at the edge node's address, answering on the listener port", func() error {
			cond, addrs, err := programmed("host")
			if err != nil {
				return err
			}
			if cond.Status != metav1.ConditionTrue || len(addrs) != 1 || addrs[0].Value != l.Layout.NodeIP(1).String() {
				return fmt.Errorf("Programmed %s (%s), addresses %+v; want True at %s", cond.Status, cond.Message, addrs, l.Layout.NodeIP(1))
			}
			a, err := labtest.FetchWith(c, fmt.Sprintf("http://%s:7080/", l.Layout.NodeIP(1)))
			if err != nil {
				return err
			}
			if !strings.HasPrefix(a.Pod, "hn-echo-") || a.ForwardedFor != l.Layout.ExtClientIP().String() {
				return fmt.Errorf("answered by %q with X-Forwarded-For %q", a.Pod, a.ForwardedFor)
			}
			return nil
		})
		if _, err := l.Client.CoreV1().Services(labtest.Namespace).Get(ctx, "cilium-gateway-host", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a Service exists in host network mode (%v)", err)
		}
		if _, err := labtest.FetchWith(c, fmt.Sprintf("http://%s:7080/", l.Layout.NodeIP(2))); err == nil {
			t.Errorf("%s, not selected, answers on 7080", inner)
		}
	})
	t.Run("GW21_SamePortTwiceIsNotServed", func(t *testing.T) {
		gateway("host-again", 7080)
		l.EventuallyIn(t, 60*time.Second, "the second Gateway on 7080 not programmed, naming the first", func() error {
			cond, _, err := programmed("host-again")
			if err != nil {
				return err
			}
			if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, "port 7080 is already used on the host network by Gateway "+labtest.Namespace+"/host") {
				return fmt.Errorf("Programmed %s: %s", cond.Status, cond.Message)
			}
			return nil
		})
	})
	t.Run("GW22_APortTheProxyCannotBindIsReported", func(t *testing.T) {
		// Something else holds 9090 on the edge node, as a privileged port
		// would be held from an Envoy without NET_BIND_SERVICE.
		var ln net.Listener
		must(netnstest.Do(l.NodeNetns(edge), func() (err error) { ln, err = net.Listen("tcp4", ":9090"); return err }))
		defer ln.Close()
		gateway("taken", 9090)
		l.EventuallyIn(t, 60*time.Second, "the proxy's refusal on the Gateway", func() error {
			cond, _, err := programmed("taken")
			if err != nil {
				return err
			}
			if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, edge) || !strings.Contains(cond.Message, "address already in use") {
				return fmt.Errorf("Programmed %s: %s", cond.Status, cond.Message)
			}
			return nil
		})
		if cond, _, err := programmed("host"); err != nil || cond.Status != metav1.ConditionTrue {
			t.Errorf("the first Gateway after the refusal: %+v (%v)", cond, err)
		}
	})
}
