package l7standin_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/envoy"
	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/controllers/gateway/reconciler"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/envoyxds"
	"github.com/plexus-net/plexus/nodeplugins/l7proxy"
	"github.com/plexus-net/plexus/test/l7standin"
	"github.com/plexus-net/plexus/test/lab/pki"
)

// echo is a backend that answers with what it received.
type echoed struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Proto   int                 `json:"proto"`
	SNI     string              `json:"sni,omitempty"`
	Headers map[string][]string `json:"headers"`
}

func echo(t testing.TB, name string, h2c bool) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Header-Remove", "gone?")
		w.Header().Set("X-Header-Set", "original")
		if v := r.Header.Get("X-Echo-Server"); v != "" {
			w.Header().Set("Server", v)
		}
		_ = json.NewEncoder(w).Encode(echoed{Backend: name, Method: r.Method, Path: r.URL.Path, Host: r.Host, Proto: r.ProtoMajor, Headers: r.Header})
	})}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return int32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
}

// demoCertificate is the tests' serving certificate (for
// bookinfo.cilium.rocks and hipstershop.cilium.rocks) and its key.
func demoCertificate(t testing.TB) (cert, key []byte) {
	t.Helper()
	cert, err := os.ReadFile("../../controllers/gateway/reconciler/testdata/tls.crt")
	if err != nil {
		t.Fatal(err)
	}
	key, err = os.ReadFile("../../controllers/gateway/reconciler/testdata/tls.key")
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func freePort(t testing.TB) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
}

func service(name string, port int32, appProtocol string) corev1.Service {
	sp := corev1.ServicePort{Name: "http", Port: 80}
	if appProtocol != "" {
		sp.AppProtocol = &appProtocol
	}
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{sp}}}
}

func slice(name string, port int32) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}}},
	}
}

func backend(name string) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: new(gwv1.PortNumber(80))}}}
}

func prefix(p string) []gwv1.HTTPRouteMatch {
	return []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchPathPrefix), Value: &p}}}
}

// stack is the chain a node runs: the l7proxy plugin's xDS server and the
// stand-in proxy connected to it, with fixed proxy ports for Gateway ports
// 80 and 443.
type stack struct {
	srv   *l7proxy.Server
	proxy *l7standin.Proxy
	ports map[int32]uint32
	bytes *payloadBytes
	// builder builds snapshots as the node plugin does (keeping what it
	// decoded).
	builder l7proxy.Builder
}

func newStack(t testing.TB) *stack { t.Helper(); return newStackWith(t, false) }

// newStackWith is newStack with the stand-in speaking state-of-the-world
// ADS instead of delta xDS when sotw is set.
func newStackWith(t testing.TB, sotw bool) *stack {
	t.Helper()
	st := &stack{srv: l7proxy.NewServer("node-1", logr.Discard()), ports: map[int32]uint32{80: freePort(t), 443: freePort(t), 8443: freePort(t)}, bytes: &payloadBytes{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = st.srv.Serve(ctx, l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(st.bytes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	st.proxy = &l7standin.Proxy{NodeID: "node-1", StateOfTheWorld: sotw}
	go func() { _ = st.proxy.Run(ctx, conn) }()
	return st
}

// set translates in and serves it; it returns the snapshot's version.
func (st *stack) set(t testing.TB, in translate.Input) string {
	t.Helper()
	var configs []ir.Gateway
	for _, g := range translate.Translate(in).Gateways {
		if g.Config == nil {
			t.Fatalf("gateway %s not accepted: %+v", g.Key, g.Conditions)
		}
		configs = append(configs, *g.Config)
	}
	return st.serveConfigs(t, configs...)
}

// serveConfigs builds the configs as the controller does and serves them;
// it returns the snapshot's version.
func (st *stack) serveConfigs(t testing.TB, gws ...ir.Gateway) string {
	t.Helper()
	var configs []l7proxy.Config
	var secrets []corev1.Secret
	for _, g := range gws {
		c, s := st.envoyConfig(t, g)
		configs = append(configs, c)
		secrets = append(secrets, s...)
	}
	return st.serveBuilt(t, configs, secrets)
}

// envoyConfig is what the controller writes for one Gateway: its
// CiliumEnvoyConfig's resources and the copies of its certificates.
func (st *stack) envoyConfig(t testing.TB, g ir.Gateway) (l7proxy.Config, []corev1.Secret) {
	t.Helper()
	res, err := envoy.Build(g, envoy.Options{BindAddress: "127.0.0.1", ProxyPort: func(p int32) (uint32, bool) { return st.ports[p], true },
		SecretName: func(s string) string {
			ns, name, _ := strings.Cut(s, "/")
			return envoyxds.SecretName("cilium-secrets", ns+"-"+name)
		}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := res.Raw()
	if err != nil {
		t.Fatal(err)
	}
	ns, name, _ := strings.Cut(g.Name, "/")
	var secrets []corev1.Secret
	for _, s := range g.Secrets {
		ns, name, _ := strings.Cut(s.Name, "/")
		secrets = append(secrets, corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "cilium-secrets", Name: reconciler.SecretCopyName(ns, name)}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: s.Certificate, corev1.TLSPrivateKeyKey: s.Key}})
	}
	return l7proxy.Config{Ref: nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: ns, Name: name}, Generation: 1, Resources: raw}, secrets
}

// serveBuilt serves configs as the node plugin does (its whole snapshot
// built again) and returns the snapshot's version.
func (st *stack) serveBuilt(t testing.TB, configs []l7proxy.Config, secrets []corev1.Secret) string {
	t.Helper()
	snap, errs := st.builder.Build(configs, secrets)
	if len(errs) > 0 {
		t.Fatalf("configs refused: %v", errs)
	}
	if err := st.srv.Set(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return snap.Version
}

// waitAcked waits until the stand-in acknowledged version and applied it.
func (st *stack) waitAcked(t testing.TB, version string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st.srv.Report().Version != version {
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in did not acknowledge version %s (report %+v)", version, st.srv.Report())
		}
		time.Sleep(time.Millisecond)
	}
	for !st.proxy.Serves(version) {
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in acknowledged version %s but does not serve it", version)
		}
		time.Sleep(time.Millisecond)
	}
}

// payloadBytes counts the bytes the client received on the wire.
type payloadBytes struct{ n atomic.Int64 }

func (p *payloadBytes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (p *payloadBytes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (p *payloadBytes) HandleConn(context.Context, stats.ConnStats)                       {}
func (p *payloadBytes) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		p.n.Add(int64(in.WireLength))
	}
}

// serve translates in, serves it through an l7proxy server and a stand-in
// proxy, and returns the proxy ports of Gateway ports 80 and 443.
func serve(t *testing.T, in translate.Input) map[int32]uint32 {
	t.Helper()
	st := newStack(t)
	st.waitAcked(t, st.set(t, in))
	return st.ports
}

type client struct {
	t    *testing.T
	http *http.Client
	base string
}

func (c client) do(method, host, path string, header map[string]string) (*http.Response, echoed) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e echoed
	_ = json.Unmarshal(body, &e)
	return resp, e
}

