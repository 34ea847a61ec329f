package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/gateway/envoy"
	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/envoyxds"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
)

// frontend is one load balancer the controller generates, for a Gateway, a
// dedicated Ingress or the shared Ingresses: a Service and an EndpointSlice
// (both named key) that bring its traffic to every node's proxy, and a
// CiliumEnvoyConfig holding what the proxies serve.
type frontend struct {
	key         types.NamespacedName
	envoyConfig types.NamespacedName
	// owner controls the generated objects (nil: the shared Ingress load
	// balancer, which outlives any one Ingress).
	owner *metav1.OwnerReference
	// labels go on every generated object, serviceLabels on the Service
	// only (ours win over them).
	labels, serviceLabels map[string]string
	annotations           map[string]string
	config                ir.Gateway
	// warning says what of the owner's request is not followed.
	warning string
	// settings are the Service fields its owner chose.
	settings translate.ServiceSettings
	// hostNetwork serves it on the selected nodes' own addresses at its
	// listener ports: no Service, no EndpointSlice.
	hostNetwork bool
}

// ports lists the frontend's Service ports.
func (fe *frontend) ports() []int32 {
	var out []int32
	for _, p := range fe.config.Ports {
		out = append(out, p.Port)
	}
	return out
}

func (fe *frontend) meta(name types.NamespacedName) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name.Name, Namespace: name.Namespace, Labels: map[string]string{}}
	maps.Copy(m.Labels, fe.labels)
	m.Labels[nodeobjects.ManagedByLabel] = ManagedByValue
	if fe.owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{*fe.owner}
	}
	return m
}

// ours says whether an existing object is this frontend's to change.
func (fe *frontend) ours(o metav1.Object) bool {
	if fe.owner != nil {
		c := metav1.GetControllerOf(o)
		return c != nil && c.UID == fe.owner.UID
	}
	return o.GetLabels()[nodeobjects.ManagedByLabel] == ManagedByValue
}

// service is the frontend's Service, each port aimed at the proxy port
// that serves it.
func (fe *frontend) service(proxyPort func(int32) (uint32, bool)) *corev1.Service {
	st := fe.settings
	svc := &corev1.Service{ObjectMeta: fe.meta(fe.key), Spec: corev1.ServiceSpec{
		Type: st.Type, LoadBalancerClass: st.LoadBalancerClass, ExternalTrafficPolicy: st.ExternalTrafficPolicy,
		IPFamilies: st.IPFamilies, IPFamilyPolicy: st.IPFamilyPolicy, AllocateLoadBalancerNodePorts: st.AllocateLoadBalancerNodePorts,
		LoadBalancerSourceRanges: st.LoadBalancerSourceRanges, TrafficDistribution: st.TrafficDistribution,
	}}
	labels := maps.Clone(fe.serviceLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, svc.Labels)
	svc.Labels = labels
	if len(fe.annotations) > 0 {
		svc.Annotations = maps.Clone(fe.annotations)
	}
	for _, port := range fe.ports() {
		pp, _ := proxyPort(port)
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: fmt.Sprintf("port-%d", port), Protocol: corev1.ProtocolTCP, Port: port,
			TargetPort: intstr.FromInt32(int32(pp)), //nolint:gosec // a port number
			NodePort:   st.NodePorts[port],
		})
	}
	return svc
}

// mustRecreate says whether cur can only become want by being deleted and
// created again: the API server keeps a LoadBalancer Service's class and
// its primary IP family for its life.
func mustRecreate(cur, want *corev1.Service) bool {
	lb := corev1.ServiceTypeLoadBalancer
	if cur.Spec.Type == lb && want.Spec.Type == lb && !ptr.Equal(cur.Spec.LoadBalancerClass, want.Spec.LoadBalancerClass) {
		return true
	}
	return len(want.Spec.IPFamilies) > 0 && len(cur.Spec.IPFamilies) > 0 && want.Spec.IPFamilies[0] != cur.Spec.IPFamilies[0]
}

