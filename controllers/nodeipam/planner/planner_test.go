package planner

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func node(name string, lbls map[string]string, addrs ...string) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	for _, a := range addrs {
		typ, ip, _ := strings.Cut(a, "=")
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: map[string]corev1.NodeAddressType{"int": corev1.NodeInternalIP, "ext": corev1.NodeExternalIP, "host": corev1.NodeHostName}[typ], Address: ip})
	}
	return n
}

func service(name string, mods ...func(*corev1.Service)) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(Class), IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func families(fs ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.IPFamilies = fs }
}

func slice(svc string, ready bool, nodes ...string) discoveryv1.EndpointSlice {
	es := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	for _, n := range nodes {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{NodeName: ptr.To(n), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}})
	}
	return es
}

func got(res map[types.NamespacedName]Result, name string) string {
	r, ok := res[types.NamespacedName{Namespace: "default", Name: name}]
	if !ok {
		return "not served"
	}
	var s []string
	for _, a := range r.Addresses {
		s = append(s, a.String())
	}
	return fmt.Sprintf("[%s] %s", strings.Join(s, ","), r.Reason)
}

var nodes = []corev1.Node{
	node("n1", map[string]string{"zone": "a"}, "int=198.18.0.11", "int=fd00:18::11", "host=n1"),
	node("n2", map[string]string{"zone": "b"}, "int=198.18.0.12", "int=fd00:18::12"),
	node("n3", map[string]string{"zone": "a"}, "int=198.18.0.13"),
}

// I32, I33: the nodes' InternalIPs of the Service's families; ExternalIPs
// instead as soon as a node has one of that family (decided per family).
func TestI32_I33_AddressesAndFamilies(t *testing.T) {
	res := Plan(Config{}, []corev1.Service{
		service("v4"),
		service("v6", families(corev1.IPv6Protocol)),
		service("dual", families(corev1.IPv6Protocol, corev1.IPv4Protocol)),
	}, nodes, nil)
	for name, want := range map[string]string{
		"v4":   "[198.18.0.11,198.18.0.12,198.18.0.13] Satisfied",
		"v6":   "[fd00:18::11,fd00:18::12] Satisfied",
		"dual": "[198.18.0.11,198.18.0.12,198.18.0.13,fd00:18::11,fd00:18::12] Satisfied",
	} {
		if g := got(res, name); g != want {
			t.Errorf("%s: %s, want %s", name, g, want)
		}
	}
	withExt := append([]corev1.Node{node("n4", nil, "int=198.18.0.14", "ext=203.0.113.4")}, nodes...)
	res = Plan(Config{}, []corev1.Service{service("dual", families(corev1.IPv4Protocol, corev1.IPv6Protocol))}, withExt, nil)
	if g := got(res, "dual"); g != "[203.0.113.4,fd00:18::11,fd00:18::12] Satisfied" {
		t.Errorf("with one IPv4 ExternalIP: %s, want it alone for IPv4 and the IPv6 InternalIPs", g)
	}
}

// I34: externalTrafficPolicy Local keeps the nodes with a ready endpoint.
func TestI34_LocalTrafficPolicy(t *testing.T) {
	local := func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }
	res := Plan(Config{}, []corev1.Service{service("web", local), service("idle", local)}, nodes,
		[]discoveryv1.EndpointSlice{slice("web", true, "n2"), slice("web", false, "n3"), slice("idle", false, "n1")})
	if g := got(res, "web"); g != "[198.18.0.12] Satisfied" {
		t.Errorf("web: %s, want only n2 (n3's endpoint is not ready)", g)
	}
	if g := got(res, "idle"); g != "[] NoNodes" {
		t.Errorf("idle: %s, want no address and NoNodes", g)
	}
}

// I35: excluded, autoscaler-doomed and deleted nodes are never used.
func TestI35_Exclusions(t *testing.T) {
	excluded := node("x1", map[string]string{ExcludeLabel: ""}, "int=198.18.0.21")
	doomed := node("x2", nil, "int=198.18.0.22")
	doomed.Spec.Taints = []corev1.Taint{{Key: ToBeDeletedTaint, Effect: corev1.TaintEffectNoSchedule}}
	deleted := node("x3", nil, "int=198.18.0.23")
	deleted.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	res := Plan(Config{}, []corev1.Service{service("web")}, append([]corev1.Node{excluded, doomed, deleted}, nodes[2]), nil)
	if g := got(res, "web"); g != "[198.18.0.13] Satisfied" {
		t.Errorf("web: %s, want only n3", g)
	}
}

// I36: the match-node-labels annotation narrows the nodes; a bad selector
// is reported, not ignored.
func TestI36_MatchNodeLabels(t *testing.T) {
	annotated := func(v string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Annotations = map[string]string{MatchNodeLabelsAnnotation: v} }
	}
	res := Plan(Config{}, []corev1.Service{service("a", annotated("zone=a")), service("none", annotated("zone=c")), service("bad", annotated("zone in (a"))}, nodes, nil)
	for name, want := range map[string]string{"a": "[198.18.0.11,198.18.0.13] Satisfied", "none": "[] NoNodes", "bad": "[] InvalidAnnotation"} {
		if g := got(res, name); g != want {
			t.Errorf("%s: %s, want %s", name, g, want)
		}
	}
	if m := res[types.NamespacedName{Namespace: "default", Name: "none"}].Message; !strings.Contains(m, "zone=c") {
		t.Errorf("NoNodes message %q does not name the selector", m)
	}
}

// I37 (and I38's other half): a class-less Service is served only when
// Node IPAM is the default; other classes and types never.
func TestI37_ServedServices(t *testing.T) {
	classless := service("classless", func(s *corev1.Service) { s.Spec.LoadBalancerClass = nil })
	other := service("other", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("io.cilium/bgp-control-plane") })
	cluster := service("cluster", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	all := []corev1.Service{classless, other, cluster, service("node")}
	for _, tc := range []struct {
		cfg  Config
		want map[string]bool
	}{
		{Config{}, map[string]bool{"node": true}},
		{Config{ServeClassless: true}, map[string]bool{"node": true, "classless": true}},
	} {
		res := Plan(tc.cfg, all, nodes, nil)
		for _, s := range all {
			if _, served := res[types.NamespacedName{Namespace: "default", Name: s.Name}]; served != tc.want[s.Name] {
				t.Errorf("%+v: %s served %v", tc.cfg, s.Name, served)
			}
		}
	}
	if a := Plan(Config{}, []corev1.Service{service("node")}, nodes, nil)[types.NamespacedName{Namespace: "default", Name: "node"}].Addresses; len(a) != 3 || a[0] != netip.MustParseAddr("198.18.0.11") {
		t.Errorf("addresses %v", a)
	}
}