// The gateway controller's translation, served by the l7proxy plugin to
// the stand-in proxy, routes real requests as the Gateway API and the seed
// describe.
func TestGatewayRoutesThroughTheStandIn(t *testing.T) {
	cert, key := demoCertificate(t)
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{GatewayClassName: "cilium", Listeners: []gwv1.Listener{
			{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80},
			{Name: "https", Protocol: gwv1.HTTPSProtocolType, Port: 443, Hostname: new(gwv1.Hostname("bookinfo.cilium.rocks")),
				TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "demo-cert"}}}},
			{Name: "passthrough", Protocol: gwv1.TLSProtocolType, Port: 8443, TLS: &gwv1.ListenerTLSConfig{Mode: new(gwv1.TLSModePassthrough)}},
		}}}},
		Secrets: []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "demo-cert", Namespace: "default"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}},
	}
	for _, b := range []struct {
		name string
		h2c  bool
	}{{"details", false}, {"productpage", false}, {"echo-1", false}, {"echo-2", false}, {"grpc-ish", true}} {
		port := echo(t, b.name, b.h2c)
		app := ""
		if b.h2c {
			app = "kubernetes.io/h2c"
		}
		in.Services = append(in.Services, service(b.name, port, app))
		in.EndpointSlices = append(in.EndpointSlices, slice(b.name, port))
	}
	route := func(name string, hostnames []gwv1.Hostname, rules ...gwv1.HTTPRouteRule) gwv1.HTTPRoute {
		return gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}}, Hostnames: hostnames, Rules: rules}}
	}
	in.HTTPRoutes = []gwv1.HTTPRoute{
		route("bookinfo", []gwv1.Hostname{"bookinfo.cilium.rocks"},
			gwv1.HTTPRouteRule{Matches: prefix("/details"), BackendRefs: []gwv1.HTTPBackendRef{backend("details")}},
			gwv1.HTTPRouteRule{Matches: prefix("/"), BackendRefs: []gwv1.HTTPBackendRef{backend("productpage")}}),
		route("matches", []gwv1.Hostname{"match.example"},
			gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{{Name: "X-Version", Value: "2"}}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-2")}},
			gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{QueryParams: []gwv1.HTTPQueryParamMatch{{Name: "debug", Value: "1"}}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-2")}},
			gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Method: new(gwv1.HTTPMethodPost)}}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-2")}},
			gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchExact), Value: new("/exact")}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-2")}},
			gwv1.HTTPRouteRule{Matches: prefix("/foo/bar"), BackendRefs: []gwv1.HTTPBackendRef{backend("echo-2")}},
			gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}}),
		route("headers", []gwv1.Hostname{"headers.example"},
			gwv1.HTTPRouteRule{Matches: prefix("/add"), Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "My-Header-Name", Value: "my-header-value"}}}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}},
			gwv1.HTTPRouteRule{Matches: prefix("/remove-a-request-header"), Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Remove: []string{"x-request-id"}}}}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}},
			gwv1.HTTPRouteRule{Matches: prefix("/edit-a-request-header"), Filters: []gwv1.HTTPRouteFilter{
				{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Request-Id", Value: "edited"}}}},
				{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{
					Add: []gwv1.HTTPHeader{{Name: "X-Header-Add", Value: "added"}}, Set: []gwv1.HTTPHeader{{Name: "X-Header-Set", Value: "set"}}, Remove: []string{"X-Header-Remove"}}},
			}, BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}}),
		route("redirects", []gwv1.Hostname{"redirect.example"},
			gwv1.HTTPRouteRule{Matches: prefix("/https"), Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect,
				RequestRedirect: &gwv1.HTTPRequestRedirectFilter{Scheme: new("https"), StatusCode: new(301)}}}},
			gwv1.HTTPRouteRule{Matches: prefix("/old"), Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect,
				RequestRedirect: &gwv1.HTTPRequestRedirectFilter{Hostname: new(gwv1.PreciseHostname("new.example")), Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: new("/new")}}}}},
			gwv1.HTTPRouteRule{Matches: prefix("/rewrite/one"), Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterURLRewrite,
				URLRewrite: &gwv1.HTTPURLRewriteFilter{Hostname: new(gwv1.PreciseHostname("one.example")), Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: new("/one")}}}},
				BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}},
			gwv1.HTTPRouteRule{Matches: prefix("/strip"), Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterURLRewrite,
				URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: new("/")}}}},
				BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}}),
		route("split", []gwv1.Hostname{"split.example"},
			gwv1.HTTPRouteRule{Matches: prefix("/even"), BackendRefs: []gwv1.HTTPBackendRef{weighted("echo-1", 50), weighted("echo-2", 50)}},
			gwv1.HTTPRouteRule{Matches: prefix("/missing"), BackendRefs: []gwv1.HTTPBackendRef{backend("no-such-service")}},
			gwv1.HTTPRouteRule{Matches: prefix("/h2c"), BackendRefs: []gwv1.HTTPBackendRef{backend("grpc-ish")}}),
	}
	// A backend that terminates TLS itself, behind a TLSRoute.
	tlsBackend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(echoed{Backend: "tls-backend", Path: r.URL.Path, Host: r.Host})
	}))
	tlsBackend.StartTLS()
	t.Cleanup(tlsBackend.Close)
	tlsPort := int32(tlsBackend.Listener.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	in.Services = append(in.Services, service("tls-backend", tlsPort, ""))
	in.EndpointSlices = append(in.EndpointSlices, slice("tls-backend", tlsPort))
	in.TLSRoutes = []gwv1.TLSRoute{{ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: "default"}, Spec: gwv1.TLSRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", SectionName: new(gwv1.SectionName("passthrough"))}}},
		Hostnames:       []gwv1.Hostname{"secure.example"},
		Rules:           []gwv1.TLSRouteRule{{BackendRefs: []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{Name: "tls-backend", Port: new(gwv1.PortNumber(80))}}}}},
	}}}
	ports := serve(t, in)
	c := client{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", ports[80]),
		http: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	t.Run("GW26_GW27_PathRoutingAndUnmatchedRequests", func(t *testing.T) {
		c.t = t
		if _, e := c.do("GET", "bookinfo.cilium.rocks", "/details/1", nil); e.Backend != "details" {
			t.Errorf("/details/1 went to %q", e.Backend)
		}
		if _, e := c.do("GET", "bookinfo.cilium.rocks:80", "/", nil); e.Backend != "productpage" {
			t.Errorf("/ went to %q", e.Backend)
		}
		if resp, _ := c.do("GET", "unknown.example", "/details", nil); resp.StatusCode != 404 {
			t.Errorf("an unknown host got %d, want 404", resp.StatusCode)
		}
	})
	t.Run("GW29_HeaderQueryMethodAndPathMatches", func(t *testing.T) {
		c.t = t
		for _, tc := range []struct {
			method, path string
			header       map[string]string
			want         string
		}{
			{"GET", "/", nil, "echo-1"},
			{"GET", "/", map[string]string{"X-Version": "2"}, "echo-2"},
			{"GET", "/?debug=1", nil, "echo-2"},
			{"POST", "/", nil, "echo-2"},
			{"GET", "/exact", nil, "echo-2"},
			{"GET", "/exact/more", nil, "echo-1"},
			{"GET", "/foo/bar/baz", nil, "echo-2"},
			{"GET", "/foo/barbaz", nil, "echo-1"},
		} {
			if _, e := c.do(tc.method, "match.example", tc.path, tc.header); e.Backend != tc.want {
				t.Errorf("%s %s %v went to %q, want %q", tc.method, tc.path, tc.header, e.Backend, tc.want)
			}
		}
	})
	t.Run("GW30_GW31_GW32_GW33_HeaderModifiers", func(t *testing.T) {
		c.t = t
		if _, e := c.do("GET", "headers.example", "/add", nil); first(e.Headers, "My-Header-Name") != "my-header-value" {
			t.Errorf("added header: %v", e.Headers)
		}
		if _, e := c.do("GET", "headers.example", "/remove-a-request-header", map[string]string{"X-Request-Id": "abc"}); first(e.Headers, "X-Request-Id") != "" {
			t.Errorf("x-request-id still there: %v", e.Headers)
		}
		resp, e := c.do("GET", "headers.example", "/edit-a-request-header", nil)
		if first(e.Headers, "X-Request-Id") != "edited" {
			t.Errorf("x-request-id not edited: %v", e.Headers)
		}
		if resp.Header.Get("X-Header-Add") != "added" || resp.Header.Get("X-Header-Set") != "set" || resp.Header.Get("X-Header-Remove") != "" {
			t.Errorf("response headers %v", resp.Header)
		}
	})
	t.Run("GW34_GW35_RedirectsAndRewrites", func(t *testing.T) {
		c.t = t
		if resp, _ := c.do("GET", "redirect.example", "/https/x?q=1", nil); resp.StatusCode != 301 || resp.Header.Get("Location") != "https://redirect.example/https/x?q=1" {
			t.Errorf("scheme redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, _ := c.do("GET", "redirect.example", "/old/page", nil); resp.StatusCode != 302 || resp.Header.Get("Location") != "http://new.example/new/page" {
			t.Errorf("prefix redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if _, e := c.do("GET", "redirect.example", "/rewrite/one/two", nil); e.Path != "/one/two" || e.Host != "one.example" {
			t.Errorf("rewrite: backend saw %s %s", e.Host, e.Path)
		}
		if _, e := c.do("GET", "redirect.example", "/strip/rest", nil); e.Path != "/rest" {
			t.Errorf("rewrite to /: backend saw %s", e.Path)
		}
	})
	t.Run("GW25_GW37_WeightsAndMissingBackends", func(t *testing.T) {
		c.t = t
		counts := map[string]int{}
		for range 200 {
			_, e := c.do("GET", "split.example", "/even", nil)
			counts[e.Backend]++
		}
		if counts["echo-1"] < 70 || counts["echo-2"] < 70 {
			t.Errorf("a 50/50 split gave %v", counts)
		}
		if resp, _ := c.do("GET", "split.example", "/missing", nil); resp.StatusCode != 500 {
			t.Errorf("a missing backend gave %d, want 500", resp.StatusCode)
		}
		if _, e := c.do("GET", "split.example", "/h2c", nil); e.Proto != 2 {
			t.Errorf("an h2c backend was reached over HTTP/%d", e.Proto)
		}
	})
	t.Run("GW44_ClientAddressHeaders", func(t *testing.T) {
		c.t = t
		_, e := c.do("GET", "match.example", "/", map[string]string{"X-Forwarded-For": "203.0.113.9"})
		if first(e.Headers, "X-Forwarded-For") != "203.0.113.9,127.0.0.1" || first(e.Headers, "X-Envoy-External-Address") != "127.0.0.1" {
			t.Errorf("client address headers %v", e.Headers)
		}
	})
	t.Run("GW43_TLSPassthroughBySNI", func(t *testing.T) { checkPassthrough(t, ports[8443], tlsBackend) })
	t.Run("GW39_GW41_HTTPSWithTheGatewaysCertificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cert)
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
			RootCAs: pool, ServerName: "bookinfo.cilium.rocks", MinVersion: tls.VersionTLS12,
		}}}
		req, err := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/details/1", ports[443]), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "bookinfo.cilium.rocks"
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e echoed
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if e.Backend != "details" || resp.ProtoMajor != 2 {
			t.Errorf("HTTPS reached %q over HTTP/%d", e.Backend, resp.ProtoMajor)
		}
		untrusted := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "bookinfo.cilium.rocks", MinVersion: tls.VersionTLS12}}}
		if _, err := untrusted.Get(fmt.Sprintf("https://127.0.0.1:%d/", ports[443])); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("without the CA: %v, want a certificate error", err)
		}
	})
}

