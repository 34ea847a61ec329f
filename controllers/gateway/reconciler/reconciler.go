// Package reconciler is the gateway controller: each pass reads the Gateway
// API objects, translates them (package translate) into Envoy resources
// (package envoy), and writes per Gateway a LoadBalancer Service, the
// EndpointSlice that sends its traffic to the node proxies, a
// CiliumEnvoyConfig holding its resources and copies of its certificates in
// the secrets namespace; per node an L7Proxy naming the configs that node
// serves; and the status of every Gateway API object it answers for.
// Programmed turns True only once every node's proxy has acknowledged the
// Gateway's configuration.
package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/envoy"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/envoyxds"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses;gateways;httproutes;grpcroutes;tlsroutes;referencegrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses/status;gateways/status;httproutes/status;grpcroutes/status;tlsroutes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumenvoyconfigs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumclusterwideenvoyconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumenvoyconfigs/status;ciliumclusterwideenvoyconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l7proxies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=cilium-secrets,resources=secrets,verbs=create;update;patch;delete
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
	// GRPCRoutes and TLSRoutes say whether their CRDs are installed.
	GRPCRoutes, TLSRoutes bool

	runner passes.Runner
	ports  proxyPorts
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil || r.SecretsNamespace == "" || r.ProxyPortFirst <= 0 || r.ProxyPortLast < r.ProxyPortFirst {
		return errors.New("gateway: Client, Recorder, SecretsNamespace and a proxy port range must be set")
	}
	r.ports = proxyPorts{First: r.ProxyPortFirst, Last: r.ProxyPortLast}
	r.runner = passes.Runner{Name: "gateway", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	watches := []passes.Watch{
		passes.For(&gwv1.GatewayClass{}), passes.For(&gwv1.Gateway{}), passes.For(&gwv1.HTTPRoute{}),
		passes.For(&gwv1.ReferenceGrant{}), passes.For(&corev1.Namespace{}), passes.For(&corev1.Service{}),
		passes.For(&discoveryv1.EndpointSlice{}), passes.For(&corev1.Secret{}), passes.For(&corev1.Node{}),
		passes.For(&ciliumv2.CiliumEnvoyConfig{}), passes.For(&ciliumv2.CiliumClusterwideEnvoyConfig{}),
		passes.For(&nodesv1alpha1.L7Proxy{}),
	}
	if r.GRPCRoutes {
		watches = append(watches, passes.For(&gwv1.GRPCRoute{}))
	}
	if r.TLSRoutes {
		watches = append(watches, passes.For(&gwv1.TLSRoute{}))
	}
	return r.runner.SetupWithManager(mgr, watches...)
}

// world is everything a pass lists.
type world struct {
	classes   gwv1.GatewayClassList
	gateways  gwv1.GatewayList
	http      gwv1.HTTPRouteList
	grpc      gwv1.GRPCRouteList
	tls       gwv1.TLSRouteList
	grants    gwv1.ReferenceGrantList
	nss       corev1.NamespaceList
	services  corev1.ServiceList
	slices    discoveryv1.EndpointSliceList
	secrets   corev1.SecretList
	nodes     corev1.NodeList
	cecs      ciliumv2.CiliumEnvoyConfigList
	ccecs     ciliumv2.CiliumClusterwideEnvoyConfigList
	l7proxies nodesv1alpha1.L7ProxyList
}

