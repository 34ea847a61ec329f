package l7standin_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
)

func ingressPath(path string, kind networkingv1.PathType, svc string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: path, PathType: &kind, Backend: networkingv1.IngressBackend{
		Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}
}

// serveIngresses translates the Ingresses of in as the controller does and
// serves every load balancer's config on a new stack.
func serveIngresses(t *testing.T, in translate.Input, opts translate.IngressOptions) *stack {
	t.Helper()
	out := translate.TranslateIngresses(in, opts)
	if len(out.Problems) > 0 {
		t.Fatalf("problems: %v", out.Problems)
	}
	var configs []ir.Gateway
	for _, fe := range out.Frontends {
		configs = append(configs, fe.Config)
	}
	st := newStack(t)
	st.waitAcked(t, st.serveConfigs(t, configs...))
	return st
}

func ingress(name string, annotations map[string]string, spec networkingv1.IngressSpec) networkingv1.Ingress {
	spec.IngressClassName = new("cilium")
	return networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations}, Spec: spec}
}

// The seed's Ingress examples, translated as the controller does, served
// by the l7proxy plugin to the stand-in proxy, answer real requests as the
// seed documents. They share one load balancer, as shared Ingresses do.
func TestIngressesThroughTheStandIn(t *testing.T) {
	cert, key := demoCertificate(t)
	tlsSecret := func(ns, name string) corev1.Secret {
		return corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}
	}
	in := translate.Input{
		IngressClasses: []networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: networkingv1.IngressClassSpec{Controller: translate.IngressController}}},
		Secrets:        []corev1.Secret{tlsSecret("default", "demo-cert"), tlsSecret("kube-system", "default-cert")},
	}
	for _, name := range []string{"details", "productpage", "exactpath", "prefixpath", "prefixpath2", "implpath", "implpath2"} {
		port := echo(t, name, false)
		in.Services = append(in.Services, service(name, port, ""))
		in.EndpointSlices = append(in.EndpointSlices, slice(name, port))
	}
	tlsBackend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(echoed{Backend: "tls-backend", Path: r.URL.Path, Host: r.Host})
	}))
	tlsBackend.StartTLS()
	t.Cleanup(tlsBackend.Close)
	tlsPort := int32(tlsBackend.Listener.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	in.Services = append(in.Services, service("tls-backend", tlsPort, ""))
	in.EndpointSlices = append(in.EndpointSlices, slice("tls-backend", tlsPort))

	rule := func(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
		return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
	}
	in.Ingresses = []networkingv1.Ingress{
		// basic-ingress.yaml (no host).
		ingress("basic-ingress", nil, networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("",
			ingressPath("/details", networkingv1.PathTypePrefix, "details"), ingressPath("/", networkingv1.PathTypePrefix, "productpage"))}}),
		// The path-types example, rules out of order.
		ingress("multiple-path-types", nil, networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("pathtypes.example.com",
			ingressPath("/exact", networkingv1.PathTypeExact, "exactpath"),
			ingressPath("/", networkingv1.PathTypePrefix, "prefixpath"),
			ingressPath("/prefix", networkingv1.PathTypePrefix, "prefixpath2"),
			ingressPath("/impl", networkingv1.PathTypeImplementationSpecific, "implpath"),
			ingressPath("/impl.+", networkingv1.PathTypeImplementationSpecific, "implpath2"))}}),
		// TLS termination (HTTP redirects to HTTPS by default), and a host
		// served with the default certificate.
		ingress("tls-ingress", nil, networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"bookinfo.cilium.rocks"}, SecretName: "demo-cert"}, {Hosts: []string{"hipstershop.cilium.rocks"}}},
			Rules: []networkingv1.IngressRule{
				rule("bookinfo.cilium.rocks", ingressPath("/details", networkingv1.PathTypePrefix, "details"), ingressPath("/", networkingv1.PathTypePrefix, "productpage")),
				rule("hipstershop.cilium.rocks", ingressPath("/", networkingv1.PathTypePrefix, "details")),
			}}),
		// A host with one path: anything else is 404.
		ingress("details-only", nil, networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("details.example",
			ingressPath("/details", networkingv1.PathTypePrefix, "details"))}}),
		// SNI passthrough.
		ingress("passthrough", map[string]string{"ingress.cilium.io/tls-passthrough": "enabled"}, networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{rule("secure.example", ingressPath("/", networkingv1.PathTypePrefix, "tls-backend"))}}),
	}
	opts := translate.IngressOptions{
		DefaultMode: translate.Shared, EnforceHTTPS: true,
		DefaultCertificate: types.NamespacedName{Namespace: "kube-system", Name: "default-cert"},
		SharedService:      types.NamespacedName{Namespace: "kube-system", Name: "cilium-ingress"},
	}
	st := serveIngresses(t, in, opts)
	c := client{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", st.ports[80]),
		http: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	t.Run("IN12_IN13_IN14_IN16_PathTypes", func(t *testing.T) {
		c.t = t
		for _, tc := range []struct{ path, want string }{
			{"/", "prefixpath"}, {"/exact", "exactpath"}, {"/exact/x", "prefixpath"},
			{"/prefix", "prefixpath2"}, {"/prefix/x", "prefixpath2"}, {"/prefixx", "prefixpath"},
			{"/implementation", "implpath2"}, {"/impl", "implpath"},
		} {
			if _, e := c.do("GET", "pathtypes.example.com", tc.path, nil); e.Backend != tc.want {
				t.Errorf("%s went to %q, want %s", tc.path, e.Backend, tc.want)
			}
		}
	})
	t.Run("IN17_UndefinedPathsAre404", func(t *testing.T) {
		c.t = t
		if _, e := c.do("GET", "details.example", "/details/1", nil); e.Backend != "details" {
			t.Errorf("/details/1 went to %q", e.Backend)
		}
		if resp, _ := c.do("GET", "details.example", "/ratings", nil); resp.StatusCode != 404 {
			t.Errorf("/ratings gave %d, want 404", resp.StatusCode)
		}
	})
	t.Run("BasicIngressAndHostlessRules", func(t *testing.T) {
		c.t = t
		if _, e := c.do("GET", "203.0.113.1", "/details/1", nil); e.Backend != "details" {
			t.Errorf("/details/1 went to %q", e.Backend)
		}
		if _, e := c.do("GET", "203.0.113.1", "/", nil); e.Backend != "productpage" {
			t.Errorf("/ went to %q", e.Backend)
		}
		if resp, _ := c.do("GET", "pathtypes.example.com.invalid", "/ratings", nil); resp.StatusCode != 200 {
			// Hosts no rule names fall to the host-less rules (basic-ingress).
			t.Errorf("a host-less rule did not take an unknown host: %d", resp.StatusCode)
		}
	})
	t.Run("IN20_HTTPRedirectsToHTTPS", func(t *testing.T) {
		c.t = t
		if resp, _ := c.do("GET", "bookinfo.cilium.rocks", "/details/1", nil); resp.StatusCode != 301 || resp.Header.Get("Location") != "https://bookinfo.cilium.rocks/details/1" {
			t.Errorf("HTTP to a TLS host: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("IN18_IN19_TLSTerminationAndTheDefaultCertificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cert)
		for host, want := range map[string]string{"bookinfo.cilium.rocks": "details", "hipstershop.cilium.rocks": "details"} {
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}}}
			req, err := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/details/1", st.ports[443]), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", host, err)
			}
			var e echoed
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if e.Backend != want {
				t.Errorf("https://%s/details/1 went to %q", host, e.Backend)
			}
		}
		// Plain HTTP to the HTTPS port reaches no backend (Envoy closes
		// the connection; the stand-in's TLS stack answers 400).
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", st.ports[443])); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("plain HTTP to the HTTPS port got %d", resp.StatusCode)
			}
		}
	})
	t.Run("IN21_TLSPassthrough", func(t *testing.T) { checkPassthrough(t, st.ports[443], tlsBackend) })
	// Last, as it changes what is served: the seed's pitfall, /impl.* is
	// longer than /impl and so takes it.
	t.Run("IN15_LongerRegexTakesTheShorterPath", func(t *testing.T) {
		c.t = t
		in.Ingresses[1].Spec.Rules[0].HTTP.Paths[4].Path = "/impl.*"
		var configs []ir.Gateway
		for _, fe := range translate.TranslateIngresses(in, opts).Frontends {
			configs = append(configs, fe.Config)
		}
		st.waitAcked(t, st.serveConfigs(t, configs...))
		if _, e := c.do("GET", "pathtypes.example.com", "/impl", nil); e.Backend != "implpath2" {
			t.Errorf("/impl went to %q, want implpath2", e.Backend)
		}
	})
	t.Run("IN24_ClientAddressHeaders", func(t *testing.T) {
		c.t = t
		_, e := c.do("GET", "203.0.113.1", "/", nil)
		if first(e.Headers, "X-Forwarded-For") != "127.0.0.1" || first(e.Headers, "X-Envoy-External-Address") != "127.0.0.1" {
			t.Errorf("client address headers %v", e.Headers)
		}
	})
}
