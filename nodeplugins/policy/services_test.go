package policy

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

func endpoint(ip, node string, ready, serving, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(node),
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)}}
}

func slice(ns, svc string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: family, Ports: ports, Endpoints: eps,
	}
}

// Each frontend a pod can reach through kube-proxy (cluster IPs of both
// families, external IPs, load-balancer addresses) leads to the ready
// endpoints of its port, matched to the slice's port by name and
// protocol; terminating serving endpoints stand in only when none is
// ready; internalTrafficPolicy Local keeps this node's; ExternalName,
// headless and endpoint-less Services lead nowhere.
func TestServiceFrontends(t *testing.T) {
	web := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIPs: []string{"10.96.0.10", "fd00::10"}, ExternalIPs: []string{"198.18.5.1"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.18.9.9"}, {Hostname: "lb.example"}}}},
	}
	local := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "local"},
		Spec: corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.11"}, InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyLocal),
			Ports: []corev1.ServicePort{{Port: 8080}}},
	}
	draining := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "draining"},
		Spec:       corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.12"}, Ports: []corev1.ServicePort{{Port: 8080}}},
	}
	external := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.org", Ports: []corev1.ServicePort{{Port: 80}}},
	}
	empty := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "web"}, // same name, another namespace: not web's endpoints
		Spec:       corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.13"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	headless := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "headless"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	webPorts := []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}, {Name: ptr.To("dns"), Port: ptr.To[int32](5353), Protocol: ptr.To(corev1.ProtocolUDP)}}
	unnamed := []discoveryv1.EndpointPort{{Name: ptr.To(""), Port: ptr.To[int32](9000)}}
	eps := []discoveryv1.EndpointSlice{
		slice("shop", "web", discoveryv1.AddressTypeIPv4, webPorts,
			endpoint("10.0.1.5", "n1", true, true, false), endpoint("10.0.2.5", "n2", false, false, false)),
		slice("shop", "web", discoveryv1.AddressTypeIPv6, webPorts, endpoint("fd00:1::5", "n1", true, true, false)),
		slice("shop", "local", discoveryv1.AddressTypeIPv4, unnamed,
			endpoint("10.0.1.6", "n1", true, true, false), endpoint("10.0.2.6", "n2", true, true, false)),
		slice("shop", "draining", discoveryv1.AddressTypeIPv4, unnamed,
			endpoint("10.0.1.7", "n1", false, true, true), endpoint("10.0.2.7", "n2", false, false, true)),
		slice("shop", "headless", discoveryv1.AddressTypeIPv4, unnamed, endpoint("10.0.1.8", "n1", true, true, false)),
	}
	got := map[string]string{}
	for _, s := range serviceFrontends([]corev1.Service{web, local, draining, external, empty, headless}, eps, "n1") {
		got[fmt.Sprintf("%s/%d", s.Frontend, s.Proto)] = fmt.Sprint(s.Backends)
	}
	want := map[string]string{
		"10.96.0.10:80/6":   "[10.0.1.5:8080]",
		"10.96.0.10:53/17":  "[10.0.1.5:5353]",
		"[fd00::10]:80/6":   "[[fd00:1::5]:8080]",
		"[fd00::10]:53/17":  "[[fd00:1::5]:5353]",
		"198.18.5.1:80/6":   "[10.0.1.5:8080]",
		"198.18.5.1:53/17":  "[10.0.1.5:5353]",
		"198.18.9.9:80/6":   "[10.0.1.5:8080]",
		"198.18.9.9:53/17":  "[10.0.1.5:5353]",
		"10.96.0.11:8080/6": "[10.0.1.6:9000]", // Local: n1's endpoint only
		"10.96.0.12:8080/6": "[10.0.1.7:9000]", // none ready: the serving terminating one
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("frontends\n got %v\nwant %v", got, want)
	}
}

// Addresses get their identities: this node's host, the others
// remote-node, the API server's (default/kubernetes endpoints)
// kube-apiserver unless a node has the address, pods theirs.
func TestAddressIdentities(t *testing.T) {
	node := func(name, ip string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}}}
	}
	https := []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}}
	apiserver := slice("default", "kubernetes", discoveryv1.AddressTypeIPv4, https,
		endpoint("198.18.0.1", "", true, true, false), endpoint("198.18.0.12", "", true, true, false))
	lookalike := slice("other", "kubernetes", discoveryv1.AddressTypeIPv4, https, endpoint("198.18.0.99", "", true, true, false))
	got := addressIdentities(
		[]nodesv1alpha1.IdentityAddresses{{Spec: nodesv1alpha1.IdentityAddressesSpec{Identity: 5000, Addresses: []string{"10.0.1.5"}}}},
		[]corev1.Node{node("n1", "198.18.0.11"), node("n2", "198.18.0.12")},
		[]discoveryv1.EndpointSlice{apiserver, lookalike}, "n1")
	want := map[string]uint32{"198.18.0.11": 1, "198.18.0.12": 6, "198.18.0.1": 7, "10.0.1.5": 5000}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for a, id := range want {
		if got[netip.MustParseAddr(a)] != id {
			t.Errorf("%s: identity %d, want %d", a, got[netip.MustParseAddr(a)], id)
		}
	}
}
