// Package reconciler is the BGP controller's reconciler: from the
// CiliumBGPClusterConfigs, Nodes, CiliumBGPNodeConfigOverrides and
// CiliumBGPPeerConfigs it writes one CiliumBGPNodeConfig per selected node,
// owned by the cluster config it comes from, and from the nodes' reports on
// those it writes the status of the cluster and peer configs: the seed
// system's conditions, and how many of their sessions are up.
//
// Legacy CiliumBGPPeeringPolicies are not its business: a node selected by
// a policy and a cluster config still gets its node config, and the node
// follows the policy (B55).
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/bgp/planner"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// Secrets are read in --secret-namespace only, through a Role the chart
// renders there (templates/bgp.yaml); a marker would fix the namespace at
// generation time.
//
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumbgpclusterconfigs;ciliumbgppeerconfigs;ciliumbgpnodeconfigoverrides,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumbgpclusterconfigs/status;ciliumbgppeerconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumbgpnodeconfigs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ManagedBy is the managed-by label value of the node configs it writes.
const ManagedBy = "plexus-bgp"

var nodeConfigs = nodeobjects.Kind[ciliumv2.CiliumBGPNodeConfig, ciliumv2.CiliumBGPNodeSpec]{
	Name:      "CiliumBGPNodeConfig",
	ManagedBy: ManagedBy,
	New:       func() *ciliumv2.CiliumBGPNodeConfig { return &ciliumv2.CiliumBGPNodeConfig{} },
	Spec:      func(c *ciliumv2.CiliumBGPNodeConfig) *ciliumv2.CiliumBGPNodeSpec { return &c.Spec },
	Object:    func(c *ciliumv2.CiliumBGPNodeConfig) client.Object { return c },
}

// Reconciler keeps the node configs and the cluster and peer configs'
// status current.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// SecretNamespace holds the Secrets that authSecretRef names.
	SecretNamespace string
	// RouterIDMode is planner.RouterIDDefault or planner.RouterIDIPPool;
	// RouterIDPool is the IPv4 pool of the latter.
	RouterIDMode string
	RouterIDPool netip.Prefix
	Passes       passes.Settings

	runner passes.Runner
}

// Validate checks the router ID settings.
func (r *Reconciler) Validate() error {
	switch r.RouterIDMode {
	case planner.RouterIDDefault:
		return nil
	case planner.RouterIDIPPool:
		if !r.RouterIDPool.IsValid() {
			return fmt.Errorf("router ID mode %s needs an IPv4 pool such as 10.0.0.0/24", planner.RouterIDIPPool)
		}
		if !r.RouterIDPool.Addr().Is4() {
			return fmt.Errorf("router ID mode %s needs an IPv4 pool such as 10.0.0.0/24, not %s", planner.RouterIDIPPool, r.RouterIDPool)
		}
		return nil
	}
	return fmt.Errorf("router ID mode %q: want %s or %s", r.RouterIDMode, planner.RouterIDDefault, planner.RouterIDIPPool)
}

// SetupWithManager registers the reconciler. The manager's cache must come
// from CacheOptions(r.SecretNamespace).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil || r.SecretNamespace == "" {
		return errors.New("bgp: Client, Recorder and SecretNamespace must be set")
	}
	if r.RouterIDMode == "" {
		r.RouterIDMode = planner.RouterIDDefault
	}
	if err := r.Validate(); err != nil {
		return err
	}
	r.runner = passes.Runner{Name: "bgp", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr,
		passes.For(&ciliumv2.CiliumBGPClusterConfig{}), passes.For(&ciliumv2.CiliumBGPPeerConfig{}),
		passes.For(&ciliumv2.CiliumBGPNodeConfigOverride{}), passes.For(&ciliumv2.CiliumBGPNodeConfig{}),
		passes.For(&corev1.Node{}, nodeChanged), passes.For(&corev1.Secret{}))
}

