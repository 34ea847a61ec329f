package reconciler

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// A BackendTLSPolicy's status names the Gateway whose route uses its
// Service and follows its CA ConfigMap: missing, the policy is not
// accepted and the backend gets no endpoints; created, TLS to the backend
// appears in the Gateway's config; emptied, the policy falls back.
func TestBackendTLSPolicyFollowsItsConfigMap(t *testing.T) {
	h := newHarness(t)
	clean := func() {
		ctx := context.Background()
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &gwv1.BackendTLSPolicy{}, client.InNamespace(testNS))))
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(testNS), client.HasLabels{"test"})))
	}
	clean()
	t.Cleanup(clean)
	h.node("n1", "198.18.0.11")
	h.class()
	h.service("secure", 443)
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
	}}))
	h.must(h.c.Create(h.ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: testNS}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web"}}},
		Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: "secure", Port: new(gwv1.PortNumber(443))},
		}}}}},
	}}))
	policy := &gwv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: testNS}, Spec: gwv1.BackendTLSPolicySpec{
		TargetRefs: []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Kind: "Service", Name: "secure"}}},
		Validation: gwv1.BackendTLSPolicyValidation{
			CACertificateRefs: []gwv1.LocalObjectReference{{Kind: "ConfigMap", Name: "secure-ca"}}, Hostname: "secure.example.com",
		},
	}}
	h.must(h.c.Create(h.ctx, policy))
	h.start()

	policyIs := func(status, reason string) func() error {
		return func() error {
			var p gwv1.BackendTLSPolicy
			h.must(h.get(client.ObjectKeyFromObject(policy), &p))
			if len(p.Status.Ancestors) != 1 || p.Status.Ancestors[0].AncestorRef.Name != "web" || p.Status.Ancestors[0].ControllerName != "io.cilium/gateway-controller" {
				return fmt.Errorf("ancestors %+v", p.Status.Ancestors)
			}
			return wantCondition(p.Status.Ancestors[0].Conditions, "Accepted", status, reason)
		}
	}
	configHasTLS := func(want bool) func() error {
		return func() error {
			var cec ciliumv2.CiliumEnvoyConfig
			if err := h.get(gatewayKey("cilium-gateway-web"), &cec); err != nil {
				return err
			}
			var all strings.Builder
			for _, r := range cec.Spec.Resources {
				all.Write(r.Raw)
			}
			if got := strings.Contains(all.String(), "UpstreamTlsContext"); got != want {
				return fmt.Errorf("the Gateway's config originates TLS: %v, want %v", got, want)
			}
			return nil
		}
	}
	t.Run("without its ConfigMap the policy is not accepted", func(t *testing.T) {
		h.eventually("Accepted=False NoValidCACertificate", policyIs("False", "NoValidCACertificate"))
		h.eventually("no TLS in the config", configHasTLS(false))
	})
	ca, err := os.ReadFile("testdata/tls.crt")
	h.must(err)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "secure-ca", Namespace: testNS, Labels: map[string]string{"test": "backend-tls"}},
		Data: map[string]string{"ca.crt": string(ca)}}
	t.Run("with it the backend is spoken to in TLS", func(t *testing.T) {
		h.must(h.c.Create(h.ctx, cm))
		h.eventually("Accepted=True", policyIs("True", "Accepted"))
		h.eventually("TLS in the config", configHasTLS(true))
	})
	t.Run("emptied, it is not usable", func(t *testing.T) {
		h.update(cm, func() { cm.Data = map[string]string{"ca.crt": ""} })
		h.eventually("Accepted=False NoValidCACertificate", policyIs("False", "NoValidCACertificate"))
		h.eventually("no TLS in the config", configHasTLS(false))
	})
}

