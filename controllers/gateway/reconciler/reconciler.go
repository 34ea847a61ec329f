// Package reconciler is the gateway controller: each pass reads the Gateway
// API objects and Ingresses, translates them (package translate) into Envoy
// resources (package envoy), and writes per load balancer (each Gateway,
// each dedicated Ingress, the shared Ingress one) a Service, the
// EndpointSlice that sends its traffic to the node proxies, a
// CiliumEnvoyConfig holding its resources and copies of its certificates in
// the secrets namespace; per node an L7Proxy naming the configs that node
// serves; and the status of every object it answers for. Programmed (and an
// Ingress's address) shows only once every node's proxy has acknowledged
// the configuration.
package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses;gateways;httproutes;grpcroutes;tlsroutes;referencegrants;backendtlspolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses/status;gateways/status;httproutes/status;grpcroutes/status;tlsroutes/status;backendtlspolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumenvoyconfigs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumclusterwideenvoyconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumenvoyconfigs/status;ciliumclusterwideenvoyconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumgatewayclassconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumgatewayclassconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l7proxies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=cilium-secrets,resources=secrets,verbs=create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;ingressclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ManagedByLabel marks what this controller writes.
const ManagedByLabel = nodeobjects.ManagedByLabel

var l7Proxies = nodeobjects.Kind[nodesv1alpha1.L7Proxy, nodesv1alpha1.L7ProxySpec]{
	Name:      "L7Proxy",
	ManagedBy: ManagedByValue,
	New:       func() *nodesv1alpha1.L7Proxy { return &nodesv1alpha1.L7Proxy{} },
	Spec:      func(p *nodesv1alpha1.L7Proxy) *nodesv1alpha1.L7ProxySpec { return &p.Spec },
	Object:    func(p *nodesv1alpha1.L7Proxy) client.Object { return p },
}

// Reconciler is the gateway controller.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Passes   passes.Settings
	// SecretsNamespace is where certificate copies go: the one namespace
	// whose Secrets node plugins read.
	SecretsNamespace string
	// ProxyPortFirst and ProxyPortLast bound the ports the node proxies
	// listen on, one per Gateway listener port.
	ProxyPortFirst, ProxyPortLast int32
	// GatewayAPI turns Gateway API support on; GRPCRoutes, TLSRoutes
	// and BackendTLSPolicies say whether their CRDs are installed.
	GatewayAPI, GRPCRoutes, TLSRoutes, BackendTLSPolicies bool
	// Ingress, when set, turns Ingress support on with these settings.
	Ingress *translate.IngressOptions
	// HostNetwork, when set, serves Gateways in host network mode.
	HostNetwork *HostNetwork

	runner   passes.Runner
	ports    proxyPorts
	reported reported
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil || r.SecretsNamespace == "" || r.ProxyPortFirst <= 0 || r.ProxyPortLast < r.ProxyPortFirst {
		return errors.New("gateway: Client, Recorder, SecretsNamespace and a proxy port range must be set")
	}
	r.ports = proxyPorts{First: r.ProxyPortFirst, Last: r.ProxyPortLast}
	r.runner = passes.Runner{Name: "gateway", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	watches := []passes.Watch{
		passes.For(&corev1.Namespace{}), passes.For(&corev1.Service{}),
		passes.For(&discoveryv1.EndpointSlice{}), passes.For(&corev1.Secret{}), passes.For(&corev1.Node{}),
		passes.For(&ciliumv2.CiliumEnvoyConfig{}), passes.For(&ciliumv2.CiliumClusterwideEnvoyConfig{}),
		passes.For(&nodesv1alpha1.L7Proxy{}),
	}
	if r.GatewayAPI {
		watches = append(watches, passes.For(&gwv1.GatewayClass{}), passes.For(&gwv1.Gateway{}), passes.For(&gwv1.HTTPRoute{}),
			passes.For(&gwv1.ReferenceGrant{}), passes.For(&ciliumv2alpha1.CiliumGatewayClassConfig{}),
			passes.For(&corev1.ConfigMap{}, holdsCACertificates))
	}
	if r.GRPCRoutes {
		watches = append(watches, passes.For(&gwv1.GRPCRoute{}))
	}
	if r.TLSRoutes {
		watches = append(watches, passes.For(&gwv1.TLSRoute{}))
	}
	if r.BackendTLSPolicies {
		watches = append(watches, passes.For(&gwv1.BackendTLSPolicy{}))
	}
	if r.Ingress != nil {
		watches = append(watches, passes.For(&networkingv1.Ingress{}), passes.For(&networkingv1.IngressClass{}))
	}
	return r.runner.SetupWithManager(mgr, watches...)
}