// checkPassthrough connects to the passthrough port with SNI secure.example:
// the certificate presented is the backend's own (TLS was not opened on
// the way), and an unknown name gets no backend.
func checkPassthrough(t *testing.T, port uint32, backend *httptest.Server) {
	pool := x509.NewCertPool()
	pool.AddCert(backend.Certificate())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, ServerName: "example.com", MinVersion: tls.VersionTLS12,
	}, DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := (&tls.Dialer{Config: &tls.Config{ServerName: "secure.example", MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port)) //nolint:gosec // the certificate is compared below
		if err != nil {
			return nil, err
		}
		if got := c.(*tls.Conn).ConnectionState().PeerCertificates[0]; !got.Equal(backend.Certificate()) {
			c.Close()
			return nil, fmt.Errorf("presented %s, not the backend's certificate", got.Subject)
		}
		return c, nil
	}}}
	resp, err := hc.Get("https://secure.example/through")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoed
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if e.Backend != "tls-backend" || e.Path != "/through" {
		t.Errorf("passthrough reached %+v", e)
	}
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{ServerName: "other.example", MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}) //nolint:gosec // no backend may answer at all
	if err == nil {
		c.Close()
		t.Error("a server name no TLSRoute claims reached a backend")
	}
}

func weighted(name string, w int32) gwv1.HTTPBackendRef {
	b := backend(name)
	b.Weight = &w
	return b
}

