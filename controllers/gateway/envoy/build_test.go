package envoy

import (
	"strings"
	"testing"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

func proxyPorts(p int32) (uint32, bool) { return uint32(p) + 10000, true } //nolint:gosec // test ports

func httpGateway(r ir.Route) ir.Gateway {
	return ir.Gateway{
		Name:     "ns/gw",
		Ports:    []ir.Port{{Port: 80, Protocol: ir.HTTP, HTTP: []ir.VirtualHost{{Domains: []string{"*"}, Routes: []ir.Route{r}}}}},
		Clusters: []ir.Cluster{{Name: "ns/svc:80", Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 8080}}}},
	}
}

// A resource that Envoy's own constraints refuse is never returned: the
// error names it, and nothing else is returned with it.
func TestBuildRefusesInvalidResources(t *testing.T) {
	r := ir.Route{
		Name:           "bad",
		Match:          ir.Match{PathKind: ir.PathPrefix, Path: "/"},
		Backends:       []ir.WeightedBackend{{Cluster: "ns/svc:80", Weight: 1}},
		RequestHeaders: ir.HeaderEdits{Set: []ir.Header{{Name: "x-ok", Value: "line\nbreak"}}},
	}
	res, err := Build(httpGateway(r), Options{BindAddress: "0.0.0.0", ProxyPort: proxyPorts})
	if err == nil || !strings.Contains(err.Error(), "route configuration ns/gw/80") {
		t.Fatalf("Build = %v, want an error naming the route configuration", err)
	}
	if len(res.Listeners)+len(res.Routes)+len(res.Clusters) != 0 {
		t.Errorf("Build returned resources with its error: %+v", res)
	}

	r.RequestHeaders = ir.HeaderEdits{}
	res, err = Build(httpGateway(r), Options{BindAddress: "0.0.0.0", ProxyPort: proxyPorts})
	if err != nil {
		t.Fatalf("valid gateway: %v", err)
	}
	if len(res.Listeners) != 1 || len(res.Routes) != 1 || len(res.Clusters) != 1 || len(res.Endpoints) != 1 {
		t.Errorf("got %d listeners, %d routes, %d clusters, %d endpoints; want one each",
			len(res.Listeners), len(res.Routes), len(res.Clusters), len(res.Endpoints))
	}
}

func TestBuildNeedsAProxyPort(t *testing.T) {
	r := ir.Route{Name: "r", Match: ir.Match{PathKind: ir.PathPrefix, Path: "/"}, DirectStatus: 500}
	_, err := Build(httpGateway(r), Options{BindAddress: "0.0.0.0", ProxyPort: func(int32) (uint32, bool) { return 0, false }})
	if err == nil || !strings.Contains(err.Error(), "port 80: no proxy port") {
		t.Fatalf("Build = %v, want the missing proxy port named", err)
	}
}
