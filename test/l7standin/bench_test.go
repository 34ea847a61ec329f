package l7standin_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/nodeplugins/l7proxy"
)

// manyRoutes is one Gateway with n HTTPRoutes, route i sending /r<i> (and
// route 0 sending first) to the echo backend.
func manyRoutes(n int, port int32, first string) translate.Input {
	in := translate.Input{
		Classes: []gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{ControllerName: translate.ControllerName}}},
		Gateways: []gwv1.Gateway{{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "default"}, Spec: gwv1.GatewaySpec{GatewayClassName: "cilium",
			Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}}}}},
		Services:       []corev1.Service{service("echo-1", port, "")},
		EndpointSlices: []discoveryv1.EndpointSlice{slice("echo-1", port)},
	}
	for i := range n {
		path := fmt.Sprintf("/r%d", i)
		if i == 0 {
			path = first
		}
		in.HTTPRoutes = append(in.HTTPRoutes, gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("route-%d", i), Namespace: "default"},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
				Rules:           []gwv1.HTTPRouteRule{{Matches: prefix(path), BackendRefs: []gwv1.HTTPBackendRef{backend("echo-1")}}},
			}})
	}
	return in
}

// BenchmarkRouteEdit measures, with 1, 100 and 1,000 HTTPRoutes on one
// Gateway, the time from a route edit to the stand-in answering the new
// path: translation, the Envoy build, the node plugin's snapshot, xDS to
// the stand-in and its switch (the API server's write and watch are not
// in it). It reports the median and p99, and the xDS bytes one edit sends.
func BenchmarkRouteEdit(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			port := echo(b, "echo-1", false)
			st := newStack(b)
			st.waitAcked(b, st.set(b, manyRoutes(n, port, "/edit-0")))
			url := fmt.Sprintf("http://127.0.0.1:%d", st.ports[80])
			var took []time.Duration
			var bytes int64
			k := 0
			for b.Loop() {
				k++
				path := fmt.Sprintf("/edit-%d", k)
				before := st.bytes.n.Load()
				start := time.Now()
				st.set(b, manyRoutes(n, port, path))
				took = append(took, untilServed(b, url+path, start))
				time.Sleep(20 * time.Millisecond) // let the acknowledgements settle
				bytes += st.bytes.n.Load() - before
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(bytes)/float64(len(took)), "xDS-bytes/edit")
		})
	}
}

// BenchmarkRouteEditManyGateways measures one route edit among 10, 100
// and 1,000 Gateways of 10 HTTPRoutes each (up to 10,000 routes), over
// delta and state-of-the-world xDS: the time until the stand-in answers
// the new path and the xDS bytes the edit sends. As in a cluster, the edit
// rewrites one Gateway's config (translated and built alone here; the
// controller's pass over every Gateway is measured by bench-gateway-scale);
// the node plugin builds its whole snapshot again. Delta xDS sends only the
// edited Gateway's route configuration.
func BenchmarkRouteEditManyGateways(b *testing.B) {
	const routesPerGateway = 10
	for _, mode := range []string{"delta", "sotw"} {
		for _, gateways := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("xds=%s/gateways=%d", mode, gateways), func(b *testing.B) {
				port := echo(b, "echo-1", false)
				st := newStackWith(b, mode == "sotw")
				taken := map[uint32]bool{}
				for _, p := range st.ports {
					taken[p] = true
				}
				for g := range gateways {
					p := freePort(b)
					for taken[p] { // a port just closed can come back
						p = freePort(b)
					}
					taken[p] = true
					st.ports[int32(20000+g)] = p //nolint:gosec // small
				}
				gatewayInput := func(g int, first string) translate.Input {
					in := manyRoutes(routesPerGateway, port, first)
					gw := &in.Gateways[0]
					gw.Name = fmt.Sprintf("gw-%d", g)
					gw.Spec.Listeners[0].Port = gwv1.PortNumber(20000 + g) //nolint:gosec // small
					for i := range in.HTTPRoutes {
						in.HTTPRoutes[i].Name = fmt.Sprintf("gw-%d-%s", g, in.HTTPRoutes[i].Name)
						in.HTTPRoutes[i].Spec.ParentRefs[0].Name = gwv1.ObjectName(gw.Name)
					}
					return in
				}
				configs := make([]l7proxy.Config, gateways)
				build := func(g int, first string) {
					out := translate.Translate(gatewayInput(g, first))
					if out.Gateways[0].Config == nil {
						b.Fatalf("gateway %d not accepted: %+v", g, out.Gateways[0].Conditions)
					}
					configs[g], _ = st.envoyConfig(b, *out.Gateways[0].Config)
				}
				for g := range gateways {
					build(g, "/edit-0")
				}
				st.waitAcked(b, st.serveBuilt(b, configs, nil))
				url := fmt.Sprintf("http://127.0.0.1:%d", st.ports[20000])
				var took []time.Duration
				var bytes int64
				k := 0
				for b.Loop() {
					k++
					path := fmt.Sprintf("/edit-%d", k)
					before := st.bytes.n.Load()
					start := time.Now()
					build(0, path)
					version := st.serveBuilt(b, configs, nil)
					took = append(took, untilServed(b, url+path, start))
					st.waitAcked(b, version) // every response of the edit counted
					bytes += st.bytes.n.Load() - before
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(bytes)/float64(len(took)), "xDS-bytes/edit")
			})
		}
	}
}

// untilServed polls url (every 0.1 ms) until it answers 200 and returns
// the time since start.
func untilServed(b *testing.B, url string, start time.Time) time.Duration {
	b.Helper()
	hc := &http.Client{Timeout: time.Second}
	for deadline := start.Add(30 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		if resp, err := hc.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start)
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not served after 30 s", url)
		}
	}
}

// BenchmarkThroughput compares requests through the stand-in with requests
// straight to the backend, to show what the test fixture adds to the lab's
// figures (it is not Envoy).
func BenchmarkThroughput(b *testing.B) {
	port := echo(b, "echo-1", false)
	st := newStack(b)
	st.waitAcked(b, st.set(b, manyRoutes(1, port, "/")))
	for _, target := range []struct{ name, url string }{
		{"direct", fmt.Sprintf("http://127.0.0.1:%d/", port)},
		{"stand-in", fmt.Sprintf("http://127.0.0.1:%d/", st.ports[80])},
	} {
		b.Run(target.name, func(b *testing.B) {
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				resp, err := hc.Get(target.url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
