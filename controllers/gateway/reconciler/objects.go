package reconciler

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/k8snames"
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
	// IngressLabel marks the objects generated for Ingresses (Cilium's
	// label on its Ingress Services).
	IngressLabel = "cilium.io/ingress"
	// endpointSliceManagedBy is the EndpointSlice controller name.
	endpointSliceManagedBy = "gateway.plexus.dev"
)

// GeneratedName is the name of a Gateway's Service and CiliumEnvoyConfig
// (shortened to a DNS label with a hash when the Gateway's name is long).
func GeneratedName(gateway string) string { return k8snames.Gateway(gateway) }

func ownerRef(gw *gwv1.Gateway) *metav1.OwnerReference {
	return &metav1.OwnerReference{
		APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
		Controller: new(true), BlockOwnerDeletion: new(true),
	}
}

// gatewayFrontend is a Gateway's load balancer: a LoadBalancer Service
// with the Gateway's infrastructure labels and annotations and its
// requested addresses.
func gatewayFrontend(gw *gwv1.Gateway, cfg *ir.Gateway, settings translate.ServiceSettings) frontend {
	name := GeneratedName(gw.Name)
	fe := frontend{
		key: types.NamespacedName{Namespace: gw.Namespace, Name: name}, envoyConfig: types.NamespacedName{Namespace: gw.Namespace, Name: name},
		owner: ownerRef(gw), config: *cfg,
		labels:   map[string]string{OwningGatewayLabel: k8snames.ShortName(gw.Name), gwv1.GatewayNameLabelKey: k8snames.ShortName(gw.Name)},
		settings: settings,
	}
	if infra := gw.Spec.Infrastructure; infra != nil {
		fe.serviceLabels = map[string]string{}
		for k, v := range infra.Labels {
			fe.serviceLabels[string(k)] = string(v)
		}
		for k, v := range infra.Annotations {
			if fe.annotations == nil {
				fe.annotations = map[string]string{}
			}
			fe.annotations[string(k)] = string(v)
		}
	}
	var ips []string
	for _, a := range gw.Spec.Addresses {
		if a.Type == nil || *a.Type == gwv1.IPAddressType {
			ips = append(ips, a.Value)
		}
	}
	if len(ips) > 0 {
		if _, set := fe.annotations[LBIPAMIPsAnnotation]; set {
			fe.warning = fmt.Sprintf("spec.addresses is ignored: spec.infrastructure.annotations[%s] chooses the addresses", LBIPAMIPsAnnotation)
		} else {
			if fe.annotations == nil {
				fe.annotations = map[string]string{}
			}
			fe.annotations[LBIPAMIPsAnnotation] = strings.Join(ips, ",")
		}
	}
	return fe
}

// ingressFrontend is an Ingress load balancer: a dedicated Ingress's,
// owned by it, or the shared one, owned by nobody.
func ingressFrontend(f translate.IngressFrontend) frontend {
	fe := frontend{
		key: f.Service, envoyConfig: f.EnvoyConfig, labels: map[string]string{IngressLabel: "true"}, config: f.Config,
		settings: f.Settings, annotations: f.Annotations,
	}
	if ing := f.Owner; ing != nil {
		fe.owner = &metav1.OwnerReference{
			APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "Ingress", Name: ing.Name, UID: ing.UID,
			Controller: new(true), BlockOwnerDeletion: new(true),
		}
	}
	return fe
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