// holdsCACertificates passes only the events of ConfigMaps that hold (or
// held) a CA bundle: BackendTLSPolicies and Gateways' client certificate
// validation read nothing else, and every other ConfigMap change in the
// cluster would otherwise start a pass.
var holdsCACertificates = predicate.Funcs{
	CreateFunc:  func(e event.CreateEvent) bool { return hasCA(e.Object) },
	DeleteFunc:  func(e event.DeleteEvent) bool { return hasCA(e.Object) },
	UpdateFunc:  func(e event.UpdateEvent) bool { return hasCA(e.ObjectOld) || hasCA(e.ObjectNew) },
	GenericFunc: func(e event.GenericEvent) bool { return hasCA(e.Object) },
}

func hasCA(o client.Object) bool {
	cm, ok := o.(*corev1.ConfigMap)
	if !ok {
		return false
	}
	_, ok = cm.Data[translate.CACertificateKey]
	return ok
}

// world is everything a pass lists.
type world struct {
	classes   gwv1.GatewayClassList
	configs   ciliumv2alpha1.CiliumGatewayClassConfigList
	gateways  gwv1.GatewayList
	http      gwv1.HTTPRouteList
	grpc      gwv1.GRPCRouteList
	tls       gwv1.TLSRouteList
	grants    gwv1.ReferenceGrantList
	policies  gwv1.BackendTLSPolicyList
	cms       corev1.ConfigMapList
	nss       corev1.NamespaceList
	services  corev1.ServiceList
	slices    discoveryv1.EndpointSliceList
	secrets   corev1.SecretList
	nodes     corev1.NodeList
	cecs      ciliumv2.CiliumEnvoyConfigList
	ccecs     ciliumv2.CiliumClusterwideEnvoyConfigList
	l7proxies nodesv1alpha1.L7ProxyList

	ingresses      networkingv1.IngressList
	ingressClasses networkingv1.IngressClassList
}

