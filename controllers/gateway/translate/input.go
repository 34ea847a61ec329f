// Package translate turns Gateway API objects into what each Gateway's proxy
// serves (package ir) and into the status the Gateway API asks for: the
// conditions of GatewayClasses, Gateways, their listeners and each route's
// parents. It is a pure function of its Input, so every case can be a table
// or golden test; the reconciler only gathers the Input and writes the
// Output. Programmed is the one condition it cannot decide: that waits for
// the node proxies' acknowledgement, which the reconciler adds.
package translate

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// ControllerName is the seed's GatewayClass controllerName.
const ControllerName gwv1.GatewayController = "io.cilium/gateway-controller"

// Input is every object the translation reads.
type Input struct {
	Classes         []gwv1.GatewayClass
	ClassConfigs    []ciliumv2alpha1.CiliumGatewayClassConfig
	Gateways        []gwv1.Gateway
	HTTPRoutes      []gwv1.HTTPRoute
	GRPCRoutes      []gwv1.GRPCRoute
	TLSRoutes       []gwv1.TLSRoute
	ReferenceGrants []gwv1.ReferenceGrant
	// BackendTLSPolicies and the ConfigMaps holding their CA certificates.
	BackendTLSPolicies []gwv1.BackendTLSPolicy
	ConfigMaps         []corev1.ConfigMap
	Namespaces         []corev1.Namespace
	Services           []corev1.Service
	EndpointSlices     []discoveryv1.EndpointSlice
	Secrets            []corev1.Secret
	// Ingresses and IngressClasses are read by TranslateIngresses only.
	Ingresses      []networkingv1.Ingress
	IngressClasses []networkingv1.IngressClass
}

// Output is the translation's result.
type Output struct {
	// Classes holds the conditions of each GatewayClass this controller
	// owns, by name.
	Classes map[string][]metav1.Condition
	// ClassConfigs holds the conditions of every CiliumGatewayClassConfig.
	ClassConfigs map[types.NamespacedName][]metav1.Condition
	// Gateways holds one result per Gateway of an owned class, in
	// namespace/name order.
	Gateways []GatewayResult
	// RouteParents holds, per route, the status of each parentRef this
	// controller answers for (other controllers' entries are theirs).
	RouteParents map[RouteKey][]gwv1.RouteParentStatus
	// BackendTLSPolicies holds, per policy, this controller's
	// status.ancestors entries (possibly none).
	BackendTLSPolicies map[types.NamespacedName][]gwv1.PolicyAncestorStatus
}

// GatewayResult is one Gateway's translation and status.
type GatewayResult struct {
	Key types.NamespacedName
	// Config is what its proxy serves; nil when the Gateway is not
	// accepted.
	Config *ir.Gateway
	// Conditions are the Gateway's conditions. Programmed is there only
	// when it is False for a reason known here; otherwise it waits for
	// the proxies' acknowledgement.
	Conditions []metav1.Condition
	// Listeners are the listener statuses in spec order, Programmed as
	// for Conditions.
	Listeners []gwv1.ListenerStatus
	// Service holds the generated Service's settings from the class.
	Service ServiceSettings
}

// RouteKey names one route object.
type RouteKey struct {
	Kind string
	types.NamespacedName
}

func keyOf(o metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}

