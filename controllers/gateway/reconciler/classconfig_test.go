package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

// A CiliumGatewayClassConfig named by the class's parametersRef shapes
// every Gateway's Service: NodePort with its fields, then LoadBalancer
// with a class (a changed class recreates the Service, which the API
// server would refuse to update); a NodePort Gateway is Programmed at
// the nodes' addresses; its status says it is accepted; a bad
// type is refused at admission; without it the class is not accepted.
func TestGW12_GW13_GW14_ClassConfigShapesTheService(t *testing.T) {
	h := newHarness(t)
	h.must(client.IgnoreNotFound(h.c.DeleteAllOf(h.ctx, &ciliumv2alpha1.CiliumGatewayClassConfig{}, client.InNamespace(testNS))))
	t.Cleanup(func() {
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(context.Background(), &ciliumv2alpha1.CiliumGatewayClassConfig{}, client.InNamespace(testNS))))
	})
	h.node("n1", "198.18.0.11")

	t.Run("GW14 a bad service type is refused at admission", func(t *testing.T) {
		bad := &ciliumv2alpha1.CiliumGatewayClassConfig{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: testNS},
			Spec: ciliumv2alpha1.GatewayClassConfigSpec{Service: &ciliumv2alpha1.GatewayServiceConfig{Type: corev1.ServiceTypeClusterIP}}}
		err := h.c.Create(h.ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "spec.service.type") {
			t.Fatalf("creating a config with service.type ClusterIP: %v, want a refusal naming spec.service.type", err)
		}
	})

	cfg := &ciliumv2alpha1.CiliumGatewayClassConfig{ObjectMeta: metav1.ObjectMeta{Name: "params", Namespace: testNS},
		Spec: ciliumv2alpha1.GatewayClassConfigSpec{Service: &ciliumv2alpha1.GatewayServiceConfig{
			Type: corev1.ServiceTypeNodePort, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
			TrafficDistribution: ptr.To(corev1.ServiceTrafficDistributionPreferClose),
		}}}
	h.must(h.c.Create(h.ctx, cfg))
	h.must(h.c.Create(h.ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: gwv1.GatewayClassSpec{
		ControllerName: "io.cilium/gateway-controller",
		ParametersRef: &gwv1.ParametersReference{Group: "cilium.io", Kind: "CiliumGatewayClassConfig", Name: "params",
			Namespace: ptr.To(gwv1.Namespace(testNS))},
	}}))
	h.must(h.c.Create(h.ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: testNS}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "cilium", Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}},
	}}))
	h.start()
	svcKey := gatewayKey("cilium-gateway-gw")

	t.Run("GW12_GW13 NodePort with the config's fields", func(t *testing.T) {
		h.eventually("a NodePort Service with the config's fields", func() error {
			var svc corev1.Service
			if err := h.get(svcKey, &svc); err != nil {
				return err
			}
			s := svc.Spec
			if s.Type != corev1.ServiceTypeNodePort || s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
				!slices.Equal(s.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) || ptr.Deref(s.IPFamilyPolicy, "") != corev1.IPFamilyPolicySingleStack ||
				ptr.Deref(s.TrafficDistribution, "") != corev1.ServiceTrafficDistributionPreferClose || s.Ports[0].NodePort == 0 {
				return fmt.Errorf("service spec %+v", s)
			}
			return nil
		})
		h.eventually("the node's config listed", func() error { return h.nodesServe(1, "n1") })
		h.ack("n1", "")
		h.eventually("Programmed at the node's address", func() error {
			var gw gwv1.Gateway
			h.must(h.get(gatewayKey("gw"), &gw))
			if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != "198.18.0.11" {
				return fmt.Errorf("addresses %+v", gw.Status.Addresses)
			}
			return wantCondition(gw.Status.Conditions, "Programmed", "True", "Programmed")
		})
		h.eventually("the config and the class accepted", func() error {
			var c ciliumv2alpha1.CiliumGatewayClassConfig
			h.must(h.get(client.ObjectKeyFromObject(cfg), &c))
			if err := wantCondition(c.Status.Conditions, "Accepted", "True", "Accepted"); err != nil {
				return err
			}
			if err := wantCondition(c.Status.Conditions, "Ready", "True", "Accepted"); err != nil {
				return err
			}
			var gc gwv1.GatewayClass
			h.must(h.get(client.ObjectKey{Name: "cilium"}, &gc))
			return wantCondition(gc.Status.Conditions, "Accepted", "True", "Accepted")
		})
	})

	var firstUID types.UID
	t.Run("GW13 LoadBalancer with a class, source ranges and no node ports", func(t *testing.T) {
		h.update(cfg, func() {
			cfg.Spec.Service = &ciliumv2alpha1.GatewayServiceConfig{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("io.cilium/l2-announcer"),
				AllocateLoadBalancerNodePorts: ptr.To(false), LoadBalancerSourceRanges: []string{"198.18.0.0/16"},
			}
		})
		h.eventually("a LoadBalancer Service of class io.cilium/l2-announcer", func() error {
			var svc corev1.Service
			if err := h.get(svcKey, &svc); err != nil {
				return err
			}
			s := svc.Spec
			if s.Type != corev1.ServiceTypeLoadBalancer || ptr.Deref(s.LoadBalancerClass, "") != "io.cilium/l2-announcer" ||
				ptr.Deref(s.AllocateLoadBalancerNodePorts, true) || !slices.Equal(s.LoadBalancerSourceRanges, []string{"198.18.0.0/16"}) ||
				s.TrafficDistribution != nil || s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
				return fmt.Errorf("service spec %+v", s)
			}
			firstUID = svc.UID
			return nil
		})
	})

	t.Run("GW13 a changed load-balancer class recreates the Service", func(t *testing.T) {
		h.update(cfg, func() { cfg.Spec.Service.LoadBalancerClass = ptr.To("io.cilium/bgp-control-plane") })
		h.eventually("a new Service of class io.cilium/bgp-control-plane", func() error {
			var svc corev1.Service
			if err := h.get(svcKey, &svc); err != nil {
				return err
			}
			if svc.UID == firstUID || ptr.Deref(svc.Spec.LoadBalancerClass, "") != "io.cilium/bgp-control-plane" {
				return fmt.Errorf("service %s has class %v", svc.UID, ptr.Deref(svc.Spec.LoadBalancerClass, "(none)"))
			}
			return nil
		})
	})

	t.Run("GW14 fields not acted on are named", func(t *testing.T) {
		h.update(cfg, func() {
			cfg.Spec.Telemetry = &ciliumv2alpha1.GatewayTelemetry{AccessLogs: []ciliumv2alpha1.GatewayAccessLog{{Format: "Text", Text: "%RESPONSE_CODE%"}}}
		})
		h.eventually("Accepted naming telemetry.accessLogs", func() error {
			var c ciliumv2alpha1.CiliumGatewayClassConfig
			h.must(h.get(client.ObjectKeyFromObject(cfg), &c))
			if err := wantCondition(c.Status.Conditions, "Accepted", "True", "PartiallyApplied"); err != nil {
				return err
			}
			if msg := meta.FindStatusCondition(c.Status.Conditions, "Accepted").Message; !strings.Contains(msg, "telemetry.accessLogs") {
				return fmt.Errorf("message %q does not name telemetry.accessLogs", msg)
			}
			return nil
		})
	})

	t.Run("a missing config leaves the class and its Gateways not accepted", func(t *testing.T) {
		h.must(h.c.Delete(h.ctx, cfg))
		h.eventually("class Accepted=False InvalidParameters", func() error {
			var gc gwv1.GatewayClass
			h.must(h.get(client.ObjectKey{Name: "cilium"}, &gc))
			if err := wantCondition(gc.Status.Conditions, "Accepted", "False", "InvalidParameters"); err != nil {
				return err
			}
			var gw gwv1.Gateway
			h.must(h.get(gatewayKey("gw"), &gw))
			return wantCondition(gw.Status.Conditions, "Accepted", "False", "InvalidParameters")
		})
	})
}