// applyService returns cur changed to want where the controller owns the
// fields, keeping what the API server filled in (cluster IPs, node ports
// and IP families nobody asked for), or nil when nothing differs.
func applyService(cur, want *corev1.Service) *corev1.Service {
	next := cur.DeepCopy()
	next.Labels, next.Annotations, next.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
	next.Spec.Type = want.Spec.Type
	next.Spec.ExternalTrafficPolicy = orCurrent(want.Spec.ExternalTrafficPolicy, cur.Spec.ExternalTrafficPolicy)
	next.Spec.LoadBalancerClass = want.Spec.LoadBalancerClass
	next.Spec.LoadBalancerSourceRanges = want.Spec.LoadBalancerSourceRanges
	next.Spec.TrafficDistribution = want.Spec.TrafficDistribution
	if len(want.Spec.IPFamilies) > 0 {
		next.Spec.IPFamilies = want.Spec.IPFamilies
	}
	if want.Spec.IPFamilyPolicy != nil {
		next.Spec.IPFamilyPolicy = want.Spec.IPFamilyPolicy
	}
	// The API server defaults allocateLoadBalancerNodePorts to true on
	// LoadBalancer Services and refuses it on others.
	next.Spec.AllocateLoadBalancerNodePorts = nil
	if want.Spec.Type == corev1.ServiceTypeLoadBalancer {
		next.Spec.AllocateLoadBalancerNodePorts = cmp.Or(want.Spec.AllocateLoadBalancerNodePorts, ptr.To(true))
	}
	ports := slices.Clone(want.Spec.Ports)
	for i := range ports {
		if j := slices.IndexFunc(cur.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == ports[i].Port }); j >= 0 && ports[i].NodePort == 0 {
			ports[i].NodePort = cur.Spec.Ports[j].NodePort
		}
	}
	next.Spec.Ports = ports
	if maps.Equal(cur.Labels, next.Labels) && maps.Equal(cur.Annotations, next.Annotations) &&
		reflect.DeepEqual(cur.OwnerReferences, next.OwnerReferences) && equality.Semantic.DeepEqual(cur.Spec, next.Spec) {
		return nil
	}
	return next
}

// orCurrent is want unless it is empty (the API server's default stays).
func orCurrent[T comparable](want, cur T) T {
	var zero T
	if want == zero {
		return cur
	}
	return want
}

// endpointSlice backs the frontend's Service with every node's proxy: a
// connection to the Service reaches some node's proxy at the port it
// listens on for that Service port.
func (fe *frontend) endpointSlice(svc *corev1.Service, nodes []corev1.Node) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: fe.meta(fe.key), AddressType: discoveryv1.AddressTypeIPv4}
	es.Labels[discoveryv1.LabelServiceName] = svc.Name
	es.Labels[discoveryv1.LabelManagedBy] = endpointSliceManagedBy
	for _, p := range svc.Spec.Ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: new(p.Name), Protocol: new(corev1.ProtocolTCP), Port: new(p.TargetPort.IntVal)})
	}
	for i := range nodes {
		n := &nodes[i]
		addr := internalIPv4(n)
		if addr == "" {
			continue
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{addr}, NodeName: new(n.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
		})
	}
	slices.SortFunc(es.Endpoints, func(a, b discoveryv1.Endpoint) int { return strings.Compare(a.Addresses[0], b.Addresses[0]) })
	return es
}

func sameEndpointSlice(a, b *discoveryv1.EndpointSlice) bool {
	return maps.Equal(a.Labels, b.Labels) && reflect.DeepEqual(a.OwnerReferences, b.OwnerReferences) &&
		a.AddressType == b.AddressType && reflect.DeepEqual(a.Ports, b.Ports) && reflect.DeepEqual(a.Endpoints, b.Endpoints)
}

// envoyConfigObject holds the frontend's xDS resources (secrets excepted:
// those travel as Secrets in the secrets namespace).
func (fe *frontend) envoyConfigObject(res envoy.Resources) (*ciliumv2.CiliumEnvoyConfig, error) {
	raw, err := res.Raw()
	if err != nil {
		return nil, err
	}
	cec := &ciliumv2.CiliumEnvoyConfig{ObjectMeta: fe.meta(fe.envoyConfig)}
	cec.Spec.Resources = raw
	return cec, nil
}

// current is what exists of a frontend's objects.
type current struct {
	service     *corev1.Service
	slice       *discoveryv1.EndpointSlice
	envoyConfig *ciliumv2.CiliumEnvoyConfig
}

