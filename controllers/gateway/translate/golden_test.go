package translate_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/envoy"
	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata from the current output")

// TestGolden translates each testdata/<case>.in.yaml (Kubernetes manifests)
// and compares the status and the xDS resources with <case>.out.yaml. A
// change in what users get shows in review as a change of that file;
// `go test ./controllers/gateway/translate -run Golden -update` rewrites
// them. The proxy port of Gateway port p is p+10000 here.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			compareGolden(t, filepath.Join("testdata", name+".out.yaml"), render(t, translate.Translate(readInput(t, f))))
		})
	}
}

// compareGolden compares got with the golden file (or rewrites it with
// -update).
func compareGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", golden, d)
	}
}

func readInput(t *testing.T, path string) translate.Input {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := gwv1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	if err := ciliumv2alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decode := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer().Decode
	var in translate.Input
	for i, doc := range strings.Split(string(data), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, _, err := decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s document %d: %v", path, i, err)
		}
		switch o := obj.(type) {
		case *gwv1.GatewayClass:
			in.Classes = append(in.Classes, *o)
		case *ciliumv2alpha1.CiliumGatewayClassConfig:
			in.ClassConfigs = append(in.ClassConfigs, *o)
		case *gwv1.Gateway:
			in.Gateways = append(in.Gateways, *o)
		case *gwv1.HTTPRoute:
			in.HTTPRoutes = append(in.HTTPRoutes, *o)
		case *gwv1.GRPCRoute:
			in.GRPCRoutes = append(in.GRPCRoutes, *o)
		case *gwv1.TLSRoute:
			in.TLSRoutes = append(in.TLSRoutes, *o)
		case *gwv1.BackendTLSPolicy:
			in.BackendTLSPolicies = append(in.BackendTLSPolicies, *o)
		case *corev1.ConfigMap:
			in.ConfigMaps = append(in.ConfigMaps, *o)
		case *gwv1.ReferenceGrant:
			in.ReferenceGrants = append(in.ReferenceGrants, *o)
		case *corev1.Namespace:
			in.Namespaces = append(in.Namespaces, *o)
		case *corev1.Service:
			in.Services = append(in.Services, *o)
		case *discoveryv1.EndpointSlice:
			in.EndpointSlices = append(in.EndpointSlices, *o)
		case *corev1.Secret:
			in.Secrets = append(in.Secrets, *o)
		case *networkingv1.Ingress:
			in.Ingresses = append(in.Ingresses, *o)
		case *networkingv1.IngressClass:
			in.IngressClasses = append(in.IngressClasses, *o)
		default:
			t.Fatalf("%s document %d: unexpected %T", path, i, obj)
		}
	}
	return in
}

type goldenGateway struct {
	Name       string                `json:"name"`
	Conditions []metav1.Condition    `json:"conditions"`
	Listeners  []gwv1.ListenerStatus `json:"listeners"`
	// Service is the generated Service's settings.
	Service translate.ServiceSettings `json:"service"`
	Error   string                    `json:"error,omitempty"`
	XDS     map[string][]any          `json:"xds,omitempty"`
}

type golden struct {
	GatewayClasses map[string][]metav1.Condition       `json:"gatewayClasses,omitempty"`
	ClassConfigs   map[string][]metav1.Condition       `json:"classConfigs,omitempty"`
	Gateways       []goldenGateway                     `json:"gateways,omitempty"`
	Routes         map[string][]gwv1.RouteParentStatus `json:"routes,omitempty"`
	// BackendTLSPolicies holds each policy's status.ancestors.
	BackendTLSPolicies map[string][]gwv1.PolicyAncestorStatus `json:"backendTLSPolicies,omitempty"`
}

func render(t *testing.T, out translate.Output) string {
	t.Helper()
	g := golden{GatewayClasses: out.Classes, ClassConfigs: map[string][]metav1.Condition{}, Routes: map[string][]gwv1.RouteParentStatus{}}
	for k, v := range out.ClassConfigs {
		g.ClassConfigs[k.String()] = v
	}
	g.BackendTLSPolicies = map[string][]gwv1.PolicyAncestorStatus{}
	for k, v := range out.BackendTLSPolicies {
		g.BackendTLSPolicies[k.String()] = v
	}
	for k, v := range out.RouteParents {
		if len(v) > 0 {
			g.Routes[k.Kind+"/"+k.String()] = v
		}
	}
	for _, gw := range out.Gateways {
		gg := goldenGateway{Name: gw.Key.String(), Conditions: gw.Conditions, Listeners: gw.Listeners, Service: gw.Service}
		if gw.Config != nil {
			gg.XDS, gg.Error = xdsOf(t, *gw.Config)
		}
		g.Gateways = append(g.Gateways, gg)
	}
	return toYAML(t, g)
}

func xdsOf(t *testing.T, cfg ir.Gateway) (map[string][]any, string) {
	t.Helper()
	res, err := envoy.Build(cfg, envoy.Options{
		BindAddress: "0.0.0.0",
		ProxyPort:   func(p int32) (uint32, bool) { return uint32(p) + 10000, true }, //nolint:gosec // test ports
	})
	if err != nil {
		return nil, err.Error()
	}
	out := map[string][]any{}
	add := func(kind string, msgs ...types.Resource) {
		for _, m := range msgs {
			out[kind] = append(out[kind], toJSON(t, m))
		}
	}
	for _, r := range res.Listeners {
		add("listeners", r)
	}
	for _, r := range res.Routes {
		add("routes", r)
	}
	for _, r := range res.Clusters {
		add("clusters", r)
	}
	for _, r := range res.Endpoints {
		add("endpoints", r)
	}
	for _, r := range res.Secrets {
		add("secrets", r)
	}
	return out, ""
}

// toYAML renders v (any JSON-marshallable value) as scrubbed YAML.
func toYAML(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(scrub(tree))
	if err != nil {
		t.Fatal(err)
	}
	return string(y)
}

func toJSON(t *testing.T, m types.Resource) any {
	t.Helper()
	data, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// scrub drops what changes between runs (transition times) or only adds
// noise (inline certificates and keys).
func scrub(v any) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "lastTransitionTime")
		for k, c := range v {
			if k == "inlineBytes" {
				v[k] = "(bytes)"
				continue
			}
			if s, ok := c.(string); ok && k == "inlineString" && strings.HasPrefix(s, "-----BEGIN") {
				v[k] = "(PEM)"
				continue
			}
			v[k] = scrub(c)
		}
	case []any:
		for i := range v {
			v[i] = scrub(v[i])
		}
	}
	return v
}