func first(h map[string][]string, k string) string {
	if vs := http.Header(h).Values(k); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// The class's CiliumGatewayClassConfig envoy.serverHeaderTransformation
// decides the Server header clients see, as Envoy's HTTP connection
// manager does: OVERWRITE (the default) always "envoy", APPEND_IF_ABSENT
// the backend's when it sent one, PASS_THROUGH only the backend's.
func TestGW13_ServerHeaderFromTheClassConfig(t *testing.T) {
	port := echo(t, "echo", false)
	for _, tc := range []struct {
		transformation string
		fromBackend    string // the backend's Server header ("" none)
		want           string // what the client sees ("" none)
	}{
		{"", "backend", "envoy"},
		{"", "", "envoy"},
		{"APPEND_IF_ABSENT", "backend", "backend"},
		{"APPEND_IF_ABSENT", "", "envoy"},
		{"PASS_THROUGH", "backend", "backend"},
		{"PASS_THROUGH", "", ""},
	} {
		t.Run(fmt.Sprintf("%s/backend=%q", cmp.Or(tc.transformation, "default"), tc.fromBackend), func(t *testing.T) {
			in := httpGateway(map[string]int32{"echo": port}, gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("echo")}})
			if tc.transformation != "" {
				in.Classes[0].Spec.ParametersRef = &gwv1.ParametersReference{Group: "cilium.io", Kind: "CiliumGatewayClassConfig", Name: "params", Namespace: new(gwv1.Namespace("default"))}
				in.ClassConfigs = append(in.ClassConfigs, ciliumv2alpha1.CiliumGatewayClassConfig{ObjectMeta: metav1.ObjectMeta{Name: "params", Namespace: "default"},
					Spec: ciliumv2alpha1.GatewayClassConfigSpec{Envoy: &ciliumv2alpha1.GatewayEnvoyConfig{
						ServerHeaderTransformation: new(ciliumv2alpha1.ServerHeaderTransformation(tc.transformation)),
					}}})
			}
			ports := serve(t, in)
			c := client{t: t, http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", ports[80])}
			header := map[string]string{}
			if tc.fromBackend != "" {
				header["X-Echo-Server"] = tc.fromBackend
			}
			resp, e := c.do("GET", "any.example", "/", header)
			if e.Backend != "echo" {
				t.Fatalf("the request did not reach the backend: %d %+v", resp.StatusCode, e)
			}
			if got := resp.Header.Values("Server"); strings.Join(got, ",") != tc.want {
				t.Errorf("Server header %q, want %q", got, tc.want)
			}
		})
	}
}

// BackendTLSPolicies make the proxy speak TLS to their Services' backends
// and verify them: with the policy's CA and hostname (sent as SNI) the
// request goes through; a certificate from another CA, a hostname the
// certificate does not carry, or a policy without a usable CA certificate
// fail with 503; subjectAltNames replace the hostname as the names
// checked.
func TestBackendTLSPolicyThroughTheStandIn(t *testing.T) {
	tlsBackend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(echoed{Backend: "tls-backend", Path: r.URL.Path, Host: r.Host, SNI: r.TLS.ServerName})
	}))
	tlsBackend.StartTLS() // httptest's certificate: self-signed, for example.com and 127.0.0.1
	t.Cleanup(tlsBackend.Close)
	port := int32(tlsBackend.Listener.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	backendCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsBackend.Certificate().Raw}))
	otherCA, err := os.ReadFile("../../controllers/gateway/reconciler/testdata/tls.crt")
	if err != nil {
		t.Fatal(err)
	}

	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
		}}},
		ConfigMaps: []corev1.ConfigMap{
			{ObjectMeta: metav1.ObjectMeta{Name: "backend-ca", Namespace: "default"}, Data: map[string]string{"ca.crt": backendCA}},
			{ObjectMeta: metav1.ObjectMeta{Name: "other-ca", Namespace: "default"}, Data: map[string]string{"ca.crt": string(otherCA)}},
		},
	}
	route := gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
	}}
	policy := func(svc, ca, hostname string, sans ...string) {
		p := gwv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: "default"}, Spec: gwv1.BackendTLSPolicySpec{
			TargetRefs: []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Kind: "Service", Name: gwv1.ObjectName(svc)}}},
			Validation: gwv1.BackendTLSPolicyValidation{
				CACertificateRefs: []gwv1.LocalObjectReference{{Kind: "ConfigMap", Name: gwv1.ObjectName(ca)}}, Hostname: gwv1.PreciseHostname(hostname),
			},
		}}
		for _, s := range sans {
			p.Spec.Validation.SubjectAltNames = append(p.Spec.Validation.SubjectAltNames, gwv1.SubjectAltName{Type: gwv1.HostnameSubjectAltNameType, Hostname: gwv1.Hostname(s)})
		}
		in.BackendTLSPolicies = append(in.BackendTLSPolicies, p)
		in.Services = append(in.Services, service(svc, port, "HTTPS"))
		in.EndpointSlices = append(in.EndpointSlices, slice(svc, port))
		route.Spec.Rules = append(route.Spec.Rules, gwv1.HTTPRouteRule{Matches: prefix("/" + svc), BackendRefs: []gwv1.HTTPBackendRef{backend(svc)}})
	}
	policy("verified", "backend-ca", "example.com")
	policy("other-ca", "other-ca", "example.com")
	policy("wrong-name", "backend-ca", "mismatch.example.net") // the certificate is for example.com and *.example.com
	policy("no-ca", "missing-ca", "example.com")
	policy("by-san", "backend-ca", "sni.example.net", "example.com")
	in.HTTPRoutes = []gwv1.HTTPRoute{route}
	ports := serve(t, in)
	c := client{t: t, http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", ports[80])}
	for _, tc := range []struct {
		path, sni string
		status    int
	}{
		{"/verified", "example.com", 200},
		{"/other-ca", "", 503},
		{"/wrong-name", "", 503},
		{"/no-ca", "", 503},
		{"/by-san", "sni.example.net", 200},
	} {
		resp, e := c.do("GET", "any.example", tc.path, nil)
		if resp.StatusCode != tc.status || (tc.status == 200 && (e.Backend != "tls-backend" || e.SNI != tc.sni)) {
			t.Errorf("GET %s: %d %+v, want %d from the TLS backend with SNI %q", tc.path, resp.StatusCode, e, tc.status, tc.sni)
		}
	}
}

