package reconciler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
)

var testIngressOptions = translate.IngressOptions{
	DefaultMode: translate.Dedicated, EnforceHTTPS: true,
	SharedService:      types.NamespacedName{Namespace: testNS, Name: "cilium-ingress"},
	AnnotationPrefixes: []string{"service.beta.kubernetes.io"},
}

func (h *harness) ingressClass() {
	h.must(h.c.Create(h.ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: networkingv1.IngressClassSpec{Controller: translate.IngressController}}))
}

func echoIngress(name string, annotations map[string]string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Annotations: annotations}, Spec: networkingv1.IngressSpec{
		IngressClassName: new("cilium"),
		DefaultBackend:   &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "echo", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
	}}
}

// setLBAddress plays LB-IPAM: the Service gets ip.
func (h *harness) setLBAddress(key client.ObjectKey, ip string) {
	h.eventually("the Service exists to get an address", func() error {
		var svc corev1.Service
		if err := h.get(key, &svc); err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		return h.c.Status().Update(h.ctx, &svc)
	})
}

func ingressIPs(ing *networkingv1.Ingress) []string {
	var out []string
	for _, i := range ing.Status.LoadBalancer.Ingress {
		out = append(out, i.IP)
	}
	return out
}

// A dedicated Ingress gets its own Service, EndpointSlice and config, owned
// by it; its address shows only once every node's proxy serves it. Moving
// it to the shared load balancer deletes the dedicated objects and gives it
// the shared address.
func TestIN1_IN4_IN5_IN7_IN29_DedicatedThenShared(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11")
	h.node("n2", "198.18.0.12")
	h.ingressClass()
	h.service("echo", 8080)
	ing := echoIngress("web", nil)
	h.must(h.c.Create(h.ctx, ing))
	other := echoIngress("nginx", nil)
	other.Spec.IngressClassName = new("nginx")
	h.must(h.c.Create(h.ctx, other))
	h.startWith(&testIngressOptions)

	dedicated := client.ObjectKey{Namespace: testNS, Name: "cilium-ingress-web"}
	cecKey := client.ObjectKey{Namespace: testNS, Name: "cilium-ingress-gw-test-web"}
	h.eventually("the dedicated Service, EndpointSlice and config, owned by the Ingress", func() error {
		var svc corev1.Service
		if err := h.get(dedicated, &svc); err != nil {
			return err
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 {
			return fmt.Errorf("Service spec is %+v", svc.Spec)
		}
		if c := metav1.GetControllerOf(&svc); c == nil || c.Kind != "Ingress" || c.Name != "web" {
			return fmt.Errorf("Service's controller is %v", c)
		}
		var es discoveryv1.EndpointSlice
		if err := h.get(dedicated, &es); err != nil {
			return err
		}
		if len(es.Endpoints) != 2 {
			return fmt.Errorf("EndpointSlice has %d endpoints", len(es.Endpoints))
		}
		var cec ciliumv2.CiliumEnvoyConfig
		if err := h.get(cecKey, &cec); err != nil {
			return err
		}
		if c := metav1.GetControllerOf(&cec); c == nil || c.Name != "web" {
			return fmt.Errorf("config's controller is %v", c)
		}
		return nil
	})
	var list corev1.ServiceList
	h.must(h.c.List(h.ctx, &list, client.InNamespace(testNS)))
	for _, s := range list.Items {
		if strings.Contains(s.Name, "nginx") {
			t.Fatalf("another class's Ingress got Service %s", s.Name)
		}
	}
	h.setLBAddress(dedicated, "198.18.100.1")
	h.eventually("both L7Proxies list the dedicated and the shared config", func() error { return h.nodesServe(2, "n1", "n2") })
	h.ack("n1", "")
	h.eventually("no address while n2 has not acknowledged", func() error {
		var got networkingv1.Ingress
		h.must(h.get(client.ObjectKey{Namespace: testNS, Name: "web"}, &got))
		if len(got.Status.LoadBalancer.Ingress) != 0 {
			return fmt.Errorf("address %v shown before every node serves it", ingressIPs(&got))
		}
		return nil
	})
	h.ack("n2", "")
	h.eventually("the Ingress shows its address", func() error {
		var got networkingv1.Ingress
		h.must(h.get(client.ObjectKey{Namespace: testNS, Name: "web"}, &got))
		if ips := ingressIPs(&got); !slices.Equal(ips, []string{"198.18.100.1"}) {
			return fmt.Errorf("status addresses %v", ips)
		}
		return nil
	})

	// Shared: the dedicated objects go, the shared address comes.
	h.setLBAddress(client.ObjectKey{Namespace: testNS, Name: "cilium-ingress"}, "198.18.100.9")
	h.must(h.get(client.ObjectKey{Namespace: testNS, Name: "web"}, ing))
	ing.Annotations = map[string]string{"ingress.cilium.io/loadbalancer-mode": "shared"}
	h.must(h.c.Update(h.ctx, ing))
	h.eventually("the dedicated Service, EndpointSlice and config are deleted", func() error {
		for _, o := range []struct {
			key client.ObjectKey
			obj client.Object
		}{{dedicated, &corev1.Service{}}, {dedicated, &discoveryv1.EndpointSlice{}}, {cecKey, &ciliumv2.CiliumEnvoyConfig{}}} {
			if err := h.get(o.key, o.obj); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T %s: %w", o.obj, o.key, err)
			}
		}
		return nil
	})
	h.eventually("the nodes serve the shared config", func() error {
		if err := h.nodesServe(1, "n1", "n2"); err != nil {
			return err
		}
		h.ack("n1", "")
		h.ack("n2", "")
		var got networkingv1.Ingress
		h.must(h.get(client.ObjectKey{Namespace: testNS, Name: "web"}, &got))
		if ips := ingressIPs(&got); !slices.Equal(ips, []string{"198.18.100.9"}) {
			return fmt.Errorf("status addresses %v", ips)
		}
		return nil
	})
}

