package reconciler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

// Host network mode: no Service; only the selected node's proxy serves the
// Gateway, listening on the listener port itself, and the Gateway's address
// is that node's; a second Gateway wanting the same port is not served and
// says which Gateway holds it (GW-19, GW-20, GW-21).
func TestGW19_GW20_GW21_HostNetworkMode(t *testing.T) {
	h := newHarness(t)
	h.node("edge", "198.18.0.11")
	h.node("inner", "198.18.0.12")
	var edge corev1.Node
	h.must(h.get(client.ObjectKey{Name: "edge"}, &edge))
	edge.Labels = map[string]string{"role": "edge"}
	h.must(h.c.Update(h.ctx, &edge))
	h.class()
	gateway := func(name string) {
		h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 8080}},
		}}))
	}
	gateway("first")
	h.run(func(r *Reconciler) {
		r.HostNetwork = &HostNetwork{Nodes: labels.SelectorFromSet(labels.Set{"role": "edge"})}
	})

	h.eventually("only the selected node serves the Gateway, on the listener port", func() error {
		for node, want := range map[string]int{"edge": 1, "inner": 0} {
			var p nodesv1alpha1.L7Proxy
			if err := h.get(client.ObjectKey{Name: node}, &p); err != nil {
				return err
			}
			if len(p.Spec.Configs) != want || len(p.Spec.Frontends) != 0 {
				return fmt.Errorf("%s serves %v with frontends %v, want %d configs and no frontends", node, p.Spec.Configs, p.Spec.Frontends, want)
			}
		}
		var cec ciliumv2.CiliumEnvoyConfig
		if err := h.get(gatewayKey("cilium-gateway-first"), &cec); err != nil {
			return err
		}
		if !slices.ContainsFunc(cec.Spec.Resources, func(r runtime.RawExtension) bool { return strings.Contains(string(r.Raw), `"portValue":8080`) }) {
			return fmt.Errorf("no listener on port 8080 in the config")
		}
		return nil
	})
	for _, kind := range []client.Object{&corev1.Service{}} {
		if err := h.get(gatewayKey("cilium-gateway-first"), kind); !apierrors.IsNotFound(err) {
			t.Errorf("a %T exists in host network mode (%v)", kind, err)
		}
	}
	h.ack("edge", "")
	h.eventually("programmed at the selected node's address", func() error {
		var gw gwv1.Gateway
		h.must(h.get(gatewayKey("first"), &gw))
		if err := wantCondition(gw.Status.Conditions, "Programmed", "True", "Programmed"); err != nil {
			return err
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != "198.18.0.11" {
			return fmt.Errorf("addresses %+v, want the edge node's", gw.Status.Addresses)
		}
		return nil
	})
	gateway("second")
	h.eventually("the second Gateway on the same port is not served", func() error {
		var gw gwv1.Gateway
		h.must(h.get(gatewayKey("second"), &gw))
		if err := wantCondition(gw.Status.Conditions, "Programmed", "False", "Invalid"); err != nil {
			return err
		}
		if c := condition(gw.Status.Conditions, "Programmed"); !strings.Contains(c, "port 8080 is already used on the host network by Gateway gw-test/first") {
			return fmt.Errorf("Programmed says %s", c)
		}
		return nil
	})
}