// HTTPRoute retries: a backend that fails a request a given number of
// times is retried on the listed codes up to the attempts the rule allows,
// and its last answer is passed on when they run out.
func TestRetriesThroughTheStandIn(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		failures, _ := strconv.Atoi(q.Get("fail"))
		code, _ := strconv.Atoi(q.Get("code"))
		mu.Lock()
		seen[q.Get("id")]++
		n := seen[q.Get("id")]
		mu.Unlock()
		if n <= failures {
			w.WriteHeader(code)
			return
		}
		_ = json.NewEncoder(w).Encode(echoed{Backend: "flaky"})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	port := int32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	rule := func(path string, attempts int, codes ...gwv1.HTTPRouteRetryStatusCode) gwv1.HTTPRouteRule {
		return gwv1.HTTPRouteRule{Matches: prefix(path), BackendRefs: []gwv1.HTTPBackendRef{backend("flaky")},
			Retry: &gwv1.HTTPRouteRetry{Codes: codes, Attempts: &attempts}}
	}
	ports := serve(t, httpGateway(map[string]int32{"flaky": port}, rule("/500-3", 3, 500), rule("/all-2", 2, 500, 502, 503, 504)))
	c := client{t: t, http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", ports[80])}
	for i, tc := range []struct {
		path            string
		failures, code  int
		want, wantTries int
	}{
		{"/500-3", 2, 500, 200, 3},
		{"/500-3", 4, 500, 500, 4},
		{"/500-3", 2, 503, 503, 1},
		{"/all-2", 1, 502, 200, 2},
		{"/all-2", 3, 504, 504, 3},
	} {
		id := fmt.Sprint(i)
		resp, _ := c.do("GET", "any.example", fmt.Sprintf("%s?id=%s&fail=%d&code=%d", tc.path, id, tc.failures, tc.code), nil)
		mu.Lock()
		tries := seen[id]
		mu.Unlock()
		if resp.StatusCode != tc.want || tries != tc.wantTries {
			t.Errorf("%s failing %d times with %d: %d after %d tries, want %d after %d", tc.path, tc.failures, tc.code, resp.StatusCode, tries, tc.want, tc.wantTries)
		}
	}
}

// The CORS filter as Envoy's: a preflight from an allowed origin (exact,
// wildcard, any) is answered by the proxy with the policy's headers ("*"
// methods and headers echo the request's), one from another origin
// without Access-Control-Allow-Origin (never passed on); other
// requests from it reach the backend and come back with
// Access-Control-Allow-Origin (and credentials and exposed headers); a
// request from another origin gets no CORS headers.
func TestCORSThroughTheStandIn(t *testing.T) {
	port := echo(t, "echo-1", false)
	rule := func(path string, f gwv1.HTTPCORSFilter) gwv1.HTTPRouteRule {
		return gwv1.HTTPRouteRule{Matches: prefix(path), BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")},
			Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterCORS, CORS: &f}}}
	}
	ports := serve(t, httpGateway(map[string]int32{"echo-1": port},
		rule("/cors-1", gwv1.HTTPCORSFilter{
			AllowOrigins: []gwv1.CORSOrigin{"https://www.foo.com", "https://*.bar.com"}, AllowMethods: []gwv1.HTTPMethodWithWildcard{"GET", "OPTIONS"},
			AllowHeaders: []gwv1.HTTPHeaderName{"x-header-1"}, ExposeHeaders: []gwv1.HTTPHeaderName{"x-header-3"},
			AllowCredentials: new(true), MaxAge: 3600,
		}),
		rule("/any", gwv1.HTTPCORSFilter{AllowOrigins: []gwv1.CORSOrigin{"*"}, AllowMethods: []gwv1.HTTPMethodWithWildcard{"PUT"}}),
		rule("/wild", gwv1.HTTPCORSFilter{AllowOrigins: []gwv1.CORSOrigin{"*"}, AllowMethods: []gwv1.HTTPMethodWithWildcard{"*"},
			AllowHeaders: []gwv1.HTTPHeaderName{"*"}, AllowCredentials: new(true)}),
	))
	c := client{t: t, http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", ports[80])}
	preflight := func(origin, method string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
	}
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		backend            bool              // the request reaches the backend
		want               map[string]string // response headers ("" absent)
	}{
		{"preflight from an exact origin", "OPTIONS", "/cors-1", preflight("https://www.foo.com", "GET"), false, map[string]string{
			"Access-Control-Allow-Origin": "https://www.foo.com", "Access-Control-Allow-Methods": "GET, OPTIONS",
			"Access-Control-Allow-Headers": "x-header-1", "Access-Control-Max-Age": "3600", "Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers": "x-header-3",
		}},
		{"preflight from a wildcard origin", "OPTIONS", "/cors-1", preflight("https://a.b.bar.com", "GET"), false, map[string]string{
			"Access-Control-Allow-Origin": "https://a.b.bar.com",
		}},
		{"preflight from another origin, answered without Access-Control-Allow-Origin", "OPTIONS", "/cors-1", preflight("https://foobar.com", "GET"), false, map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Expose-Headers": "",
		}},
		{"simple request from an allowed origin", "GET", "/cors-1", map[string]string{"Origin": "https://www.foo.com"}, true, map[string]string{
			"Access-Control-Allow-Origin": "https://www.foo.com", "Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "x-header-3",
		}},
		{"simple request from another origin", "GET", "/cors-1", map[string]string{"Origin": "https://foobar.com"}, true, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
		{"any origin echoed, no credentials", "OPTIONS", "/any", preflight("https://foobar.com:12345", "PUT"), false, map[string]string{
			"Access-Control-Allow-Origin": "https://foobar.com:12345", "Access-Control-Allow-Methods": "PUT", "Access-Control-Allow-Credentials": "",
		}},
		{"wildcard methods and headers echo the request's", "OPTIONS", "/wild", map[string]string{
			"Origin": "https://x.example", "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "x-a, x-b",
		}, false, map[string]string{
			"Access-Control-Allow-Origin": "https://x.example", "Access-Control-Allow-Methods": "PATCH", "Access-Control-Allow-Headers": "x-a, x-b",
			"Access-Control-Allow-Credentials": "true",
		}},
	} {
		resp, e := c.do(tc.method, "any.example", tc.path, tc.header)
		if reached := e.Backend == "echo-1"; reached != tc.backend || resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, reached the backend %v, want %v", tc.name, resp.StatusCode, reached, tc.backend)
		}
		for k, v := range tc.want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %s is %q, want %q", tc.name, k, got, v)
			}
		}
	}
}

