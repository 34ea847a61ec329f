package gatewaycli

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

func TestRenderShowsEachNodesAcknowledgement(t *testing.T) {
	ref := nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: "default", Name: "cilium-gateway-web"}
	proxy := func(node string, gen int64, version, errText string) nodesv1alpha1.L7Proxy {
		return nodesv1alpha1.L7Proxy{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: nodesv1alpha1.L7ProxySpec{Configs: []nodesv1alpha1.EnvoyConfigRef{ref}},
			Status: nodesv1alpha1.L7ProxyStatus{Version: version, Configs: []nodesv1alpha1.EnvoyConfigServed{{EnvoyConfigRef: ref, Generation: gen, Error: errText}}}}
	}
	v := View{
		Gateway: &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 2}, Spec: gwv1.GatewaySpec{GatewayClassName: "cilium"},
			Status: gwv1.GatewayStatus{
				Addresses: []gwv1.GatewayStatusAddress{{Value: "198.18.100.7"}},
				Conditions: []metav1.Condition{
					{Type: "Accepted", Status: "True", Reason: "Accepted"},
					{Type: "Programmed", Status: "False", Reason: "Pending", Message: "1 of 3 node proxies acknowledged generation 4 of the configuration"},
				}}},
		Config: &ciliumv2.CiliumEnvoyConfig{ObjectMeta: metav1.ObjectMeta{Name: "cilium-gateway-web", Namespace: "default", Generation: 4},
			Spec: ciliumv2.CiliumEnvoyConfigSpec{Resources: make([]runtime.RawExtension, 4)}},
		Proxies: []nodesv1alpha1.L7Proxy{
			proxy("n2", 3, "abc", ""), proxy("n1", 4, "def", ""), proxy("n3", 3, "abc", "the proxy refused it: bad route"),
			{ObjectMeta: metav1.ObjectMeta{Name: "n4"}}, // serves other configs only
		},
	}
	var b strings.Builder
	if err := Render(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Gateway:       default/web (class cilium, generation 2)",
		"Addresses:     198.18.100.7",
		"Accepted:      True\n",
		"Programmed:    False (Pending): 1 of 3 node proxies acknowledged generation 4 of the configuration",
		"Envoy config:  CiliumEnvoyConfig default/cilium-gateway-web (generation 4, 4 resources)",
		"n1    4                 def          serving",
		"n2    3                 abc          waiting (has generation 3)",
		"n3    3                 abc          not served: the proxy refused it: bad route",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "n4") {
		t.Errorf("a node that does not serve the Gateway is listed:\n%s", out)
	}
	if i, j := strings.Index(out, "n1 "), strings.Index(out, "n2 "); i > j {
		t.Errorf("nodes not in order:\n%s", out)
	}
}
