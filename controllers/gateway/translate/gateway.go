package translate

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// ClassConfigGroup and ClassConfigKind name the seed's GatewayClass
// parameters (CiliumGatewayClassConfig).
const (
	ClassConfigGroup = "cilium.io"
	ClassConfigKind  = "CiliumGatewayClassConfig"
)

// cond builds a condition of an object at generation gen.
func cond[T ~string, R ~string](t T, ok bool, reason R, gen int64, format string, args ...any) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: string(t), Status: status, Reason: string(reason), Message: fmt.Sprintf(format, args...), ObservedGeneration: gen}
}

// gatewayState is a Gateway as validated, before routes attach.
type gatewayState struct {
	gw        *gwv1.Gateway
	key       types.NamespacedName
	class     *classState
	accepted  bool
	conds     []metav1.Condition
	listeners []*listenerState
	// backendCert is the Secret of the client certificate the proxy
	// presents to TLS backends (spec.tls.backend), when it resolves.
	backendCert *types.NamespacedName
}

// listenerState is one listener as validated; routes attach to usable ones.
type listenerState struct {
	spec  *gwv1.Listener
	conds []metav1.Condition
	kinds []gwv1.RouteGroupKind
	// usable listeners take routes; of those, serve ones are programmed
	// (an HTTPS listener without its certificate takes routes but is not
	// served).
	usable   bool
	serve    bool
	certs    []types.NamespacedName
	attached int32
	// clientValidation, when set, is how an HTTPS listener checks client
	// certificates (spec.tls.frontend).
	clientValidation *ir.ClientValidation
}

// terminates says whether the listener opens TLS itself: HTTPS, and TLS
// in mode Terminate (the API's default), as opposed to passing it through.
func (l *listenerState) terminates() bool {
	switch l.spec.Protocol {
	case gwv1.HTTPSProtocolType:
		return true
	case gwv1.TLSProtocolType:
		return l.spec.TLS != nil && (l.spec.TLS.Mode == nil || *l.spec.TLS.Mode == gwv1.TLSModeTerminate)
	}
	return false
}

func (l *listenerState) hostname() string {
	if l.spec.Hostname == nil {
		return ""
	}
	return string(*l.spec.Hostname)
}

// routeKindsFor are the route kinds a listener protocol can carry.
func routeKindsFor(p gwv1.ProtocolType) []gwv1.Kind {
	switch p {
	case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType:
		return []gwv1.Kind{"HTTPRoute", "GRPCRoute"}
	case gwv1.TLSProtocolType:
		return []gwv1.Kind{"TLSRoute"}
	}
	return nil
}

