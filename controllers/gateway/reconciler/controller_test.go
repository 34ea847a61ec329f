package reconciler

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	secretsNS = "cilium-secrets"
	testNS    = "gw-test"
)

type harness struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
}

func newHarness(t *testing.T) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client}
	h.empty()
	t.Cleanup(h.empty)
	for _, ns := range []string{secretsNS, testNS, "certs"} {
		err := h.c.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	return h
}

func (h *harness) start() func() { return h.startWith(nil) }

// startWith runs the controller with Ingress support on when ingress is set.
func (h *harness) startWith(ingress *translate.IngressOptions) func() {
	return h.run(func(r *Reconciler) { r.Ingress = ingress })
}

// run runs the controller as configure leaves it.
func (h *harness) run(configure func(*Reconciler)) func() {
	return env.RunManager(h.t, func(mgr ctrl.Manager) error {
		r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-gateway"), Passes: passes.Settings{Workers: 4},
			SecretsNamespace: secretsNS, ProxyPortFirst: 10000, ProxyPortLast: 10009, GatewayAPI: true, GRPCRoutes: true, TLSRoutes: true, BackendTLSPolicies: true}
		configure(r)
		return r.SetupWithManager(mgr)
	})
}

func (h *harness) empty() {
	ctx := context.Background()
	for _, o := range []client.Object{&gwv1.GatewayClass{}, &corev1.Node{}, &nodesv1alpha1.L7Proxy{}, &ciliumv2.CiliumClusterwideEnvoyConfig{}, &networkingv1.IngressClass{}} {
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, o)))
	}
	for _, ns := range []string{testNS, secretsNS, "certs"} {
		for _, o := range []client.Object{&gwv1.Gateway{}, &gwv1.HTTPRoute{}, &gwv1.ReferenceGrant{}, &corev1.Service{}, &discoveryv1.EndpointSlice{},
			&corev1.Secret{}, &ciliumv2.CiliumEnvoyConfig{}, &networkingv1.Ingress{}, &gwv1.BackendTLSPolicy{}} {
			h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, o, client.InNamespace(ns))))
		}
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.HasLabels{"test"})))
	}
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) eventually(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, f)
}

func (h *harness) node(name, ip string) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	h.must(h.c.Create(h.ctx, n))
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	h.must(h.c.Status().Update(h.ctx, n))
}

func (h *harness) class() {
	h.must(h.c.Create(h.ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: "io.cilium/gateway-controller"}}))
}

func (h *harness) service(name string, port int32) {
	h.must(h.c.Create(h.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}}}))
}

func (h *harness) get(key client.ObjectKey, o client.Object) error { return h.c.Get(h.ctx, key, o) }

// update reads o, applies change and writes it, again when the controller's
// status write got in between.
func (h *harness) update(o client.Object, change func()) {
	h.t.Helper()
	h.must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := h.get(client.ObjectKeyFromObject(o), o); err != nil {
			return err
		}
		change()
		return h.c.Update(h.ctx, o)
	}))
}

func condition(conds []metav1.Condition, t string) string {
	c := meta.FindStatusCondition(conds, t)
	if c == nil {
		return "(none)"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

func wantCondition(conds []metav1.Condition, t, status, reason string) error {
	c := meta.FindStatusCondition(conds, t)
	if c == nil || string(c.Status) != status || c.Reason != reason {
		return fmt.Errorf("%s is %s, want %s/%s", t, condition(conds, t), status, reason)
	}
	return nil
}

// ack writes, as a node's l7proxy plugin would, that the node's proxy
// serves every config of its L7Proxy at the configs' current generations;
// refuse, when set, is the error reported for every config instead.
//
// The controller writes the L7Proxy's spec meanwhile (its frontends follow
// the Services' addresses), so a conflict means read and report again.
func (h *harness) ack(node, refuse string) {
	h.must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p nodesv1alpha1.L7Proxy
		if err := h.get(client.ObjectKey{Name: node}, &p); err != nil {
			return err
		}
		p.Status.Configs = nil
		for _, ref := range p.Spec.Configs {
			var cec ciliumv2.CiliumEnvoyConfig
			if err := h.get(client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &cec); err != nil {
				return err
			}
			s := nodesv1alpha1.EnvoyConfigServed{EnvoyConfigRef: ref, Generation: cec.Generation}
			if refuse != "" {
				s.Generation, s.Error = 0, refuse
			}
			p.Status.Configs = append(p.Status.Configs, s)
		}
		return h.c.Status().Update(h.ctx, &p)
	}))
}