func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var w world
	lists := []client.ObjectList{&w.nss, &w.services, &w.slices, &w.secrets, &w.nodes, &w.cecs, &w.ccecs, &w.l7proxies}
	if r.GatewayAPI {
		lists = append(lists, &w.classes, &w.configs, &w.gateways, &w.http, &w.grants, &w.cms)
	}
	if r.GRPCRoutes {
		lists = append(lists, &w.grpc)
	}
	if r.TLSRoutes {
		lists = append(lists, &w.tls)
	}
	if r.BackendTLSPolicies {
		lists = append(lists, &w.policies)
	}
	if r.Ingress != nil {
		lists = append(lists, &w.ingresses, &w.ingressClasses)
	}
	if err := p.ListAll(ctx, lists...); err != nil {
		return err
	}
	in := translate.Input{
		Classes: w.classes.Items, ClassConfigs: w.configs.Items, Gateways: live(w.gateways.Items), HTTPRoutes: w.http.Items, GRPCRoutes: w.grpc.Items, TLSRoutes: w.tls.Items,
		ReferenceGrants: w.grants.Items, BackendTLSPolicies: w.policies.Items, ConfigMaps: w.cms.Items, Namespaces: w.nss.Items, Services: w.services.Items,
		EndpointSlices: w.slices.Items, Secrets: w.secrets.Items,
		Ingresses: w.ingresses.Items, IngressClasses: w.ingressClasses.Items,
	}
	out := translate.Translate(in)
	gateways := index(w.gateways.Items)

	// Every load balancer this pass wants: one per accepted Gateway, one
	// per dedicated Ingress, and the shared Ingress one.
	var frontends []*frontend
	gatewayFrontends := map[types.NamespacedName]*frontend{}
	for _, g := range out.Gateways {
		if g.Config != nil {
			fe := gatewayFrontend(gateways[g.Key], g.Config, g.Service)
			fe.hostNetwork = r.HostNetwork != nil
			frontends = append(frontends, &fe)
			gatewayFrontends[g.Key] = &fe
		}
	}
	var ingressOut translate.IngressOutput
	if r.Ingress != nil {
		ingressOut = translate.TranslateIngresses(in, *r.Ingress)
		for _, f := range ingressOut.Frontends {
			fe := ingressFrontend(f)
			frontends = append(frontends, &fe)
		}
	}
	wantedPorts := map[types.NamespacedName][]int32{}
	var onHosts []*frontend
	for _, fe := range frontends {
		if fe.hostNetwork {
			onHosts = append(onHosts, fe)
		} else {
			wantedPorts[fe.key] = fe.ports()
		}
	}
	ports, portErrs := r.ports.plan(w.services.Items, wantedPorts)
	var hostAddresses []string
	if r.HostNetwork != nil {
		owners := map[types.NamespacedName]*gwv1.Gateway{}
		for k, fe := range gatewayFrontends {
			owners[fe.key] = gateways[k]
		}
		hp, herrs := hostPorts(onHosts, owners, r.ProxyPortFirst, r.ProxyPortLast)
		maps.Copy(ports, hp)
		maps.Copy(portErrs, herrs)
		hostAddresses = r.HostNetwork.hostAddresses(w.nodes.Items)
	}
	acks := ackIndex(w.l7proxies.Items)
	cecs := index(w.cecs.Items)
	services := index(w.services.Items)
	slicesByName := index(w.slices.Items)

	var nodeAddresses []string
	for i := range w.nodes.Items {
		if ip := internalIPv4(&w.nodes.Items[i]); ip != "" {
			nodeAddresses = append(nodeAddresses, ip)
		}
	}
	slices.Sort(nodeAddresses)
	wantSecrets := map[string]*corev1.Secret{}
	// The generated configs, each with the nodes that serve it (nil: all).
	generatedCECs := map[types.NamespacedName]*HostNetwork{}
	states := map[types.NamespacedName]frontendState{}
	var proxied []*corev1.Service
	for _, fe := range frontends {
		generatedCECs[fe.envoyConfig] = nil
		if fe.hostNetwork {
			generatedCECs[fe.envoyConfig] = r.HostNetwork
		} else if s := services[fe.key]; s != nil && fe.ours(s) {
			proxied = append(proxied, s)
		}
		cur := current{service: services[fe.key], slice: slicesByName[fe.key], envoyConfig: cecs[fe.envoyConfig]}
		states[fe.key] = frontendState{
			built:         r.writeFrontend(p, fe, ports, portErrs[fe.key], cur, w.nodes.Items, wantSecrets),
			service:       cur.service,
			acks:          acks.of(configRef(cur.envoyConfig), cur.envoyConfig),
			nodeAddresses: nodeAddresses,
			hostNetwork:   fe.hostNetwork,
			hostAddresses: hostAddresses,
		}
	}
	for _, g := range out.Gateways {
		gw := gateways[g.Key]
		st := gatewayStatus{result: g}
		if fe := gatewayFrontends[g.Key]; fe != nil {
			st.frontendState = states[fe.key]
		}
		p.Write(statusWrite(p, gw, func(o *gwv1.Gateway) { setGatewayStatus(o, st) }))
	}
	if r.Ingress != nil {
		r.ingressStatuses(p, w.ingresses.Items, ingressOut, states)
		want := map[types.NamespacedName]bool{}
		for _, fe := range frontends {
			want[fe.key], want[fe.envoyConfig] = true, true
		}
		staleIngressObjects(p, r.Client, w.services.Items, want)
		staleIngressObjects(p, r.Client, w.slices.Items, want)
		staleIngressObjects(p, r.Client, w.cecs.Items, want)
	}
	r.secretCopies(p, w.secrets.Items, wantSecrets)
	p.Write(l7Proxies.Writes(r.Client, nodeobjects.Ptrs(w.l7proxies.Items), desiredL7Proxies(w.nodes.Items, w.cecs.Items, w.ccecs.Items, generatedCECs, proxyFrontends(proxied)))...)

	for i := range w.classes.Items {
		c := &w.classes.Items[i]
		if conds, ours := out.Classes[c.Name]; ours {
			p.Write(statusWrite(p, c, func(o *gwv1.GatewayClass) {
				o.Status.Conditions = mergeConditions(o.Status.Conditions, conds)
				o.Status.SupportedFeatures = translate.SupportedFeatures()
			}))
		}
	}
	for i := range w.configs.Items {
		c := &w.configs.Items[i]
		conds := out.ClassConfigs[keyOf(c)]
		p.Write(statusWrite(p, c, func(o *ciliumv2alpha1.CiliumGatewayClassConfig) {
			o.Status.Conditions = mergeConditions(o.Status.Conditions, conds)
		}))
	}
	for i := range w.policies.Items {
		pol := &w.policies.Items[i]
		ours := out.BackendTLSPolicies[keyOf(pol)]
		p.Write(statusWrite(p, pol, func(o *gwv1.BackendTLSPolicy) { o.Status.Ancestors = mergeAncestors(o.Status.Ancestors, ours) }))
	}
	routeStatuses(p, out, "HTTPRoute", w.http.Items, func(o *gwv1.HTTPRoute) *[]gwv1.RouteParentStatus { return &o.Status.Parents })
	routeStatuses(p, out, "GRPCRoute", w.grpc.Items, func(o *gwv1.GRPCRoute) *[]gwv1.RouteParentStatus { return &o.Status.Parents })
	routeStatuses(p, out, "TLSRoute", w.tls.Items, func(o *gwv1.TLSRoute) *[]gwv1.RouteParentStatus { return &o.Status.Parents })
	for i := range w.cecs.Items {
		c := &w.cecs.Items[i]
		st := envoyConfigReady(c.Generation, &c.Spec, acks.of(configRef(c), c))
		p.Write(statusWrite(p, c, func(o *ciliumv2.CiliumEnvoyConfig) { setEnvoyConfigStatus(&o.Status, o.Generation, st) }))
	}
	for i := range w.ccecs.Items {
		c := &w.ccecs.Items[i]
		ref := nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumClusterwideEnvoyConfig", Name: c.Name}
		st := envoyConfigReady(c.Generation, &c.Spec, acks.ofRef(ref, c.Generation))
		p.Write(statusWrite(p, c, func(o *ciliumv2.CiliumClusterwideEnvoyConfig) { setEnvoyConfigStatus(&o.Status, o.Generation, st) }))
	}
	return nil
}

