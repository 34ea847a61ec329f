package reconciler

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/gateway/envoy"
	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/internal/nodeobjects"
)

// Labels and annotations on what the controller generates.
const (
	ManagedByValue = "plexus-gateway"
	// OwningGatewayLabel names the Gateway a generated object serves (the
	// seed's label).
	OwningGatewayLabel = "io.cilium.gateway/owning-gateway"
	// SourceSecretLabel names the Secret ("<namespace>.<name>") a copy in
	// the secrets namespace was made from.
	SourceSecretLabel = "gateway.plexus.dev/source-secret"
	// LBIPAMIPsAnnotation asks LB-IPAM for addresses (the seed's name).
	LBIPAMIPsAnnotation = "io.cilium/lb-ipam-ips"
	// endpointSliceManagedBy is the EndpointSlice controller name.
	endpointSliceManagedBy = "gateway.plexus.dev"
)

// GeneratedName is the name of a Gateway's Service and CiliumEnvoyConfig.
func GeneratedName(gateway string) string { return "cilium-gateway-" + gateway }

func ownerRef(gw *gwv1.Gateway) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
		Controller: new(true), BlockOwnerDeletion: new(true),
	}
}

func generatedMeta(gw *gwv1.Gateway) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: GeneratedName(gw.Name), Namespace: gw.Namespace,
		Labels:          map[string]string{nodeobjects.ManagedByLabel: ManagedByValue, OwningGatewayLabel: gw.Name},
		OwnerReferences: []metav1.OwnerReference{ownerRef(gw)},
	}
}

// desiredService is a Gateway's LoadBalancer Service: one port per served
// listener port, aimed at the proxy's port for it, with the Gateway's
// infrastructure labels and annotations and its requested addresses.
// warning says what of the Gateway's request was not followed.
func desiredService(gw *gwv1.Gateway, cfg *ir.Gateway, proxyPort func(int32) (uint32, bool)) (svc *corev1.Service, warning string) {
	svc = &corev1.Service{ObjectMeta: generatedMeta(gw), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	if infra := gw.Spec.Infrastructure; infra != nil {
		for k, v := range infra.Labels {
			svc.Labels[string(k)] = string(v)
		}
		for k, v := range infra.Annotations {
			if svc.Annotations == nil {
				svc.Annotations = map[string]string{}
			}
			svc.Annotations[string(k)] = string(v)
		}
	}
	// Our own labels win over the infrastructure's.
	svc.Labels[nodeobjects.ManagedByLabel], svc.Labels[OwningGatewayLabel] = ManagedByValue, gw.Name
	var ips []string
	for _, a := range gw.Spec.Addresses {
		if a.Type == nil || *a.Type == gwv1.IPAddressType {
			ips = append(ips, a.Value)
		}
	}
	if len(ips) > 0 {
		if _, set := svc.Annotations[LBIPAMIPsAnnotation]; set {
			warning = fmt.Sprintf("spec.addresses is ignored: spec.infrastructure.annotations[%s] chooses the addresses", LBIPAMIPsAnnotation)
		} else {
			if svc.Annotations == nil {
				svc.Annotations = map[string]string{}
			}
			svc.Annotations[LBIPAMIPsAnnotation] = strings.Join(ips, ",")
		}
	}
	for _, p := range cfg.Ports {
		pp, _ := proxyPort(p.Port)
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: fmt.Sprintf("port-%d", p.Port), Protocol: corev1.ProtocolTCP, Port: p.Port,
			TargetPort: intstr.FromInt32(int32(pp)), //nolint:gosec // a port number
		})
	}
	return svc, warning
}

// applyService returns cur changed to want where the controller owns the
// fields, keeping what the API server filled in (cluster IPs, node ports),
// or nil when nothing differs.
func applyService(cur, want *corev1.Service) *corev1.Service {
	next := cur.DeepCopy()
	next.Labels, next.Annotations, next.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
	next.Spec.Type = want.Spec.Type
	ports := slices.Clone(want.Spec.Ports)
	for i := range ports {
		if j := slices.IndexFunc(cur.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == ports[i].Port }); j >= 0 {
			ports[i].NodePort = cur.Spec.Ports[j].NodePort
		}
	}
	next.Spec.Ports = ports
	if maps.Equal(cur.Labels, next.Labels) && maps.Equal(cur.Annotations, next.Annotations) &&
		reflect.DeepEqual(cur.OwnerReferences, next.OwnerReferences) && cur.Spec.Type == next.Spec.Type &&
		reflect.DeepEqual(cur.Spec.Ports, next.Spec.Ports) {
		return nil
	}
	return next
}

// desiredEndpointSlice backs a Gateway's Service with every node's proxy:
// a connection to the Service reaches some node's proxy at the port it
// listens on for that Gateway port.
func desiredEndpointSlice(gw *gwv1.Gateway, svc *corev1.Service, nodes []corev1.Node) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: generatedMeta(gw), AddressType: discoveryv1.AddressTypeIPv4}
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

func internalIPv4(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
				return a.Address
			}
		}
	}
	return ""
}

func sameEndpointSlice(a, b *discoveryv1.EndpointSlice) bool {
	return maps.Equal(a.Labels, b.Labels) && reflect.DeepEqual(a.OwnerReferences, b.OwnerReferences) &&
		a.AddressType == b.AddressType && reflect.DeepEqual(a.Ports, b.Ports) && reflect.DeepEqual(a.Endpoints, b.Endpoints)
}

// desiredEnvoyConfig holds a Gateway's xDS resources (secrets excepted:
// those travel as Secrets in the secrets namespace).
func desiredEnvoyConfig(gw *gwv1.Gateway, res envoy.Resources) (*ciliumv2.CiliumEnvoyConfig, error) {
	raw, err := res.Raw()
	if err != nil {
		return nil, err
	}
	cec := &ciliumv2.CiliumEnvoyConfig{ObjectMeta: generatedMeta(gw)}
	cec.Spec.Resources = raw
	return cec, nil
}

// sameResources compares resources by meaning, not bytes.
func sameResources(a, b []runtime.RawExtension) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		var x, y any
		if json.Unmarshal(a[i].Raw, &x) != nil || json.Unmarshal(b[i].Raw, &y) != nil || !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// SecretCopyName is the name, in the secrets namespace, of the copy of
// Secret namespace/name.
func SecretCopyName(namespace, name string) string { return namespace + "-" + name }

// desiredSecretCopy copies a certificate Secret into the secrets
// namespace, the only namespace whose Secrets the node plugins may read.
func desiredSecretCopy(secretsNamespace, namespace, name string, cert, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: SecretCopyName(namespace, name), Namespace: secretsNamespace,
			Labels: map[string]string{nodeobjects.ManagedByLabel: ManagedByValue, SourceSecretLabel: namespace + "." + name},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}
}

func sameSecret(a, b *corev1.Secret) bool {
	return maps.Equal(a.Labels, b.Labels) && a.Type == b.Type && maps.EqualFunc(a.Data, b.Data, func(x, y []byte) bool { return string(x) == string(y) })
}