func gatewayKey(name string) client.ObjectKey { return client.ObjectKey{Namespace: testNS, Name: name} }

// A Gateway of the class gets its Service, EndpointSlice, Envoy config and
// one L7Proxy per node; Programmed waits for every node's acknowledgement
// and an address, and a refusal shows on the Gateway and its config.
func TestGW3_GW6_GW7_GW8_GW18_GW23_GW45_GW48_ProgrammedFollowsTheNodes(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11")
	h.node("n2", "198.18.0.12")
	h.class()
	h.service("echo", 8080)
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium",
		Listeners:        []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
		Infrastructure:   &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"team": "a"}},
	}}))
	h.must(h.c.Create(h.ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: testNS}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web"}}},
		Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "echo", Port: new(gwv1.PortNumber(8080))}}}}}},
	}}))
	h.start()

	h.eventually("GatewayClass accepted", func() error {
		var c gwv1.GatewayClass
		h.must(h.get(client.ObjectKey{Name: "cilium"}, &c))
		return wantCondition(c.Status.Conditions, "Accepted", "True", "Accepted")
	})
	svcKey := gatewayKey("cilium-gateway-web")
	var proxyPort int32
	h.eventually("the Gateway's Service, EndpointSlice and config", func() error {
		var svc corev1.Service
		if err := h.get(svcKey, &svc); err != nil {
			return err
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Labels["team"] != "a" {
			return fmt.Errorf("Service is %+v, labels %v", svc.Spec, svc.Labels)
		}
		proxyPort = svc.Spec.Ports[0].TargetPort.IntVal
		if proxyPort < 10000 || proxyPort > 10009 {
			return fmt.Errorf("proxy port %d outside the range", proxyPort)
		}
		var es discoveryv1.EndpointSlice
		if err := h.get(svcKey, &es); err != nil {
			return err
		}
		if len(es.Endpoints) != 2 || es.Endpoints[0].Addresses[0] != "198.18.0.11" || *es.Ports[0].Port != proxyPort {
			return fmt.Errorf("EndpointSlice is %+v", es)
		}
		var cec ciliumv2.CiliumEnvoyConfig
		if err := h.get(svcKey, &cec); err != nil {
			return err
		}
		if len(cec.Spec.Resources) != 4 || !strings.Contains(string(cec.Spec.Resources[0].Raw), "envoy.config.listener.v3.Listener") {
			return fmt.Errorf("config holds %d resources", len(cec.Spec.Resources))
		}
		return nil
	})
	h.eventually("both nodes' L7Proxies list the config", func() error {
		for _, n := range []string{"n1", "n2"} {
			var p nodesv1alpha1.L7Proxy
			if err := h.get(client.ObjectKey{Name: n}, &p); err != nil {
				return err
			}
			if len(p.Spec.Configs) != 1 || p.Spec.Configs[0].Name != "cilium-gateway-web" {
				return fmt.Errorf("%s serves %v", n, p.Spec.Configs)
			}
		}
		return nil
	})
	gwHas := func(status, reason string) func() error {
		return func() error {
			var gw gwv1.Gateway
			h.must(h.get(gatewayKey("web"), &gw))
			if err := wantCondition(gw.Status.Conditions, "Accepted", "True", "Accepted"); err != nil {
				return err
			}
			if err := wantCondition(gw.Status.Conditions, "Programmed", status, reason); err != nil {
				return err
			}
			if len(gw.Status.Listeners) != 1 || gw.Status.Listeners[0].AttachedRoutes != 1 {
				return fmt.Errorf("listeners %+v", gw.Status.Listeners)
			}
			return wantCondition(gw.Status.Listeners[0].Conditions, "Programmed", status, map[bool]string{true: "Programmed", false: "Pending"}[status == "True"])
		}
	}
	h.eventually("not programmed before the nodes acknowledge", gwHas("False", "Pending"))
	h.ack("n1", "")
	h.eventually("still pending with one node of two", func() error {
		var gw gwv1.Gateway
		h.must(h.get(gatewayKey("web"), &gw))
		if !strings.Contains(condition(gw.Status.Conditions, "Programmed"), "1 of 2 node proxies") {
			return fmt.Errorf("Programmed is %s", condition(gw.Status.Conditions, "Programmed"))
		}
		return nil
	})
	h.ack("n2", "")
	h.eventually("waiting for an address once both acknowledged", gwHas("False", "AddressNotAssigned"))

	// LB-IPAM's part: an address in the Service's status.
	var svc corev1.Service
	h.must(h.get(svcKey, &svc))
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.100.7"}}
	h.must(h.c.Status().Update(h.ctx, &svc))
	h.eventually("programmed with its address", func() error {
		if err := gwHas("True", "Programmed")(); err != nil {
			return err
		}
		var gw gwv1.Gateway
		h.must(h.get(gatewayKey("web"), &gw))
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != "198.18.100.7" {
			return fmt.Errorf("addresses %+v", gw.Status.Addresses)
		}
		return nil
	})
	h.eventually("every node takes the address's connections into its proxy", func() error {
		for _, n := range []string{"n1", "n2"} {
			var p nodesv1alpha1.L7Proxy
			if err := h.get(client.ObjectKey{Name: n}, &p); err != nil {
				return err
			}
			want := []nodesv1alpha1.L7Frontend{{Address: "198.18.100.7", Port: 80, ProxyPort: svc.Spec.Ports[0].TargetPort.IntVal}}
			if !slices.Equal(p.Spec.Frontends, want) {
				return fmt.Errorf("%s frontends %+v, want %+v", n, p.Spec.Frontends, want)
			}
		}
		return nil
	})
	h.eventually("route accepted with its references resolved", func() error {
		var r gwv1.HTTPRoute
		h.must(h.get(gatewayKey("echo"), &r))
		if len(r.Status.Parents) != 1 {
			return fmt.Errorf("parents %+v", r.Status.Parents)
		}
		if err := wantCondition(r.Status.Parents[0].Conditions, "Accepted", "True", "Accepted"); err != nil {
			return err
		}
		return wantCondition(r.Status.Parents[0].Conditions, "ResolvedRefs", "True", "ResolvedRefs")
	})
	h.eventually("the config is Ready", func() error {
		var cec ciliumv2.CiliumEnvoyConfig
		h.must(h.get(svcKey, &cec))
		return wantCondition(cec.Status.Conditions, "Ready", "True", "Served")
	})

	// A route edit changes the config; Programmed waits for the nodes
	// again, and a node that refuses it is named.
	var r gwv1.HTTPRoute
	h.must(h.get(gatewayKey("echo"), &r))
	r.Spec.Rules[0].Matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Value: new("/v2")}}}
	h.must(h.c.Update(h.ctx, &r))
	h.eventually("pending after the edit", gwHas("False", "Pending"))
	h.ack("n1", "")
	h.ack("n2", "listener cilium-gateway-web: address already in use")
	h.eventually("the refusal named on the Gateway and the config", func() error {
		var gw gwv1.Gateway
		h.must(h.get(gatewayKey("web"), &gw))
		if c := condition(gw.Status.Conditions, "Programmed"); !strings.Contains(c, "n2: listener cilium-gateway-web: address already in use") || !strings.HasPrefix(c, "False/Invalid") {
			return fmt.Errorf("Programmed is %s", c)
		}
		var cec ciliumv2.CiliumEnvoyConfig
		h.must(h.get(svcKey, &cec))
		return wantCondition(cec.Status.Conditions, "Ready", "False", "Refused")
	})
}