func (w *world) validateGateway(gw *gwv1.Gateway, classOK bool) *gatewayState {
	g := &gatewayState{gw: gw, key: keyOf(gw)}
	gen := gw.Generation
	if !classOK {
		g.conds = []metav1.Condition{cond(gwv1.GatewayConditionAccepted, false, gwv1.GatewayReasonInvalidParameters, gen,
			"GatewayClass %s is not accepted", gw.Spec.GatewayClassName), notProgrammed(gen)}
		return g
	}
	for i := range gw.Spec.Listeners {
		g.listeners = append(g.listeners, w.validateListener(gw, &gw.Spec.Listeners[i]))
	}
	markConflicts(g.listeners, gen)
	for _, l := range g.listeners {
		certsOK := !l.terminates() || len(l.certs) == len(l.spec.TLS.CertificateRefs)
		l.serve = l.usable && certsOK
		if !l.serve {
			// Programmed=True waits for the proxies; False is known now.
			l.conds = append(l.conds, cond(gwv1.ListenerConditionProgrammed, false, gwv1.ListenerReasonInvalid, gen,
				"Not served: see the listener's other conditions"))
		}
	}

	var unsupported []string
	for i, a := range gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType {
			unsupported = append(unsupported, fmt.Sprintf("spec.addresses[%d] (type %s)", i, *a.Type))
		}
	}
	usable := slices.ContainsFunc(g.listeners, func(l *listenerState) bool { return l.usable })
	someInvalid := slices.ContainsFunc(g.listeners, func(l *listenerState) bool {
		return meta.IsStatusConditionFalse(l.conds, string(gwv1.ListenerConditionAccepted))
	})
	switch {
	case gw.Spec.Infrastructure != nil && gw.Spec.Infrastructure.ParametersRef != nil:
		p := gw.Spec.Infrastructure.ParametersRef
		g.conds = append(g.conds, cond(gwv1.GatewayConditionAccepted, false, gwv1.GatewayReasonInvalidParameters, gen,
			"spec.infrastructure.parametersRef: %s.%s %s is not supported; Gateways take no parameters (the GatewayClass's parametersRef configures them)", p.Kind, p.Group, p.Name))
	case len(unsupported) > 0:
		g.conds = append(g.conds, cond(gwv1.GatewayConditionAccepted, false, gwv1.GatewayReasonUnsupportedAddress, gen,
			"%s: only addresses of type IPAddress are supported", strings.Join(unsupported, ", ")))
	case !usable:
		g.conds = append(g.conds, cond(gwv1.GatewayConditionAccepted, false, gwv1.GatewayReasonListenersNotValid, gen,
			"No listener is valid; see status.listeners"))
	case someInvalid:
		g.accepted = true
		g.conds = append(g.conds, cond(gwv1.GatewayConditionAccepted, true, gwv1.GatewayReasonListenersNotValid, gen,
			"Gateway accepted; some listeners are not valid and not served: see status.listeners"))
	default:
		g.accepted = true
		g.conds = append(g.conds, cond(gwv1.GatewayConditionAccepted, true, gwv1.GatewayReasonAccepted, gen, "Gateway accepted"))
	}
	if !g.accepted {
		g.conds = append(g.conds, notProgrammed(gen))
	}
	if insecureFrontend(gw) {
		g.conds = append(g.conds, cond(gwv1.GatewayConditionInsecureFrontendValidationMode, true, gwv1.GatewayReasonConfigurationChanged, gen,
			"spec.tls.frontend: a validation has mode AllowInsecureFallback, so clients without a valid certificate are let in on its HTTPS listeners"))
	}
	unresolved := slices.ContainsFunc(g.listeners, func(l *listenerState) bool {
		return meta.IsStatusConditionFalse(l.conds, string(gwv1.ListenerConditionResolvedRefs))
	})
	var badBackendCert *metav1.Condition
	g.backendCert, badBackendCert = w.resolveBackendClientCertificate(gw)
	switch {
	case badBackendCert != nil:
		if unresolved {
			badBackendCert.Message += "; a listener has unresolved references too: see status.listeners"
		}
		g.conds = append(g.conds, *badBackendCert)
	case unresolved:
		g.conds = append(g.conds, cond(gwv1.GatewayConditionResolvedRefs, false, gwv1.GatewayReasonListenersNotResolved, gen,
			"A listener has unresolved references; see status.listeners"))
	default:
		g.conds = append(g.conds, cond(gwv1.GatewayConditionResolvedRefs, true, gwv1.GatewayReasonResolvedRefs, gen, "All references resolved"))
	}
	return g
}

func (w *world) validateListener(gw *gwv1.Gateway, l *gwv1.Listener) *listenerState {
	ls := &listenerState{spec: l}
	gen := gw.Generation
	accepted := cond(gwv1.ListenerConditionAccepted, true, gwv1.ListenerReasonAccepted, gen, "Listener accepted")
	resolved := cond(gwv1.ListenerConditionResolvedRefs, true, gwv1.ListenerReasonResolvedRefs, gen, "All references resolved")

	switch l.Protocol {
	case gwv1.HTTPProtocolType:
	case gwv1.HTTPSProtocolType:
		if l.TLS == nil || (l.TLS.Mode != nil && *l.TLS.Mode != gwv1.TLSModeTerminate) {
			accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonUnsupportedValue, gen,
				"tls.mode: an HTTPS listener terminates TLS (mode Terminate)")
			break
		}
		resolved = w.resolveCertificates(gw, ls)
		accepted, resolved = w.resolveClientValidation(gw, ls, accepted, resolved)
	case gwv1.TLSProtocolType:
		switch {
		case l.TLS == nil:
			accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonUnsupportedValue, gen,
				"tls: a TLS listener needs tls.mode (Passthrough, or Terminate with certificateRefs)")
		case ls.terminates():
			// TLSRoutes' streams, decrypted with the listener's certificate.
			resolved = w.resolveCertificates(gw, ls)
		}
	default:
		accepted = cond(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonUnsupportedProtocol, gen,
			"protocol %s is not supported; supported: HTTP, HTTPS, TLS (passthrough)", l.Protocol)
	}

	// allowedRoutes.kinds: keep the kinds this protocol can carry.
	valid := routeKindsFor(l.Protocol)
	if l.AllowedRoutes == nil || len(l.AllowedRoutes.Kinds) == 0 {
		for _, k := range valid {
			ls.kinds = append(ls.kinds, gwv1.RouteGroupKind{Group: ptr.To(gwv1.Group(gwv1.GroupName)), Kind: k})
		}
	} else {
		var bad []string
		for _, k := range l.AllowedRoutes.Kinds {
			group := gwv1.GroupName
			if k.Group != nil {
				group = string(*k.Group)
			}
			if group == gwv1.GroupName && slices.Contains(valid, k.Kind) {
				ls.kinds = append(ls.kinds, gwv1.RouteGroupKind{Group: ptr.To(gwv1.Group(group)), Kind: k.Kind})
			} else {
				bad = append(bad, fmt.Sprintf("%s.%s", k.Kind, group))
			}
		}
		if len(bad) > 0 && resolved.Status == metav1.ConditionTrue {
			resolved = cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidRouteKinds, gen,
				"allowedRoutes.kinds: %s cannot attach to a %s listener", strings.Join(bad, ", "), l.Protocol)
		}
	}
	ls.usable = accepted.Status == metav1.ConditionTrue
	if !ls.usable {
		ls.kinds = nil // nothing attaches to a listener that is not served
	}
	ls.conds = []metav1.Condition{accepted, resolved}
	return ls
}

