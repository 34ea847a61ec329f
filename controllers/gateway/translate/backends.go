package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// Service appProtocols (lower-cased) and what the proxy speaks to them.
// TLS to a backend comes only from a BackendTLSPolicy: an "https" port
// without one is spoken to in plain HTTP/1.1, as the Gateway API leaves
// it.
var appProtocols = map[string]bool{ // value: HTTP/2
	"":                  false,
	"http":              false,
	"https":             false,
	"kubernetes.io/ws":  false,
	"kubernetes.io/h2c": true,
}

// resolveBackend resolves a route's reference to a Service port into a
// cluster, or says why it cannot.
func (w *world) resolveBackend(r *routeObject, ref gwv1.BackendObjectReference, http2 bool, field string) (ir.Cluster, *refProblem) {
	problem := func(reason gwv1.RouteConditionReason, format string, args ...any) (ir.Cluster, *refProblem) {
		return ir.Cluster{}, &refProblem{reason, field + ": " + fmt.Sprintf(format, args...)}
	}
	if ptr.Deref(ref.Group, "") != "" || ptr.Deref(ref.Kind, "Service") != "Service" {
		return problem(gwv1.RouteReasonInvalidKind, "kind %s.%s is not supported; only Services are", ptr.Deref(ref.Kind, "Service"), ptr.Deref(ref.Group, ""))
	}
	key := types.NamespacedName{Namespace: r.key.Namespace, Name: string(ref.Name)}
	if ref.Namespace != nil {
		key.Namespace = string(*ref.Namespace)
	}
	if key.Namespace != r.key.Namespace && !w.granted(r.key.Kind, r.key.Namespace, "Service", key) {
		return problem(gwv1.RouteReasonRefNotPermitted, "Service %s is in another namespace and no ReferenceGrant there allows it", key)
	}
	svc, ok := w.services[key]
	if !ok {
		return problem(gwv1.RouteReasonBackendNotFound, "Service %s not found", key)
	}
	if ref.Port == nil {
		return problem(gwv1.RouteReasonBackendNotFound, "port is required for a Service")
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == *ref.Port })
	if i < 0 {
		return problem(gwv1.RouteReasonBackendNotFound, "Service %s has no port %d", key, *ref.Port)
	}
	sp := svc.Spec.Ports[i]
	h2, known := appProtocols[strings.ToLower(ptr.Deref(sp.AppProtocol, ""))]
	if !known {
		return problem(gwv1.RouteReasonUnsupportedProtocol, "Service %s port %d: appProtocol %s is not supported", key, sp.Port, *sp.AppProtocol)
	}
	c := ir.Cluster{
		Name:      fmt.Sprintf("%s/%s:%d", key.Namespace, key.Name, sp.Port),
		HTTP2:     http2 || h2,
		Endpoints: w.endpoints(key, sp),
	}
	r.backendPorts = append(r.backendPorts, tlsTarget{service: key, section: sp.Name})
	applyBackendTLS(&c, w.backendTLSFor(key, sp.Name))
	return c, nil
}

// endpoints lists the ready addresses behind a Service port, in order.
func (w *world) endpoints(svc types.NamespacedName, sp corev1.ServicePort) []ir.Endpoint {
	var out []ir.Endpoint
	for _, s := range w.slices[svc] {
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") != sp.Name || ptr.Deref(p.Protocol, corev1.ProtocolTCP) != corev1.ProtocolTCP || p.Port == nil {
				continue
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					out = append(out, ir.Endpoint{Address: a, Port: *p.Port})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b ir.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// granted says whether a ReferenceGrant in to's namespace lets Gateway API
// objects of fromKind in fromNS refer to to, a core object of toKind (every
// cross-namespace reference the controller follows is of this shape).
func (w *world) granted(fromKind, fromNS, toKind string, to types.NamespacedName) bool {
	for _, g := range w.in.ReferenceGrants {
		if g.Namespace != to.Namespace {
			continue
		}
		fromOK := slices.ContainsFunc(g.Spec.From, func(f gwv1.ReferenceGrantFrom) bool {
			return string(f.Group) == gwv1.GroupName && string(f.Kind) == fromKind && string(f.Namespace) == fromNS
		})
		toOK := slices.ContainsFunc(g.Spec.To, func(t gwv1.ReferenceGrantTo) bool {
			return t.Group == "" && string(t.Kind) == toKind && (t.Name == nil || string(*t.Name) == to.Name)
		})
		if fromOK && toOK {
			return true
		}
	}
	return false
}