// A Gateway of another class gets nothing from this controller (GW-05).
func TestGW5_OtherClassesAreLeftAlone(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11")
	h.class()
	h.must(h.c.Create(h.ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: gwv1.GatewayClassSpec{ControllerName: "example.com/other"}}))
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "other", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
	}}))
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "ours", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
	}}))
	h.start()
	// Once our Gateway has its Service, a pass has seen both.
	h.eventually("our Gateway's Service", func() error { return h.get(gatewayKey("cilium-gateway-ours"), &corev1.Service{}) })
	var gw gwv1.Gateway
	h.must(h.get(gatewayKey("theirs"), &gw))
	if len(gw.Status.Conditions) != 0 && gw.Status.Conditions[0].Reason != "Pending" {
		t.Errorf("the other class's Gateway got status %+v", gw.Status.Conditions)
	}
	if err := h.get(gatewayKey("cilium-gateway-theirs"), &corev1.Service{}); err == nil {
		t.Error("the other class's Gateway got a Service")
	}
	var c gwv1.GatewayClass
	h.must(h.get(client.ObjectKey{Name: "other"}, &c))
	if meta.FindStatusCondition(c.Status.Conditions, "Accepted") != nil && meta.FindStatusCondition(c.Status.Conditions, "Accepted").Reason != "Pending" {
		t.Errorf("the other GatewayClass got status %+v", c.Status.Conditions)
	}
}