// secretCopies writes the wanted certificate copies and deletes the rest
// of this controller's copies.
func (r *Reconciler) secretCopies(p *passes.Pass, secrets []corev1.Secret, want map[string]*corev1.Secret) {
	have := map[string]*corev1.Secret{}
	for i := range secrets {
		s := &secrets[i]
		if s.Namespace == r.SecretsNamespace && s.Labels[ManagedByLabel] == ManagedByValue {
			have[s.Name] = s
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		cur, ok := have[name]
		switch {
		case !ok:
			p.Write(create(r.Client, want[name]))
		case !sameSecret(cur, want[name]):
			next := cur.DeepCopy()
			next.Labels, next.Type, next.Data = want[name].Labels, want[name].Type, want[name].Data
			p.Write(update(r.Client, next))
		}
	}
	for name, s := range have {
		if want[name] == nil {
			p.Write(remove(r.Client, s))
		}
	}
}

// proxyFrontends lists the IPv4 load-balancer addresses of the generated
// Services, each port with the proxy port behind it (the Service's
// targetPort), sorted: every node takes these connections into its own
// proxy when they reach it. IPv6 addresses are left to the Service: the
// proxies listen on 0.0.0.0.
func proxyFrontends(services []*corev1.Service) []nodesv1alpha1.L7Frontend {
	var out []nodesv1alpha1.L7Frontend
	for _, s := range services {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err != nil || !a.Is4() {
				continue
			}
			for _, sp := range s.Spec.Ports {
				if (sp.Protocol != corev1.ProtocolTCP && sp.Protocol != "") || sp.TargetPort.IntVal <= 0 {
					continue
				}
				out = append(out, nodesv1alpha1.L7Frontend{Address: ing.IP, Port: sp.Port, ProxyPort: sp.TargetPort.IntVal})
			}
		}
	}
	slices.SortFunc(out, func(a, b nodesv1alpha1.L7Frontend) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// desiredL7Proxies gives every node the configs whose node selector
// matches it (the generated ones, maybe not created yet, go to all, or in
// host network mode to the selected nodes) and every frontend.
func desiredL7Proxies(nodes []corev1.Node, cecs []ciliumv2.CiliumEnvoyConfig, ccecs []ciliumv2.CiliumClusterwideEnvoyConfig,
	generated map[types.NamespacedName]*HostNetwork, frontends []nodesv1alpha1.L7Frontend) map[string]nodesv1alpha1.L7ProxySpec {
	out := map[string]nodesv1alpha1.L7ProxySpec{}
	for i := range nodes {
		n := &nodes[i]
		if n.DeletionTimestamp != nil {
			continue
		}
		seen := map[nodesv1alpha1.EnvoyConfigRef]bool{}
		var refs []nodesv1alpha1.EnvoyConfigRef
		add := func(ref nodesv1alpha1.EnvoyConfigRef) {
			if !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
			}
		}
		for k, hosts := range generated {
			if hosts == nil || hosts.selects(n) {
				add(nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: k.Namespace, Name: k.Name})
			}
		}
		for j := range cecs {
			if _, ours := generated[keyOf(&cecs[j])]; !ours && selects(cecs[j].Spec.NodeSelector, n) {
				add(configRef(&cecs[j]))
			}
		}
		for j := range ccecs {
			if selects(ccecs[j].Spec.NodeSelector, n) {
				add(nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumClusterwideEnvoyConfig", Name: ccecs[j].Name})
			}
		}
		slices.SortFunc(refs, func(a, b nodesv1alpha1.EnvoyConfigRef) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		out[n.Name] = nodesv1alpha1.L7ProxySpec{Configs: refs, Frontends: frontends}
	}
	return out
}

func selects(sel *metav1.LabelSelector, n *corev1.Node) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(n.Labels))
}

