package reconciler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plexus-net/plexus/controllers/nodeipam/planner"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

type harness struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
}

func start(t *testing.T, cfg planner.Config) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client}
	env.RunManager(t, func(mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-nodeipam"), Config: cfg, Passes: passes.Settings{Workers: 4}}).SetupWithManager(mgr)
	}, TrimEndpointSlices)
	return h
}

func (h *harness) create(o client.Object) {
	h.t.Helper()
	if err := h.c.Create(h.ctx, o); err != nil {
		h.t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
	h.t.Cleanup(func() { _ = h.c.Delete(context.Background(), o) })
}

func (h *harness) node(name string, lbls map[string]string, addrs ...corev1.NodeAddress) *corev1.Node {
	h.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	h.create(n)
	n.Status.Addresses = addrs
	if err := h.c.Status().Update(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func internal(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

func (h *harness) service(name string, mods ...func(*corev1.Service)) *corev1.Service {
	h.t.Helper()
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(planner.Class), Ports: []corev1.ServicePort{{Port: 80}}}}
	for _, m := range mods {
		m(s)
	}
	h.create(s)
	return s
}

// expect waits until the Service shows exactly ips as ingress and the
// condition reason (ips "" and reason "": no condition at all).
func (h *harness) expect(name, ips, reason string) {
	h.t.Helper()
	testenv.Eventually(h.t, 30*time.Second, fmt.Sprintf("Service %s with [%s] %s", name, ips, reason), func() error {
		var s corev1.Service
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: name}, &s); err != nil {
			return err
		}
		var got []string
		for _, ing := range s.Status.LoadBalancer.Ingress {
			got = append(got, ing.IP)
		}
		gotReason := ""
		if c := meta.FindStatusCondition(s.Status.Conditions, ServiceConditionType); c != nil {
			gotReason = c.Reason
			if c.ObservedGeneration != s.Generation {
				return fmt.Errorf("condition of generation %d, Service at %d", c.ObservedGeneration, s.Generation)
			}
		}
		if strings.Join(got, ",") != ips || gotReason != reason {
			return fmt.Errorf("has [%s] %q", strings.Join(got, ","), gotReason)
		}
		return nil
	})
}

// I32-I36 on a real API server: node addresses as ingress, following node
// changes (a node excluded later drops out), the Local traffic policy by
// EndpointSlices, the node filter, and a Service that stops being Node
// IPAM's loses what Node IPAM wrote.
func TestI32_I34_I35_I36_NodeIPAM(t *testing.T) {
	h := start(t, planner.Config{})
	h.node("nipam-1", map[string]string{"zone": "a"}, internal("198.18.0.11"))
	n2 := h.node("nipam-2", map[string]string{"zone": "b"}, internal("198.18.0.12"))
	h.service("all")
	h.service("zone-a", func(s *corev1.Service) {
		s.Annotations = map[string]string{planner.MatchNodeLabelsAnnotation: "zone=a"}
	})
	local := h.service("local", func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	h.service("lbipam", func(s *corev1.Service) { s.Spec.LoadBalancerClass = nil })
	h.expect("all", "198.18.0.11,198.18.0.12", planner.ReasonSatisfied)
	h.expect("zone-a", "198.18.0.11", planner.ReasonSatisfied)
	h.expect("local", "", planner.ReasonNoNodes)
	h.expect("lbipam", "", "") // I38's other half: not Node IPAM's

	// A ready endpoint on nipam-2 makes it the Local Service's address.
	h.create(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: local.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.1.5"}, NodeName: ptr.To("nipam-2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}})
	h.expect("local", "198.18.0.12", planner.ReasonSatisfied)

	// I35: excluding nipam-2 takes its address away from every Service.
	n2.Labels[planner.ExcludeLabel] = ""
	if err := h.c.Update(h.ctx, n2); err != nil {
		t.Fatal(err)
	}
	h.expect("all", "198.18.0.11", planner.ReasonSatisfied)
	h.expect("local", "", planner.ReasonNoNodes)

	// Another class: Node IPAM removes its addresses and its condition.
	var s corev1.Service
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: "zone-a"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.LoadBalancerClass = nil
	if err := h.c.Update(h.ctx, &s); err != nil {
		t.Fatal(err)
	}
	h.expect("zone-a", "", "")
}

// I37: with Node IPAM as the default, class-less Services get node
// addresses too.
func TestI37_DefaultForClasslessServices(t *testing.T) {
	h := start(t, planner.Config{ServeClassless: true})
	h.node("nipam-d1", nil, internal("198.18.0.21"))
	h.service("classless", func(s *corev1.Service) { s.Spec.LoadBalancerClass = nil })
	h.expect("classless", "198.18.0.21", planner.ReasonSatisfied)
}