// A backendRef's own header modifiers apply to the requests (and answers)
// of that backend only: each backend sees its own Backend header.
func TestBackendHeaderModifiersThroughTheStandIn(t *testing.T) {
	p1, p2 := echo(t, "echo-1", false), echo(t, "echo-2", false)
	ref := func(name string) gwv1.HTTPBackendRef {
		b := backend(name)
		b.Weight = new(int32(1))
		b.Filters = []gwv1.HTTPRouteFilter{
			{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "Backend", Value: name}}}},
			{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "X-Via", Value: name}}}},
		}
		return b
	}
	ports := serve(t, httpGateway(map[string]int32{"echo-1": p1, "echo-2": p2}, gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("echo-1"), ref("echo-2")}}))
	c := client{t: t, http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", ports[80])}
	seen := map[string]int{}
	for range 40 {
		resp, e := c.do("GET", "any.example", "/", nil)
		if got := first(e.Headers, "Backend"); got != e.Backend || resp.Header.Get("X-Via") != e.Backend {
			t.Fatalf("backend %s saw Backend %q and answered with X-Via %q", e.Backend, got, resp.Header.Get("X-Via"))
		}
		seen[e.Backend]++
	}
	if seen["echo-1"] == 0 || seen["echo-2"] == 0 {
		t.Errorf("40 requests split %v", seen)
	}
}

// httpGateway is an Input with class cilium, Gateway gw (HTTP, port 80)
// and its HTTPRoute r of rules, and a Service with one endpoint on
// loopback for each backend port by name.
func httpGateway(backends map[string]int32, rules ...gwv1.HTTPRouteRule) translate.Input {
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
		}}},
		HTTPRoutes: []gwv1.HTTPRoute{{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}}, Rules: rules,
		}}},
	}
	for _, name := range slices.Sorted(maps.Keys(backends)) {
		in.Services = append(in.Services, service(name, backends[name], ""))
		in.EndpointSlices = append(in.EndpointSlices, slice(name, backends[name]))
	}
	return in
}

// Client certificates (spec.tls.frontend): on port 443 (the default
// validation) only clients with a certificate from the configured CA get
// through the handshake; on port 8443 (AllowInsecureFallback) everyone does.
func TestClientCertificatesThroughTheStandIn(t *testing.T) {
	cert, key := demoCertificate(t)
	clientCert := func(caName string) (*pki.CA, tls.Certificate) {
		ca, err := pki.NewCA(caName)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := ca.Issue(pki.Spec{CommonName: "client of " + caName, Client: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return ca, c
	}
	trustedCA, trusted := clientCert("clients")
	_, stranger := clientCert("strangers")
	port := echo(t, "app", false)
	validation := func(mode gwv1.FrontendValidationModeType) *gwv1.FrontendTLSValidation {
		return &gwv1.FrontendTLSValidation{Mode: mode, CACertificateRefs: []gwv1.ObjectReference{{Kind: "ConfigMap", Name: "client-ca"}}}
	}
	https := func(name string, p gwv1.PortNumber) gwv1.Listener {
		return gwv1.Listener{Name: gwv1.SectionName(name), Protocol: gwv1.HTTPSProtocolType, Port: p, Hostname: new(gwv1.Hostname("bookinfo.cilium.rocks")),
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "demo-cert"}}}}
	}
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium",
			Listeners:        []gwv1.Listener{https("https", 443), https("fallback", 8443)},
			TLS: &gwv1.GatewayTLSConfig{Frontend: &gwv1.FrontendTLSConfig{
				Default: gwv1.TLSConfig{Validation: validation(gwv1.AllowValidOnly)},
				PerPort: []gwv1.TLSPortConfig{{Port: 8443, TLS: gwv1.TLSConfig{Validation: validation(gwv1.AllowInsecureFallback)}}},
			}},
		}}},
		Secrets: []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "demo-cert", Namespace: "default"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}},
		ConfigMaps:     []corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "client-ca", Namespace: "default"}, Data: map[string]string{"ca.crt": string(trustedCA.CertPEM)}}},
		Services:       []corev1.Service{service("app", port, "")},
		EndpointSlices: []discoveryv1.EndpointSlice{slice("app", port)},
		HTTPRoutes: []gwv1.HTTPRoute{{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("app")}}},
		}}},
	}
	st := newStack(t)
	st.waitAcked(t, st.set(t, in))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert)
	get := func(gwPort int32, certs []tls.Certificate) error {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: roots, ServerName: "bookinfo.cilium.rocks", MinVersion: tls.VersionTLS12, Certificates: certs,
		}}}
		req, err := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/", st.ports[gwPort]), nil)
		if err != nil {
			return err
		}
		req.Host = "bookinfo.cilium.rocks"
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var e echoed
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Backend != "app" {
			return fmt.Errorf("answer %s from %q (%w), want the app", resp.Status, e.Backend, err)
		}
		return nil
	}
	for _, tc := range []struct {
		name  string
		port  int32
		certs []tls.Certificate
		ok    bool
	}{
		{"valid certificate", 443, []tls.Certificate{trusted}, true},
		{"certificate of another CA", 443, []tls.Certificate{stranger}, false},
		{"no certificate", 443, nil, false},
		{"fallback: valid certificate", 8443, []tls.Certificate{trusted}, true},
		{"fallback: certificate of another CA", 8443, []tls.Certificate{stranger}, true},
		{"fallback: no certificate", 8443, nil, true},
	} {
		err := get(tc.port, tc.certs)
		if tc.ok && err != nil {
			t.Errorf("%s: %v, want an answer", tc.name, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "certificate")) {
			t.Errorf("%s: %v, want the handshake refused for the certificate", tc.name, err)
		}
	}
}