func configRef(c *ciliumv2.CiliumEnvoyConfig) nodesv1alpha1.EnvoyConfigRef {
	if c == nil {
		return nodesv1alpha1.EnvoyConfigRef{}
	}
	return nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: c.Namespace, Name: c.Name}
}

// index maps objects by namespace/name.
func index[T any, P interface {
	*T
	client.Object
}](items []T) map[types.NamespacedName]P {
	out := make(map[types.NamespacedName]P, len(items))
	for i := range items {
		out[keyOf(P(&items[i]))] = P(&items[i])
	}
	return out
}

func keyOf(o metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}

// cutKey splits "namespace/name".
func cutKey(s string) (namespace, name string) {
	namespace, name, _ = strings.Cut(s, "/")
	return namespace, name
}

func sortedKeys(m map[types.NamespacedName][]int32) []types.NamespacedName {
	return slices.SortedFunc(maps.Keys(m), func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
}

// live drops Gateways being deleted: their objects go with them.
func live(gws []gwv1.Gateway) []gwv1.Gateway {
	var out []gwv1.Gateway
	for _, g := range gws {
		if g.DeletionTimestamp == nil {
			out = append(out, g)
		}
	}
	return out
}

func create(c client.Client, o client.Object) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
		}
		return nil
	}
}

func update(c client.Client, o client.Object) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := c.Update(ctx, o); err != nil {
			return fmt.Errorf("updating %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
		}
		return nil
	}
}

func remove(c client.Client, o client.Object) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := client.IgnoreNotFound(c.Delete(ctx, o, client.Preconditions{UID: new(o.GetUID())})); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
		}
		return nil
	}
}

// routeStatuses adds the status writes of routes of one kind: this
// controller's parents replaced, other controllers' kept.
func routeStatuses[T any, P interface {
	*T
	client.Object
}](p *passes.Pass, out translate.Output, kind string, routes []T, parents func(P) *[]gwv1.RouteParentStatus) {
	for i := range routes {
		rt := P(&routes[i])
		ours := out.RouteParents[translate.RouteKey{Kind: kind, NamespacedName: keyOf(rt)}]
		p.Write(statusWrite(p, rt, func(o P) { *parents(o) = mergeParents(*parents(o), ours) }))
	}
}

// statusWrite patches o's status with mutate (nothing when it changes
// nothing).
func statusWrite[T client.Object](p *passes.Pass, o T, mutate func(T)) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := p.Status.Patch(ctx, o, func(c client.Object) { mutate(c.(T)) }); err != nil {
			return fmt.Errorf("status of %T %s: %w", o, keyOf(o), err)
		}
		return nil
	}
}