// A dedicated Ingress's annotations shape its Service; what cannot be
// followed is reported as a Warning Event naming the annotation.
func TestIN8_IN9_IN10_IN11_ServiceAnnotationsAndEvents(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11")
	h.ingressClass()
	h.service("echo", 8080)
	h.must(h.c.Create(h.ctx, echoIngress("web", map[string]string{
		"ingress.cilium.io/service-type":                    "NodePort",
		"ingress.cilium.io/insecure-node-port":              "30080",
		"ingress.cilium.io/service-external-traffic-policy": "Local",
		"service.beta.kubernetes.io/foo":                    "bar",
		"example.com/x":                                     "kept off",
		"ingress.cilium.io/force-https":                     "maybe",
	})))
	h.must(h.c.Create(h.ctx, echoIngress("classy", map[string]string{"ingress.cilium.io/loadbalancer-class": "example.com/lb"})))
	h.startWith(&testIngressOptions)
	h.eventually("the load-balancer class is set", func() error {
		var svc corev1.Service
		if err := h.get(client.ObjectKey{Namespace: testNS, Name: "cilium-ingress-classy"}, &svc); err != nil {
			return err
		}
		if svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass != "example.com/lb" {
			return fmt.Errorf("loadBalancerClass %v", svc.Spec.LoadBalancerClass)
		}
		return nil
	})
	h.eventually("the Service follows the annotations", func() error {
		var svc corev1.Service
		if err := h.get(client.ObjectKey{Namespace: testNS, Name: "cilium-ingress-web"}, &svc); err != nil {
			return err
		}
		switch {
		case svc.Spec.Type != corev1.ServiceTypeNodePort:
			return fmt.Errorf("type %s", svc.Spec.Type)
		case svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal:
			return fmt.Errorf("externalTrafficPolicy %s", svc.Spec.ExternalTrafficPolicy)
		case len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].NodePort != 30080:
			return fmt.Errorf("ports %+v", svc.Spec.Ports)
		case svc.Annotations["service.beta.kubernetes.io/foo"] != "bar" || svc.Annotations["example.com/x"] != "":
			return fmt.Errorf("annotations %v", svc.Annotations)
		}
		return nil
	})
	h.eventually("a Warning Event names the bad annotation", func() error {
		var evs eventsv1.EventList
		h.must(h.c.List(h.ctx, &evs, client.InNamespace(testNS)))
		for _, e := range evs.Items {
			if e.Regarding.Kind == "Ingress" && e.Regarding.Name == "web" && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Note, "ingress.cilium.io/force-https") {
				return nil
			}
		}
		return fmt.Errorf("no such Event among %d", len(evs.Items))
	})
}

// nodesServe says whether each node's L7Proxy lists n configs.
func (h *harness) nodesServe(n int, nodes ...string) error {
	for _, node := range nodes {
		var p nodesv1alpha1.L7Proxy
		if err := h.get(client.ObjectKey{Name: node}, &p); err != nil {
			return err
		}
		if len(p.Spec.Configs) != n {
			return fmt.Errorf("%s lists %v, want %d configs", node, p.Spec.Configs, n)
		}
	}
	return nil
}