func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var w world
	lists := []client.ObjectList{&w.classes, &w.gateways, &w.http, &w.grants, &w.nss, &w.services, &w.slices,
		&w.secrets, &w.nodes, &w.cecs, &w.ccecs, &w.l7proxies}
	if r.GRPCRoutes {
		lists = append(lists, &w.grpc)
	}
	if r.TLSRoutes {
		lists = append(lists, &w.tls)
	}
	if err := p.ListAll(ctx, lists...); err != nil {
		return err
	}
	out := translate.Translate(translate.Input{
		Classes: w.classes.Items, Gateways: live(w.gateways.Items), HTTPRoutes: w.http.Items, GRPCRoutes: w.grpc.Items, TLSRoutes: w.tls.Items,
		ReferenceGrants: w.grants.Items, Namespaces: w.nss.Items, Services: w.services.Items,
		EndpointSlices: w.slices.Items, Secrets: w.secrets.Items,
	})

	gateways := map[types.NamespacedName]*gwv1.Gateway{}
	for i := range w.gateways.Items {
		gateways[keyOf(&w.gateways.Items[i])] = &w.gateways.Items[i]
	}
	wantedPorts := map[types.NamespacedName][]int32{}
	for _, g := range out.Gateways {
		if g.Config != nil {
			for _, port := range g.Config.Ports {
				wantedPorts[g.Key] = append(wantedPorts[g.Key], port.Port)
			}
		}
	}
	ports, portErrs := r.ports.plan(w.services.Items, wantedPorts)
	acks := ackIndex(w.l7proxies.Items)
	cecs := map[types.NamespacedName]*ciliumv2.CiliumEnvoyConfig{}
	for i := range w.cecs.Items {
		cecs[keyOf(&w.cecs.Items[i])] = &w.cecs.Items[i]
	}
	services := map[types.NamespacedName]*corev1.Service{}
	for i := range w.services.Items {
		services[keyOf(&w.services.Items[i])] = &w.services.Items[i]
	}
	slicesByName := map[types.NamespacedName]*discoveryv1.EndpointSlice{}
	for i := range w.slices.Items {
		slicesByName[keyOf(&w.slices.Items[i])] = &w.slices.Items[i]
	}

	wantSecrets := map[string]*corev1.Secret{}
	generatedCECs := map[types.NamespacedName]bool{}
	for _, g := range out.Gateways {
		gw := gateways[g.Key]
		st := gatewayStatus{result: g}
		if g.Config != nil {
			genKey := types.NamespacedName{Namespace: gw.Namespace, Name: GeneratedName(gw.Name)}
			generatedCECs[genKey] = true
			st.built = r.gatewayObjects(p, gw, g, ports, portErrs[g.Key], services[genKey], slicesByName[genKey], cecs[genKey], w.nodes.Items, wantSecrets)
			st.service = services[genKey]
			st.acks = acks.of(configRef(cecs[genKey]), cecs[genKey])
		}
		p.Write(statusWrite(p, gw, func(o *gwv1.Gateway) { setGatewayStatus(o, st) }))
	}
	r.secretCopies(p, w.secrets.Items, wantSecrets)
	p.Write(l7Proxies.Writes(r.Client, nodeobjects.Ptrs(w.l7proxies.Items), desiredL7Proxies(w.nodes.Items, w.cecs.Items, w.ccecs.Items, generatedCECs))...)

	for i := range w.classes.Items {
		c := &w.classes.Items[i]
		if conds, ours := out.Classes[c.Name]; ours {
			p.Write(statusWrite(p, c, func(o *gwv1.GatewayClass) { o.Status.Conditions = mergeConditions(o.Status.Conditions, conds) }))
		}
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

// gatewayObjects adds the writes of one accepted Gateway's Service,
// EndpointSlice and CiliumEnvoyConfig and notes the Secrets it needs. It
// returns what went wrong, for the Gateway's status (nil: all as wanted).
func (r *Reconciler) gatewayObjects(p *passes.Pass, gw *gwv1.Gateway, g translate.GatewayResult, ports map[gatewayPort]int32,
	portErr error, curSvc *corev1.Service, curSlice *discoveryv1.EndpointSlice, curCEC *ciliumv2.CiliumEnvoyConfig,
	nodes []corev1.Node, wantSecrets map[string]*corev1.Secret) *builtGateway {
	b := &builtGateway{}
	if portErr != nil {
		b.err = portErr
		return b
	}
	proxyPort := func(port int32) (uint32, bool) {
		pp, ok := ports[gatewayPort{g.Key, port}]
		return uint32(pp), ok //nolint:gosec // a port number
	}
	res, err := envoy.Build(*g.Config, envoy.Options{
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
	for _, s := range g.Config.Secrets {
		ns, name := cutKey(s.Name)
		c := desiredSecretCopy(r.SecretsNamespace, ns, name, s.Certificate, s.Key)
		wantSecrets[c.Name] = c
	}
	svc, warning := desiredService(gw, g.Config, proxyPort)
	b.warning = warning
	switch {
	case curSvc == nil:
		p.Write(create(r.Client, svc))
	case !metav1.IsControlledBy(curSvc, gw):
		b.err = fmt.Errorf("Service %s/%s exists and is not this Gateway's: rename or delete it", curSvc.Namespace, curSvc.Name)
		return b
	default:
		if next := applyService(curSvc, svc); next != nil {
			p.Write(update(r.Client, next))
		}
	}
	es := desiredEndpointSlice(gw, svc, nodes)
	switch {
	case curSlice == nil:
		p.Write(create(r.Client, es))
	case !sameEndpointSlice(curSlice, es):
		next := curSlice.DeepCopy()
		next.Labels, next.OwnerReferences, next.AddressType, next.Ports, next.Endpoints = es.Labels, es.OwnerReferences, es.AddressType, es.Ports, es.Endpoints
		p.Write(update(r.Client, next))
	}
	cec, err := desiredEnvoyConfig(gw, res)
	if err != nil {
		b.err = err
		return b
	}
	switch {
	case curCEC == nil:
		p.Write(create(r.Client, cec))
		b.pending = true
	case !metav1.IsControlledBy(curCEC, gw):
		b.err = fmt.Errorf("CiliumEnvoyConfig %s/%s exists and is not this Gateway's: rename or delete it", curCEC.Namespace, curCEC.Name)
	case !sameResources(curCEC.Spec.Resources, cec.Spec.Resources) || curCEC.Spec.NodeSelector != nil || !maps.Equal(curCEC.Labels, cec.Labels):
		next := curCEC.DeepCopy()
		next.Labels, next.Spec = cec.Labels, cec.Spec
		p.Write(update(r.Client, next))
		b.pending = true
	}
	return b
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

// desiredL7Proxies gives every node the configs whose node selector
// matches it; the generated ones (maybe not created yet) go to all.
func desiredL7Proxies(nodes []corev1.Node, cecs []ciliumv2.CiliumEnvoyConfig, ccecs []ciliumv2.CiliumClusterwideEnvoyConfig,
	generated map[types.NamespacedName]bool) map[string]nodesv1alpha1.L7ProxySpec {
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
		for k := range generated {
			add(nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: k.Namespace, Name: k.Name})
		}
		for j := range cecs {
			if selects(cecs[j].Spec.NodeSelector, n) {
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
		out[n.Name] = nodesv1alpha1.L7ProxySpec{Configs: refs}
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