// The Gateway's spec.tls.backend client certificate is presented to a
// backend that opens TLS only to clients of its CA: with it the request
// goes through; without it (another Gateway) the backend refuses the
// proxy and the client gets 503.
func TestBackendClientCertificateThroughTheStandIn(t *testing.T) {
	clientCA, err := pki.NewCA("proxies")
	if err != nil {
		t.Fatal(err)
	}
	proxyCert, err := clientCA.Issue(pki.Spec{CommonName: "gateway proxy", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AppendCertsFromPEM(clientCA.CertPEM)
	var presented atomic.Value
	tlsBackend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		_ = json.NewEncoder(w).Encode(echoed{Backend: "mutual-backend", Path: r.URL.Path})
	}))
	tlsBackend.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients, MinVersion: tls.VersionTLS12}
	tlsBackend.StartTLS()
	t.Cleanup(tlsBackend.Close)
	port := int32(tlsBackend.Listener.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	backendCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsBackend.Certificate().Raw}))

	gateway := func(name string, withCert bool) gwv1.Gateway {
		gw := gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
		}}
		if withCert {
			gw.Spec.TLS = &gwv1.GatewayTLSConfig{Backend: &gwv1.GatewayBackendTLS{ClientCertificateRef: &gwv1.SecretObjectReference{Name: "proxy-client"}}}
		}
		return gw
	}
	route := gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
		Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("mutual")}}},
	}}
	in := translate.Input{
		Classes:  []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{gateway("gw", true)},
		Secrets: []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "proxy-client", Namespace: "default"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: proxyCert.CertPEM, corev1.TLSPrivateKeyKey: proxyCert.KeyPEM}}},
		ConfigMaps: []corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "backend-ca", Namespace: "default"}, Data: map[string]string{"ca.crt": backendCA}}},
		BackendTLSPolicies: []gwv1.BackendTLSPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "mutual", Namespace: "default"}, Spec: gwv1.BackendTLSPolicySpec{
			TargetRefs: []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Kind: "Service", Name: "mutual"}}},
			Validation: gwv1.BackendTLSPolicyValidation{CACertificateRefs: []gwv1.LocalObjectReference{{Kind: "ConfigMap", Name: "backend-ca"}}, Hostname: "example.com"},
		}}},
		Services:       []corev1.Service{service("mutual", port, "")},
		EndpointSlices: []discoveryv1.EndpointSlice{slice("mutual", port)},
		HTTPRoutes:     []gwv1.HTTPRoute{route},
	}
	st := newStack(t)
	c := client{t: t, http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", st.ports[80])}
	st.waitAcked(t, st.set(t, in))
	if resp, e := c.do("GET", "any.example", "/", nil); resp.StatusCode != 200 || e.Backend != "mutual-backend" || presented.Load() != "gateway proxy" {
		t.Errorf("with the client certificate: %d from %q, presented %v; want 200 from the backend, which saw the proxy's certificate", resp.StatusCode, e.Backend, presented.Load())
	}
	in.Gateways = []gwv1.Gateway{gateway("gw", false)}
	st.waitAcked(t, st.set(t, in))
	if resp, _ := c.do("GET", "any.example", "/", nil); resp.StatusCode != 503 {
		t.Errorf("without a client certificate: %d, want 503 (the backend refuses the proxy)", resp.StatusCode)
	}
}