func (h *harness) tlsSecret(ns, name string) {
	cert, err := os.ReadFile("testdata/tls.crt")
	h.must(err)
	key, err := os.ReadFile("testdata/tls.key")
	h.must(err)
	h.must(h.c.Create(h.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}))
}

// A certificate in another namespace resolves only while a ReferenceGrant
// allows it; its copy in the secrets namespace comes and goes with it
// (GW-09, GW-10).
func TestGW9_GW10_ReferenceGrantForCertificates(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11")
	h.class()
	h.tlsSecret("certs", "shared")
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium",
		Listeners: []gwv1.Listener{{Name: "https", Protocol: gwv1.HTTPSProtocolType, Port: 443, Hostname: new(gwv1.Hostname("bookinfo.cilium.rocks")),
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "shared", Namespace: new(gwv1.Namespace("certs"))}}}}},
	}}))
	h.start()
	listener := func(status, reason string) func() error {
		return func() error {
			var gw gwv1.Gateway
			h.must(h.get(gatewayKey("tls"), &gw))
			if len(gw.Status.Listeners) != 1 {
				return fmt.Errorf("listeners %+v", gw.Status.Listeners)
			}
			return wantCondition(gw.Status.Listeners[0].Conditions, "ResolvedRefs", status, reason)
		}
	}
	copyKey := client.ObjectKey{Namespace: secretsNS, Name: "certs-shared"}
	h.eventually("refused without a grant", listener("False", "RefNotPermitted"))
	if err := h.get(copyKey, &corev1.Secret{}); err == nil {
		t.Fatal("the certificate was copied without a grant")
	}
	grant := &gwv1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Name: "gateways", Namespace: "certs"}, Spec: gwv1.ReferenceGrantSpec{
		From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "Gateway", Namespace: testNS}},
		To:   []gwv1.ReferenceGrantTo{{Group: "", Kind: "Secret"}},
	}}
	h.must(h.c.Create(h.ctx, grant))
	h.eventually("resolved with the grant", listener("True", "ResolvedRefs"))
	h.eventually("the certificate copied to the secrets namespace", func() error {
		var s corev1.Secret
		if err := h.get(copyKey, &s); err != nil {
			return err
		}
		if len(s.Data[corev1.TLSPrivateKeyKey]) == 0 {
			return fmt.Errorf("copy without a key")
		}
		var cec ciliumv2.CiliumEnvoyConfig
		if err := h.get(gatewayKey("cilium-gateway-tls"), &cec); err != nil {
			return err
		}
		for _, r := range cec.Spec.Resources {
			if strings.Contains(string(r.Raw), "PRIVATE KEY") || strings.Contains(string(r.Raw), "inlineBytes") {
				return fmt.Errorf("the Envoy config holds key material: %s", r.Raw)
			}
		}
		if !strings.Contains(string(cec.Spec.Resources[0].Raw), `"name":"cilium-secrets/certs-shared"`) {
			return fmt.Errorf("the listener does not name the copy over SDS: %s", cec.Spec.Resources[0].Raw)
		}
		return nil
	})
	h.must(h.c.Delete(h.ctx, grant))
	h.eventually("refused again once the grant is gone", listener("False", "RefNotPermitted"))
	h.eventually("the copy deleted", func() error {
		if err := h.get(copyKey, &corev1.Secret{}); err == nil {
			return fmt.Errorf("the copy is still there")
		}
		return nil
	})
}