// resolveCertificates checks a terminating listener's certificateRefs and
// returns its ResolvedRefs condition.
func (w *world) resolveCertificates(gw *gwv1.Gateway, ls *listenerState) metav1.Condition {
	gen := gw.Generation
	refs := ls.spec.TLS.CertificateRefs
	if len(refs) == 0 {
		return cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidCertificateRef, gen,
			"tls.certificateRefs: a listener that terminates TLS needs a certificate")
	}
	for i, ref := range refs {
		field := fmt.Sprintf("tls.certificateRefs[%d]", i)
		if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
			return cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidCertificateRef, gen,
				"%s: only core Secrets hold certificates", field)
		}
		key := types.NamespacedName{Namespace: gw.Namespace, Name: string(ref.Name)}
		if ref.Namespace != nil {
			key.Namespace = string(*ref.Namespace)
		}
		if key.Namespace != gw.Namespace && !w.granted("Gateway", gw.Namespace, "Secret", key) {
			return cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonRefNotPermitted, gen,
				"%s: Secret %s is in another namespace and no ReferenceGrant there allows it", field, key)
		}
		s, ok := w.secrets[key]
		if !ok {
			return cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidCertificateRef, gen,
				"%s: Secret %s not found", field, key)
		}
		if _, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
			return cond(gwv1.ListenerConditionResolvedRefs, false, gwv1.ListenerReasonInvalidCertificateRef, gen,
				"%s: Secret %s holds no usable tls.crt and tls.key: %v", field, key, err)
		}
		ls.certs = append(ls.certs, key)
	}
	return cond(gwv1.ListenerConditionResolvedRefs, true, gwv1.ListenerReasonResolvedRefs, gen, "All references resolved")
}

// markConflicts flags listeners that share a port but not a protocol, or a
// port, protocol and hostname; neither can be served, so both lose.
func markConflicts(ls []*listenerState, gen int64) {
	for _, a := range ls {
		reason, other := gwv1.ListenerReasonNoConflicts, ""
		for _, b := range ls {
			if a == b || a.spec.Port != b.spec.Port {
				continue
			}
			if a.spec.Protocol != b.spec.Protocol {
				reason, other = gwv1.ListenerReasonProtocolConflict, string(b.spec.Name)
				break
			}
			if a.hostname() == b.hostname() {
				reason, other = gwv1.ListenerReasonHostnameConflict, string(b.spec.Name)
				break
			}
		}
		if reason == gwv1.ListenerReasonNoConflicts {
			a.conds = append(a.conds, cond(gwv1.ListenerConditionConflicted, false, reason, gen, "No conflicts"))
			continue
		}
		a.usable = false
		how := "another protocol"
		if reason == gwv1.ListenerReasonHostnameConflict {
			how = "the same protocol and hostname"
		}
		a.conds = append(a.conds, cond(gwv1.ListenerConditionConflicted, true, reason, gen,
			"Listener %s uses port %d with %s; neither is served", other, a.spec.Port, how))
	}
}

func notProgrammed(gen int64) metav1.Condition {
	return cond(gwv1.GatewayConditionProgrammed, false, gwv1.GatewayReasonInvalid, gen, "Not programmed: the Gateway is not accepted")
}