// HTTPS listeners that share a port answer 421 Misdirected Request when a
// connection opened for one listener's name (SNI) carries a request for a
// name that is not that listener's (HTTP/2 clients reuse connections so);
// a listener's own names without a route get 404.
func TestMisdirectedRequestsThroughTheStandIn(t *testing.T) {
	cert, key := demoCertificate(t)
	https := func(name, hostname string) gwv1.Listener {
		l := gwv1.Listener{Name: gwv1.SectionName(name), Protocol: gwv1.HTTPSProtocolType, Port: 443,
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "demo-cert"}}}}
		if hostname != "" {
			l.Hostname = new(gwv1.Hostname(hostname))
		}
		return l
	}
	route := func(listener, svc string, hostnames ...gwv1.Hostname) gwv1.HTTPRoute {
		return gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: listener, Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", SectionName: new(gwv1.SectionName(listener))}}},
			Hostnames:       hostnames,
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend(svc)}}},
		}}
	}
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{GatewayClassName: "cilium",
			Listeners: []gwv1.Listener{https("any", ""), https("second", "second.example"), https("wildcard", "*.wildcard.example"), https("fourth", "fourth.wildcard.example")}}}},
		Secrets: []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "demo-cert", Namespace: "default"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}},
		HTTPRoutes: []gwv1.HTTPRoute{route("any", "v1", "example.org"), route("second", "v2"), route("wildcard", "v3"), route("fourth", "v1")},
	}
	for _, svc := range []string{"v1", "v2", "v3"} {
		port := echo(t, svc, false)
		in.Services = append(in.Services, service(svc, port, ""))
		in.EndpointSlices = append(in.EndpointSlices, slice(svc, port))
	}
	ports := serve(t, in)
	for _, tc := range []struct {
		sni, host string
		status    int
		backend   string
	}{
		{"example.org", "example.org", 200, "v1"},
		{"example.org", "second.example", 421, ""},
		{"example.org", "third.wildcard.example", 421, ""},
		{"example.org", "unknown.example", 404, ""},
		{"second.example", "second.example", 200, "v2"},
		{"second.example", "example.org", 421, ""},
		{"third.wildcard.example", "fifth.wildcard.example", 200, "v3"},
		{"third.wildcard.example", "fourth.wildcard.example", 421, ""},
		{"third.wildcard.example", "unknown.example", 421, ""},
		{"fourth.wildcard.example", "fourth.wildcard.example", 200, "v1"},
		{"fourth.wildcard.example", "fifth.wildcard.example", 421, ""},
		{"unknown.example", "example.org", 200, "v1"},
	} {
		// The certificate is for other names: only the routing is tested.
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
			ServerName: tc.sni, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}} //nolint:gosec // routing, not trust, is under test
		c := client{t: t, http: hc, base: fmt.Sprintf("https://127.0.0.1:%d", ports[443])}
		resp, e := c.do("GET", tc.host, "/", nil)
		if resp.StatusCode != tc.status || e.Backend != tc.backend || resp.ProtoMajor != 2 {
			t.Errorf("SNI %s, Host %s: %d from %q over HTTP/%d, want %d from %q over HTTP/2", tc.sni, tc.host, resp.StatusCode, e.Backend, resp.ProtoMajor, tc.status, tc.backend)
		}
	}
}

// WebSocket: the proxy passes the HTTP/1.1 upgrade on (the controller
// turns upgrade_configs websocket on), answers with the backend's 101 and
// then carries bytes both ways; an upgrade it was not told of is refused
// with 403, as Envoy does.
func TestWebSocketThroughTheStandIn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Backend: ws\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // echo every byte
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	port := int32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
		}}},
		Services:       []corev1.Service{service("ws", port, "kubernetes.io/ws")},
		EndpointSlices: []discoveryv1.EndpointSlice{slice("ws", port)},
		HTTPRoutes: []gwv1.HTTPRoute{{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("ws")}}},
		}}},
	}
	ports := serve(t, in)
	dial := func(upgrade string) (net.Conn, *bufio.Reader, *http.Response) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[80]), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", upgrade); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c, br, resp
	}
	c, br, resp := dial("websocket")
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Backend") != "ws" {
		t.Fatalf("upgrade answered %s %v, want the backend's 101", resp.Status, resp.Header)
	}
	for _, msg := range []string{"hello", "over the same connection"} {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q (%v)", msg, got, err)
		}
	}
	if _, _, resp := dial("h2c"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an upgrade to h2c answered %s, want 403", resp.Status)
	}
}

// TLSRoute on a TLS listener in mode Terminate: the proxy opens TLS with
// the listener's certificate and forwards the plain stream; a Passthrough
// listener on the same port still forwards its names' streams unopened.
func TestTLSRouteTerminateThroughTheStandIn(t *testing.T) {
	cert, key := demoCertificate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { // a plain TCP backend: says hello, then echoes a line
				defer c.Close()
				_, _ = io.WriteString(c, "plain backend\n")
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, line)
			}()
		}
	}()
	plainPort := int32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	tlsBackend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(echoed{Backend: "tls-backend", Path: r.URL.Path, Host: r.Host})
	}))
	tlsBackend.StartTLS()
	t.Cleanup(tlsBackend.Close)
	tlsPort := int32(tlsBackend.Listener.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
	tlsRoute := func(name, listener, host, svc string) gwv1.TLSRoute {
		return gwv1.TLSRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: gwv1.TLSRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", SectionName: new(gwv1.SectionName(listener))}}},
			Hostnames:       []gwv1.Hostname{gwv1.Hostname(host)},
			Rules:           []gwv1.TLSRouteRule{{BackendRefs: []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: new(gwv1.PortNumber(80))}}}}},
		}}
	}
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{GatewayClassName: "cilium", Listeners: []gwv1.Listener{
			{Name: "terminate", Protocol: gwv1.TLSProtocolType, Port: 8443, Hostname: new(gwv1.Hostname("bookinfo.cilium.rocks")),
				TLS: &gwv1.ListenerTLSConfig{Mode: new(gwv1.TLSModeTerminate), CertificateRefs: []gwv1.SecretObjectReference{{Name: "demo-cert"}}}},
			{Name: "passthrough", Protocol: gwv1.TLSProtocolType, Port: 8443, Hostname: new(gwv1.Hostname("secure.example")),
				TLS: &gwv1.ListenerTLSConfig{Mode: new(gwv1.TLSModePassthrough)}},
		}}}},
		Secrets: []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "demo-cert", Namespace: "default"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}},
		Services:       []corev1.Service{service("plain", plainPort, ""), service("tls-backend", tlsPort, "")},
		EndpointSlices: []discoveryv1.EndpointSlice{slice("plain", plainPort), slice("tls-backend", tlsPort)},
		TLSRoutes:      []gwv1.TLSRoute{tlsRoute("terminated", "terminate", "bookinfo.cilium.rocks", "plain"), tlsRoute("passed", "passthrough", "secure.example", "tls-backend")},
	}
	ports := serve(t, in)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", ports[8443]),
		&tls.Config{RootCAs: roots, ServerName: "bookinfo.cilium.rocks", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to the terminating listener: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if hello, err := br.ReadString('\n'); err != nil || hello != "plain backend\n" {
		t.Fatalf("through the terminating listener: %q (%v), want the plain backend", hello, err)
	}
	if _, err := io.WriteString(c, "both ways\n"); err != nil {
		t.Fatal(err)
	}
	if echo, err := br.ReadString('\n'); err != nil || echo != "both ways\n" {
		t.Errorf("echo %q (%v)", echo, err)
	}
	checkPassthrough(t, ports[8443], tlsBackend)
}