// A restart (and any pass over an unchanged world) writes nothing.
func TestRestartWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11")
	// The class takes parameters, so their status and the Service fields
	// they set (next to those the API server defaults) are compared too.
	params := &ciliumv2alpha1.CiliumGatewayClassConfig{ObjectMeta: metav1.ObjectMeta{Name: "params", Namespace: testNS},
		Spec: ciliumv2alpha1.GatewayClassConfigSpec{Service: &ciliumv2alpha1.GatewayServiceConfig{
			IPFamilyPolicy: new(corev1.IPFamilyPolicySingleStack), TrafficDistribution: new(corev1.ServiceTrafficDistributionPreferClose),
		}}}
	h.must(h.c.Create(h.ctx, params))
	t.Cleanup(func() { h.must(client.IgnoreNotFound(h.c.Delete(context.Background(), params))) })
	h.must(h.c.Create(h.ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{
		ControllerName: "io.cilium/gateway-controller",
		ParametersRef: &gwv1.ParametersReference{Group: "cilium.io", Kind: "CiliumGatewayClassConfig", Name: "params",
			Namespace: new(gwv1.Namespace(testNS))},
	}}))
	h.ingressClass()
	h.service("echo", 8080)
	// A BackendTLSPolicy and its CA, so its status is compared too.
	ca, err := os.ReadFile("testdata/tls.crt")
	h.must(err)
	h.must(h.c.Create(h.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "echo-ca", Namespace: testNS, Labels: map[string]string{"test": "restart"}},
		Data: map[string]string{"ca.crt": string(ca)}}))
	h.must(h.c.Create(h.ctx, &gwv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: testNS}, Spec: gwv1.BackendTLSPolicySpec{
		TargetRefs: []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Kind: "Service", Name: "echo"}}},
		Validation: gwv1.BackendTLSPolicyValidation{CACertificateRefs: []gwv1.LocalObjectReference{{Kind: "ConfigMap", Name: "echo-ca"}}, Hostname: "echo.example.com"},
	}}))
	h.must(h.c.Create(h.ctx, echoIngress("shop", nil)))
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium",
		Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80},
			{Name: "alt", Protocol: gwv1.HTTPProtocolType, Port: 8080}},
	}}))
	h.must(h.c.Create(h.ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: testNS}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web"}}},
		Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "echo", Port: new(gwv1.PortNumber(8080))}}}}}},
	}}))
	start := func() func() { return h.startWith(&testIngressOptions) }
	stop := start()
	// The Gateway's, the dedicated and the shared Ingress ones.
	h.eventually("configs listed for the node", func() error { return h.nodesServe(3, "n1") })
	h.ack("n1", "")
	h.eventually("route status written", func() error {
		var r gwv1.HTTPRoute
		h.must(h.get(gatewayKey("echo"), &r))
		if len(r.Status.Parents) != 1 {
			return fmt.Errorf("parents %+v", r.Status.Parents)
		}
		var pol gwv1.BackendTLSPolicy
		h.must(h.get(gatewayKey("echo"), &pol))
		if len(pol.Status.Ancestors) != 1 {
			return fmt.Errorf("policy ancestors %+v", pol.Status.Ancestors)
		}
		var gw gwv1.Gateway
		h.must(h.get(gatewayKey("web"), &gw))
		return wantCondition(gw.Status.Conditions, "Programmed", "False", "AddressNotAssigned")
	})
	versions := func() map[string]string {
		out := map[string]string{}
		for _, o := range []struct {
			key client.ObjectKey
			obj client.Object
		}{
			{gatewayKey("web"), &gwv1.Gateway{}}, {gatewayKey("echo"), &gwv1.HTTPRoute{}}, {client.ObjectKey{Name: "cilium"}, &gwv1.GatewayClass{}},
			{gatewayKey("cilium-gateway-web"), &corev1.Service{}}, {gatewayKey("cilium-gateway-web"), &discoveryv1.EndpointSlice{}},
			{gatewayKey("cilium-gateway-web"), &ciliumv2.CiliumEnvoyConfig{}}, {client.ObjectKey{Name: "n1"}, &nodesv1alpha1.L7Proxy{}},
			{gatewayKey("shop"), &networkingv1.Ingress{}}, {gatewayKey("cilium-ingress-shop"), &corev1.Service{}},
			{gatewayKey("cilium-ingress-shop"), &discoveryv1.EndpointSlice{}}, {gatewayKey("cilium-ingress-gw-test-shop"), &ciliumv2.CiliumEnvoyConfig{}},
			{gatewayKey("cilium-ingress"), &corev1.Service{}}, {gatewayKey("cilium-ingress"), &ciliumv2.CiliumEnvoyConfig{}},
			{gatewayKey("params"), &ciliumv2alpha1.CiliumGatewayClassConfig{}}, {gatewayKey("echo"), &gwv1.BackendTLSPolicy{}},
		} {
			h.must(h.get(o.key, o.obj))
			out[fmt.Sprintf("%T %s", o.obj, o.key)] = o.obj.GetResourceVersion()
		}
		return out
	}
	// Let the passes settle, then restart and compare.
	time.Sleep(2 * time.Second)
	before := versions()
	stop()
	start()
	time.Sleep(3 * time.Second)
	after := versions()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s was written after the restart (resourceVersion %s → %s)", k, v, after[k])
		}
	}
}