// Only ConfigMaps that hold, or held, a CA bundle start a pass: other
// ConfigMaps' changes are dropped, and one that loses its ca.crt is still
// seen (its policy must hear of it).
func TestOnlyCAConfigMapsStartPasses(t *testing.T) {
	ca := &corev1.ConfigMap{Data: map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----"}}
	other := &corev1.ConfigMap{Data: map[string]string{"app.conf": "x"}}
	for _, tc := range []struct {
		name     string
		old, new *corev1.ConfigMap
		want     bool
	}{
		{"an unrelated ConfigMap changes", other, other, false},
		{"a CA bundle changes", ca, ca, true},
		{"a ConfigMap gains a CA bundle", other, ca, true},
		{"a CA bundle is removed", ca, other, true},
	} {
		if got := holdsCACertificates.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: passes %v, want %v", tc.name, got, tc.want)
		}
	}
	if holdsCACertificates.Create(event.CreateEvent{Object: other}) || !holdsCACertificates.Delete(event.DeleteEvent{Object: ca}) {
		t.Error("creating an unrelated ConfigMap passes, or deleting a CA bundle does not")
	}
}

// A Gateway's client certificate validation follows its CA ConfigMap: while
// it is missing the HTTPS listener is not accepted (NoValidCACertificate)
// and not served; once created the listener is served and the proxy asks
// clients for a certificate; with AllowInsecureFallback the Gateway says so.
func TestClientCertificateValidationFollowsItsConfigMap(t *testing.T) {
	h := newHarness(t)
	clean := func() {
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(context.Background(), &corev1.ConfigMap{}, client.InNamespace(testNS), client.HasLabels{"test"})))
	}
	clean()
	t.Cleanup(clean)
	h.node("n1", "198.18.0.11")
	h.class()
	h.tlsSecret(testNS, "web-cert")
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "mtls", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium",
		Listeners: []gwv1.Listener{{Name: "https", Protocol: gwv1.HTTPSProtocolType, Port: 443,
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "web-cert"}}}}},
		TLS: &gwv1.GatewayTLSConfig{Frontend: &gwv1.FrontendTLSConfig{Default: gwv1.TLSConfig{Validation: &gwv1.FrontendTLSValidation{
			CACertificateRefs: []gwv1.ObjectReference{{Kind: "ConfigMap", Name: "clients-ca"}},
		}}}},
	}}
	h.must(h.c.Create(h.ctx, gw))
	h.start()

	listenerIs := func(status, reason string) func() error {
		return func() error {
			var g gwv1.Gateway
			h.must(h.get(client.ObjectKeyFromObject(gw), &g))
			if len(g.Status.Listeners) != 1 {
				return fmt.Errorf("listeners %+v", g.Status.Listeners)
			}
			return wantCondition(g.Status.Listeners[0].Conditions, "Accepted", status, reason)
		}
	}
	asksForCertificates := func() error {
		var cec ciliumv2.CiliumEnvoyConfig
		if err := h.get(gatewayKey("cilium-gateway-mtls"), &cec); err != nil {
			return err
		}
		for _, r := range cec.Spec.Resources {
			if strings.Contains(string(r.Raw), `"requireClientCertificate":true`) {
				return nil
			}
		}
		return fmt.Errorf("no listener of the Gateway's config requires client certificates")
	}
	t.Run("without its ConfigMap the listener is not accepted", func(t *testing.T) {
		h.eventually("Accepted=False NoValidCACertificate", listenerIs("False", "NoValidCACertificate"))
	})
	ca, err := os.ReadFile("testdata/tls.crt")
	h.must(err)
	t.Run("with it the listener asks clients for certificates", func(t *testing.T) {
		h.must(h.c.Create(h.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "clients-ca", Namespace: testNS, Labels: map[string]string{"test": "client-ca"}},
			Data: map[string]string{"ca.crt": string(ca)}}))
		h.eventually("Accepted=True", listenerIs("True", "Accepted"))
		h.eventually("client certificates required", asksForCertificates)
	})
	t.Run("insecure fallback is shown on the Gateway", func(t *testing.T) {
		h.update(gw, func() { gw.Spec.TLS.Frontend.Default.Validation.Mode = gwv1.AllowInsecureFallback })
		h.eventually("InsecureFrontendValidationMode=True", func() error {
			var g gwv1.Gateway
			h.must(h.get(client.ObjectKeyFromObject(gw), &g))
			return wantCondition(g.Status.Conditions, "InsecureFrontendValidationMode", "True", "ConfigurationChanged")
		})
	})
}