// decide reads everything, plans, and adds the writes of what changed.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		clusterConfigs ciliumv2.CiliumBGPClusterConfigList
		peerConfigs    ciliumv2.CiliumBGPPeerConfigList
		overrides      ciliumv2.CiliumBGPNodeConfigOverrideList
		current        ciliumv2.CiliumBGPNodeConfigList
		nodes          corev1.NodeList
		secrets        corev1.SecretList
	)
	if err := p.ListAll(ctx, &clusterConfigs, &peerConfigs, &overrides, &current, &nodes); err != nil {
		return err
	}
	if err := p.List(ctx, &secrets, client.InNamespace(r.SecretNamespace)); err != nil {
		return err
	}

	in := planner.Input{
		Overrides:        map[string]ciliumv2.CiliumBGPNodeConfigOverrideSpec{},
		PeerConfigs:      map[string]bool{},
		RouterIDMode:     r.RouterIDMode,
		RouterIDPool:     r.RouterIDPool,
		CurrentRouterIDs: currentRouterIDs(current.Items),
	}
	selectorErrs := map[string]error{}
	byName := map[string]*ciliumv2.CiliumBGPClusterConfig{}
	for i := range clusterConfigs.Items {
		c := &clusterConfigs.Items[i]
		if c.DeletionTimestamp != nil {
			continue // its node configs go with it
		}
		cc, err := toClusterConfig(c)
		if err != nil {
			selectorErrs[c.Name] = err
		}
		in.Configs = append(in.Configs, cc)
		byName[c.Name] = c
	}
	for i := range nodes.Items {
		if nodes.Items[i].DeletionTimestamp == nil {
			in.Nodes = append(in.Nodes, toNode(&nodes.Items[i]))
		}
	}
	for i := range overrides.Items {
		in.Overrides[overrides.Items[i].Name] = overrides.Items[i].Spec
	}
	for i := range peerConfigs.Items {
		if peerConfigs.Items[i].DeletionTimestamp == nil {
			in.PeerConfigs[peerConfigs.Items[i].Name] = true
		}
	}
	plan := planner.Decide(in)

	currentByName := map[string]*ciliumv2.CiliumBGPNodeConfig{}
	for i := range current.Items {
		currentByName[current.Items[i].Name] = &current.Items[i]
	}
	desired := map[string]nodeobjects.Owned[ciliumv2.CiliumBGPNodeSpec]{}
	var views []nodeView
	problems := map[string][]string{} // cluster config → its nodes' problems
	for _, name := range slices.Sorted(maps.Keys(plan.Nodes)) {
		nr := plan.Nodes[name]
		desired[name] = nodeobjects.Owned[ciliumv2.CiliumBGPNodeSpec]{Spec: nr.Spec,
			Owners: []metav1.OwnerReference{ownerReference(byName[nr.Config])}}
		views = append(views, nodeView{name: name, desired: nr.Spec, current: currentByName[name]})
		for _, p := range nr.Problems {
			problems[nr.Config] = append(problems[nr.Config], name+": "+p)
		}
	}
	p.Write(nodeConfigs.WritesOwned(r.Client, nodeobjects.Ptrs(current.Items), desired)...)

	for _, c := range byName {
		info := clusterInfo{result: plan.Configs[c.Name], selectorErr: selectorErrs[c.Name], problems: problems[c.Name],
			sessions: summarize(viewsOf(views, plan.Configs[c.Name].Nodes), func(ciliumv2.CiliumBGPNodePeer) bool { return true })}
		p.Write(r.statusWrite(p.Status, c, func(o client.Object) []metav1.Condition {
			return o.(*ciliumv2.CiliumBGPClusterConfig).Status.Conditions
		}, func(o client.Object) { setClusterStatus(o.(*ciliumv2.CiliumBGPClusterConfig), info) }))
	}
	secretState := map[string]authSecret{}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if _, ok := s.Data[ciliumv2.BGPAuthSecretKey]; ok {
			secretState[s.Name] = secretWithPassword
		} else {
			secretState[s.Name] = secretWithoutPassword
		}
	}
	for i := range peerConfigs.Items {
		pc := &peerConfigs.Items[i]
		if pc.DeletionTimestamp != nil {
			continue
		}
		var secret authSecret
		if pc.Spec.AuthSecretRef != nil {
			secret = secretState[*pc.Spec.AuthSecretRef]
		}
		s := summarize(views, func(peer ciliumv2.CiliumBGPNodePeer) bool {
			return peer.PeerConfigRef != nil && peer.PeerConfigRef.Name == pc.Name
		})
		p.Write(r.statusWrite(p.Status, pc, func(o client.Object) []metav1.Condition {
			return o.(*ciliumv2.CiliumBGPPeerConfig).Status.Conditions
		}, func(o client.Object) { setPeerStatus(o.(*ciliumv2.CiliumBGPPeerConfig), secret, r.SecretNamespace, s) }))
	}
	return nil
}

// viewsOf picks the views of the named nodes (both sorted).
func viewsOf(views []nodeView, names []string) []nodeView {
	var out []nodeView
	for _, v := range views {
		if _, found := slices.BinarySearch(names, v.name); found {
			out = append(out, v)
		}
	}
	return out
}

// statusWrite writes an object's status when it changed. A Ready that turns
// not True, or changes reason, is a Warning Event and a log line, once;
// waiting for nodes to report is no problem, and a list of sessions down
// changing as they come up is not news.
func (r *Reconciler) statusWrite(status *statuswrite.Writer, cached client.Object, conds func(client.Object) []metav1.Condition, mutate func(client.Object)) func(context.Context) error {
	return func(ctx context.Context) error {
		before := meta.FindStatusCondition(conds(cached), conditions.TypeReady)
		var after client.Object
		wrote, err := status.Patch(ctx, cached, func(o client.Object) {
			after = o
			mutate(o)
		})
		if err != nil {
			return fmt.Errorf("status of %s %s: %w", kindOf(cached), cached.GetName(), err)
		}
		if !wrote {
			return nil
		}
		ready := meta.FindStatusCondition(conds(after), conditions.TypeReady)
		if ready == nil || ready.Status == metav1.ConditionTrue || ready.Reason == ReasonWaitingForNodes {
			return nil
		}
		if before != nil && before.Reason == ready.Reason && (before.Message == ready.Message || ready.Reason == ReasonSessionsDown) {
			return nil
		}
		log.FromContext(ctx).Info("BGP configuration not ready", "kind", kindOf(cached), "object", cached.GetName(),
			"reason", ready.Reason, "message", ready.Message)
		r.Recorder.Eventf(cached, nil, corev1.EventTypeWarning, ready.Reason, "Reconcile", "%s", ready.Message)
		return nil
	}
}

// kindOf names the kind of the objects whose status this controller writes
// (typed objects from the cache carry no TypeMeta).
func kindOf(o client.Object) string {
	switch o.(type) {
	case *ciliumv2.CiliumBGPClusterConfig:
		return "CiliumBGPClusterConfig"
	case *ciliumv2.CiliumBGPPeerConfig:
		return "CiliumBGPPeerConfig"
	}
	return fmt.Sprintf("%T", o)
}