// writeFrontend adds the writes of one frontend's Service, EndpointSlice
// and CiliumEnvoyConfig and notes the Secrets it needs. It returns what
// went wrong, for the owner's status (err nil: all as wanted).
func (r *Reconciler) writeFrontend(p *passes.Pass, fe *frontend, ports map[servicePort]int32, portErr error, cur current,
	nodes []corev1.Node, wantSecrets map[string]*corev1.Secret) *builtGateway {
	b := &builtGateway{warning: fe.warning}
	if portErr != nil {
		b.err = portErr
		return b
	}
	proxyPort := func(port int32) (uint32, bool) {
		pp, ok := ports[servicePort{fe.key, port}]
		return uint32(pp), ok //nolint:gosec // a port number
	}
	res, err := envoy.Build(fe.config, envoy.Options{
		ProxyPort: proxyPort, BindAddress: "0.0.0.0",
		SecretName: func(s string) string {
			ns, name := cutKey(s)
			return envoyxds.SecretName(r.SecretsNamespace, SecretCopyName(ns, name))
		},
	})
	if err != nil {
		// Keep serving what was last built: the proxies still have it.
		b.err = fmt.Errorf("the generated Envoy configuration is invalid (a Plexus bug; please report it): %w", err)
		return b
	}
	for _, s := range fe.config.Secrets {
		ns, name := cutKey(s.Name)
		c := desiredSecretCopy(r.SecretsNamespace, ns, name, s.Certificate, s.Key)
		wantSecrets[c.Name] = c
	}
	if fe.hostNetwork {
		// Objects of a load-balanced past go; nothing replaces them.
		if cur.service != nil && fe.ours(cur.service) {
			p.Write(remove(r.Client, cur.service))
		}
		if cur.slice != nil && fe.ours(cur.slice) {
			p.Write(remove(r.Client, cur.slice))
		}
		r.writeEnvoyConfig(p, fe, res, cur, b)
		return b
	}
	svc := fe.service(proxyPort)
	switch {
	case cur.service == nil:
		p.Write(create(r.Client, svc))
	case !fe.ours(cur.service):
		b.err = fmt.Errorf("Service %s exists and is not generated for this object: rename or delete it", fe.key)
		return b
	case mustRecreate(cur.service, svc):
		// The next pass creates it anew (LB-IPAM may pick another address).
		p.Write(remove(r.Client, cur.service))
	default:
		if next := applyService(cur.service, svc); next != nil {
			p.Write(update(r.Client, next))
		}
	}
	es := fe.endpointSlice(svc, nodes)
	switch {
	case cur.slice == nil:
		p.Write(create(r.Client, es))
	case !sameEndpointSlice(cur.slice, es):
		next := cur.slice.DeepCopy()
		next.Labels, next.OwnerReferences, next.AddressType, next.Ports, next.Endpoints = es.Labels, es.OwnerReferences, es.AddressType, es.Ports, es.Endpoints
		p.Write(update(r.Client, next))
	}
	r.writeEnvoyConfig(p, fe, res, cur, b)
	return b
}

// writeEnvoyConfig adds the write of a frontend's CiliumEnvoyConfig when it
// is missing or differs, noting trouble in b.
func (r *Reconciler) writeEnvoyConfig(p *passes.Pass, fe *frontend, res envoy.Resources, cur current, b *builtGateway) {
	cec, err := fe.envoyConfigObject(res)
	if err != nil {
		b.err = err
		return
	}
	switch {
	case cur.envoyConfig == nil:
		p.Write(create(r.Client, cec))
		b.pending = true
	case !fe.ours(cur.envoyConfig):
		b.err = fmt.Errorf("CiliumEnvoyConfig %s exists and is not generated for this object: rename or delete it", fe.envoyConfig)
	case !sameResources(cur.envoyConfig.Spec.Resources, cec.Spec.Resources) || cur.envoyConfig.Spec.NodeSelector != nil ||
		!maps.Equal(cur.envoyConfig.Labels, cec.Labels) || !reflect.DeepEqual(cur.envoyConfig.OwnerReferences, cec.OwnerReferences):
		next := cur.envoyConfig.DeepCopy()
		next.Labels, next.OwnerReferences, next.Spec = cec.Labels, cec.OwnerReferences, cec.Spec
		p.Write(update(r.Client, next))
		b.pending = true
	}
}

// staleIngressObjects deletes what this controller generated for Ingresses
// that no frontend wants any more (an Ingress that went shared, changed
// class or is gone).
func staleIngressObjects[T any, P interface {
	*T
	client.Object
}](p *passes.Pass, c client.Client, items []T, want map[types.NamespacedName]bool) {
	for i := range items {
		o := P(&items[i])
		l := o.GetLabels()
		if l[nodeobjects.ManagedByLabel] == ManagedByValue && l[IngressLabel] == "true" && !want[keyOf(o)] {
			p.Write(remove(c, o))
		}
	}
}
