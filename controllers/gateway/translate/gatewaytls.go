package translate

import (
	"crypto/tls"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// frontendValidation is the client certificate validation that applies to
// HTTPS listeners on port: the Gateway's spec.tls.frontend.perPort entry for
// the port, else its default; nil when clients are not asked for one.
func frontendValidation(gw *gwv1.Gateway, port gwv1.PortNumber) (*gwv1.FrontendTLSValidation, string) {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return nil, ""
	}
	f := gw.Spec.TLS.Frontend
	for i, pp := range f.PerPort {
		if pp.Port == port {
			return pp.TLS.Validation, fmt.Sprintf("spec.tls.frontend.perPort[%d].tls.validation", i)
		}
	}
	return f.Default.Validation, "spec.tls.frontend.default.validation"
}

// insecureFrontend says whether any of the Gateway's client certificate
// validations lets clients in without a valid certificate.
func insecureFrontend(gw *gwv1.Gateway) bool {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return false
	}
	f := gw.Spec.TLS.Frontend
	insecure := func(v *gwv1.FrontendTLSValidation) bool {
		return v != nil && v.Mode == gwv1.AllowInsecureFallback
	}
	if insecure(f.Default.Validation) {
		return true
	}
	for _, pp := range f.PerPort {
		if insecure(pp.TLS.Validation) {
			return true
		}
	}
	return false
}

// resolveClientValidation resolves the CA certificates an HTTPS listener
// checks client certificates against. Any bad reference makes resolved
// False (the first one is named); when none is usable the listener is not
// accepted (NoValidCACertificate): serving it without the check would let
// in the clients it is meant to keep out.
func (w *world) resolveClientValidation(gw *gwv1.Gateway, ls *listenerState, accepted, resolved metav1.Condition) (metav1.Condition, metav1.Condition) {
	v, field := frontendValidation(gw, ls.spec.Port)
	if v == nil {
		return accepted, resolved
	}
	gen := gw.Generation
	var pems []string
	for i, ref := range v.CACertificateRefs {
		bad := func(reason gwv1.ListenerConditionReason, format string, args ...any) {
			if resolved.Status == metav1.ConditionTrue { // the first problem is the one reported
				resolved = cond(gwv1.ListenerConditionResolvedRefs, false, reason, gen, "%s.caCertificateRefs[%d]: %s", field, i, fmt.Sprintf(format, args...))
			}
		}
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			bad(gwv1.ListenerReasonInvalidCACertificateKind, "kind %s is not supported; only core ConfigMaps are", strings.TrimSuffix(string(ref.Kind)+"."+string(ref.Group), "."))
			continue
		}
		key := types.NamespacedName{Namespace: gw.Namespace, Name: string(ref.Name)}
		if ref.Namespace != nil {
			key.Namespace = string(*ref.Namespace)
		}
		if key.Namespace != gw.Namespace && !w.granted("Gateway", gw.Namespace, "ConfigMap", key) {
			bad(gwv1.ListenerReasonRefNotPermitted, "ConfigMap %s is in another namespace and no ReferenceGrant there allows it", key)
			continue
		}
		pem, err := w.caCertificates(key)
		if err != nil {
			bad(gwv1.ListenerReasonInvalidCACertificateRef, "%v", err)
			continue
		}
		pems = append(pems, pem)
	}
	if len(pems) == 0 {
		accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonNoValidCACertificate, gen,
			"%s: no CA certificate is usable (see ResolvedRefs), so client certificates cannot be checked and the listener is not served", field)
		return accepted, resolved
	}
	ls.clientValidation = &ir.ClientValidation{CACertificates: strings.Join(pems, "\n"), Optional: v.Mode == gwv1.AllowInsecureFallback}
	return accepted, resolved
}

// resolveBackendClientCertificate resolves spec.tls.backend's client
// certificate, the one the proxy presents to backends it opens TLS to. A
// bad reference gives the Gateway's ResolvedRefs condition (the backends
// are then spoken to without a client certificate, and refuse the proxy
// if they require one).
func (w *world) resolveBackendClientCertificate(gw *gwv1.Gateway) (*types.NamespacedName, *metav1.Condition) {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Backend == nil || gw.Spec.TLS.Backend.ClientCertificateRef == nil {
		return nil, nil
	}
	ref := gw.Spec.TLS.Backend.ClientCertificateRef
	const field = "spec.tls.backend.clientCertificateRef"
	bad := func(reason gwv1.GatewayConditionReason, format string, args ...any) (*types.NamespacedName, *metav1.Condition) {
		c := cond(gwv1.GatewayConditionResolvedRefs, false, reason, gw.Generation, "%s: %s", field, fmt.Sprintf(format, args...))
		return nil, &c
	}
	if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
		return bad(gwv1.GatewayReasonInvalidClientCertificateRef, "only core Secrets hold client certificates")
	}
	key := types.NamespacedName{Namespace: gw.Namespace, Name: string(ref.Name)}
	if ref.Namespace != nil {
		key.Namespace = string(*ref.Namespace)
	}
	if key.Namespace != gw.Namespace && !w.granted("Gateway", gw.Namespace, "Secret", key) {
		return bad(gwv1.GatewayReasonRefNotPermitted, "Secret %s is in another namespace and no ReferenceGrant there allows it", key)
	}
	s, ok := w.secrets[key]
	if !ok {
		return bad(gwv1.GatewayReasonInvalidClientCertificateRef, "Secret %s not found", key)
	}
	if _, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
		return bad(gwv1.GatewayReasonInvalidClientCertificateRef, "Secret %s holds no usable tls.crt and tls.key: %v", key, err)
	}
	return &key, nil
}