// Translate computes the Output for in. It never fails: what it cannot serve
// it reports in the Output's conditions.
func Translate(in Input) Output {
	w := newWorld(in)
	out := Output{
		Classes: map[string][]metav1.Condition{}, ClassConfigs: map[types.NamespacedName][]metav1.Condition{},
		RouteParents: map[RouteKey][]gwv1.RouteParentStatus{},
	}
	for k, c := range w.classConfigs {
		out.ClassConfigs[k] = classConfigConditions(c)
	}
	classes := map[string]*classState{}
	for i := range in.Classes {
		if c := &in.Classes[i]; c.Spec.ControllerName == ControllerName {
			classes[c.Name] = w.validateClass(c)
			out.Classes[c.Name] = classes[c.Name].conds
		}
	}
	var gws []*gatewayState
	for i := range in.Gateways {
		gw := &in.Gateways[i]
		class, ok := w.classes[string(gw.Spec.GatewayClassName)]
		if !ok || class.Spec.ControllerName != ControllerName {
			continue // another controller's Gateway: not ours to touch
		}
		g := w.validateGateway(gw, classes[class.Name].accepted())
		g.class = classes[class.Name]
		gws = append(gws, g)
	}
	slices.SortFunc(gws, func(a, b *gatewayState) int { return cmp.Compare(a.key.String(), b.key.String()) })
	w.gateways = map[types.NamespacedName]*gatewayState{}
	for _, g := range gws {
		w.gateways[g.key] = g
	}
	w.validateBackendTLSPolicies()
	routes := w.routes()
	for _, r := range routes {
		out.RouteParents[r.key] = w.attach(r)
	}
	out.BackendTLSPolicies = w.backendTLSStatus(routes)
	for _, g := range gws {
		out.Gateways = append(out.Gateways, w.build(g, routes))
	}
	return out
}

// world indexes the Input for lookups.
type world struct {
	in      Input
	classes map[string]*gwv1.GatewayClass
	// classConfigs are the CiliumGatewayClassConfigs by namespace/name.
	classConfigs map[types.NamespacedName]*ciliumv2alpha1.CiliumGatewayClassConfig
	namespaces   map[string]*corev1.Namespace
	services     map[types.NamespacedName]*corev1.Service
	slices       map[types.NamespacedName][]*discoveryv1.EndpointSlice
	secrets      map[types.NamespacedName]*corev1.Secret
	configMaps   map[types.NamespacedName]*corev1.ConfigMap
	// tlsPolicies holds the BackendTLSPolicy applied to each target;
	// allTLSPolicies every policy, oldest first.
	tlsPolicies    map[tlsTarget]*backendTLSPolicy
	allTLSPolicies []*backendTLSPolicy
	// tlsTargets holds every policy naming each target, winner first.
	tlsTargets map[tlsTarget][]*backendTLSPolicy
	gateways   map[types.NamespacedName]*gatewayState // ours, validated
	// allGateways holds every Gateway's key, of any class.
	allGateways map[types.NamespacedName]bool
}

func newWorld(in Input) *world {
	w := &world{
		in:           in,
		classes:      map[string]*gwv1.GatewayClass{},
		classConfigs: map[types.NamespacedName]*ciliumv2alpha1.CiliumGatewayClassConfig{},
		namespaces:   map[string]*corev1.Namespace{},
		services:     map[types.NamespacedName]*corev1.Service{},
		slices:       map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		secrets:      map[types.NamespacedName]*corev1.Secret{},
		configMaps:   map[types.NamespacedName]*corev1.ConfigMap{},
		allGateways:  map[types.NamespacedName]bool{},
	}
	for i := range in.Gateways {
		w.allGateways[keyOf(&in.Gateways[i])] = true
	}
	for i := range in.Classes {
		w.classes[in.Classes[i].Name] = &in.Classes[i]
	}
	for i := range in.ClassConfigs {
		w.classConfigs[keyOf(&in.ClassConfigs[i])] = &in.ClassConfigs[i]
	}
	for i := range in.Namespaces {
		w.namespaces[in.Namespaces[i].Name] = &in.Namespaces[i]
	}
	for i := range in.Services {
		w.services[keyOf(&in.Services[i])] = &in.Services[i]
	}
	for i := range in.EndpointSlices {
		s := &in.EndpointSlices[i]
		if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
			k := types.NamespacedName{Namespace: s.Namespace, Name: svc}
			w.slices[k] = append(w.slices[k], s)
		}
	}
	for i := range in.Secrets {
		w.secrets[keyOf(&in.Secrets[i])] = &in.Secrets[i]
	}
	for i := range in.ConfigMaps {
		w.configMaps[keyOf(&in.ConfigMaps[i])] = &in.ConfigMaps[i]
	}
	return w
}
