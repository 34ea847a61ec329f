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
			hc := &http.Client{Timeout: time.Second}
			url := fmt.Sprintf("http://127.0.0.1:%d", st.ports[80])
			served := func(path string) bool {
				resp, err := hc.Get(url + path)
				if err != nil {
					return false
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}
			var took []time.Duration
			var bytes int64
			k := 0
			for b.Loop() {
				k++
				path := fmt.Sprintf("/edit-%d", k)
				before := st.bytes.n.Load()
				start := time.Now()
				st.set(b, manyRoutes(n, port, path))
				for deadline := start.Add(10 * time.Second); !served(path); time.Sleep(100 * time.Microsecond) {
					if time.Now().After(deadline) {
						b.Fatalf("%s not served after 10 s", path)
					}
				}
				took = append(took, time.Since(start))
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
