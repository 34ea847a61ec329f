package translate

import (
	"cmp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// routeObject is an HTTPRoute or GRPCRoute reduced to what attachment and
// translation need, with its rules already turned into IR routes.
type routeObject struct {
	key       RouteKey
	meta      *metav1.ObjectMeta
	parents   []gwv1.ParentReference
	hostnames []string
	// routes are the IR routes of every rule and match, before names
	// that depend on the parent are known.
	routes []ir.Route
	// passthrough are a TLSRoute's backends.
	passthrough []ir.WeightedBackend
	// clusters are the backends the routes use, by name.
	clusters map[string]ir.Cluster
	// unsupported, when set, is why the route cannot be accepted at all
	// (a field Plexus does not serve).
	unsupported string
	// resolved is the route's ResolvedRefs condition (the same for every
	// parent).
	resolved metav1.Condition
	// attachments are the listeners the route attached to.
	attachments []attachment
	// backendPorts are the Service ports its backends resolved to, for
	// the status of the BackendTLSPolicies that target them.
	backendPorts []tlsTarget
}

// attachment is one route attached to one listener, for these host names
// ("" for any).
type attachment struct {
	route     *routeObject
	gateway   *gatewayState
	listener  *listenerState
	hostnames []string
}

// routes converts every route object in the Input, oldest first, then by
// namespace and name: the Gateway API's order for ties in precedence.
func (w *world) routes() []*routeObject {
	var rs []*routeObject
	for i := range w.in.HTTPRoutes {
		rs = append(rs, w.httpRoute(&w.in.HTTPRoutes[i]))
	}
	for i := range w.in.GRPCRoutes {
		rs = append(rs, w.grpcRoute(&w.in.GRPCRoutes[i]))
	}
	for i := range w.in.TLSRoutes {
		rs = append(rs, w.tlsRoute(&w.in.TLSRoutes[i]))
	}
	slices.SortStableFunc(rs, func(a, b *routeObject) int {
		if c := a.meta.CreationTimestamp.Compare(b.meta.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.key.Namespace, b.key.Namespace), cmp.Compare(a.key.Name, b.key.Name), cmp.Compare(a.key.Kind, b.key.Kind))
	})
	return rs
}

// attach attaches r to the listeners its parentRefs name and returns the
// status of each parentRef that names a Gateway of this controller (or a
// Gateway that does not exist, which nobody else would answer for).
func (w *world) attach(r *routeObject) []gwv1.RouteParentStatus {
	var out []gwv1.RouteParentStatus
	gen := r.meta.Generation
	for _, ref := range r.parents {
		if (ref.Group != nil && *ref.Group != gwv1.GroupName) || (ref.Kind != nil && *ref.Kind != "Gateway") {
			continue // a Service parent (GAMMA) or another kind: not served yet
		}
		key := types.NamespacedName{Namespace: r.key.Namespace, Name: string(ref.Name)}
		if ref.Namespace != nil {
			key.Namespace = string(*ref.Namespace)
		}
		g, ours := w.gateways[key]
		if !ours && w.allGateways[key] {
			continue // another controller's Gateway
		}
		accepted := w.attachTo(r, g, ref, gen)
		out = append(out, gwv1.RouteParentStatus{
			ParentRef:      ref,
			ControllerName: ControllerName,
			Conditions:     []metav1.Condition{accepted, r.resolved},
		})
	}
	return out
}

// attachTo attaches r to the listeners of g that ref selects and returns
// the parent's Accepted condition.
func (w *world) attachTo(r *routeObject, g *gatewayState, ref gwv1.ParentReference, gen int64) metav1.Condition {
	no := func(reason gwv1.RouteConditionReason, format string, args ...any) metav1.Condition {
		return cond(gwv1.RouteConditionAccepted, false, reason, gen, format, args...)
	}
	if g == nil {
		return no(gwv1.RouteReasonNoMatchingParent, "Gateway %s/%s not found", ptr.Deref(ref.Namespace, gwv1.Namespace(r.key.Namespace)), ref.Name)
	}
	if !g.accepted {
		return no(gwv1.RouteReasonPending, "Gateway %s is not accepted", g.key)
	}
	if r.unsupported != "" {
		return no(gwv1.RouteReasonUnsupportedValue, "%s", r.unsupported)
	}
	var named, allowed, hostMatched int
	for _, l := range g.listeners {
		if ref.SectionName != nil && *ref.SectionName != l.spec.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != l.spec.Port {
			continue
		}
		named++
		if !l.usable || !w.allows(g, l, r) {
			continue
		}
		allowed++
		names, ok := intersect(l.hostname(), r.hostnames)
		if !ok {
			continue
		}
		hostMatched++
		l.attached++
		r.attachments = append(r.attachments, attachment{route: r, gateway: g, listener: l, hostnames: names})
	}
	switch {
	case named == 0:
		return no(gwv1.RouteReasonNoMatchingParent, "Gateway %s has no listener matching sectionName/port of this parentRef", g.key)
	case allowed == 0:
		return no(gwv1.RouteReasonNotAllowedByListeners, "No listener of Gateway %s allows %s from namespace %s", g.key, r.key.Kind, r.key.Namespace)
	case hostMatched == 0:
		return no(gwv1.RouteReasonNoMatchingListenerHostname, "No hostname of this route matches a listener hostname of Gateway %s", g.key)
	}
	return cond(gwv1.RouteConditionAccepted, true, gwv1.RouteReasonAccepted, gen, "Accepted by Gateway %s", g.key)
}

// allows applies a listener's allowedRoutes to r.
func (w *world) allows(g *gatewayState, l *listenerState, r *routeObject) bool {
	if !slices.ContainsFunc(l.kinds, func(k gwv1.RouteGroupKind) bool { return string(k.Kind) == r.key.Kind }) {
		return false
	}
	from := gwv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		selector = ar.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return r.key.Namespace == g.key.Namespace
	case gwv1.NamespacesFromSelector:
		sel, err := metav1.LabelSelectorAsSelector(selector)
		ns, ok := w.namespaces[r.key.Namespace]
		return err == nil && selector != nil && ok && sel.Matches(labels.Set(ns.Labels))
	}
	return false
}

// routeResolved builds a route's ResolvedRefs condition from the problems
// found in its references (none: True).
func routeResolved(gen int64, problems []refProblem) metav1.Condition {
	if len(problems) == 0 {
		return cond(gwv1.RouteConditionResolvedRefs, true, gwv1.RouteReasonResolvedRefs, gen, "All references resolved")
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.message
	}
	return cond(gwv1.RouteConditionResolvedRefs, false, problems[0].reason, gen, "%s", strings.Join(msgs, "; "))
}

// refProblem is one reference that could not be resolved.
type refProblem struct {
	reason  gwv1.RouteConditionReason
	message string
}
