// Package controller is the BGP controller's reconciler: from the
// CiliumBGPClusterConfigs, Nodes, CiliumBGPNodeConfigOverrides and
// CiliumBGPPeerConfigs it writes one CiliumBGPNodeConfig per selected node,
// owned by the cluster config it comes from, and from the nodes' reports on
// those it writes the status of the cluster and peer configs: the seed
// system's conditions, and how many of their sessions are up.
//
// Legacy CiliumBGPPeeringPolicies are not its business: a node selected by
// a policy and a cluster config still gets its node config, and the node
// follows the policy (B55).
package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

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
	RouterIDMode    string
	RouterIDPool    netip.Prefix
	Workers         int
	MinPassInterval time.Duration

	status statuswrite.Writer
	pacer  passes.Pacer
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
	r.status.Client = r.Client
	r.pacer.MinInterval = r.MinPassInterval
	// The plan is whole-world: every event is the one global key.
	toWorld := passes.ToWorld("bgp")
	return ctrl.NewControllerManagedBy(mgr).
		Named("bgp").
		Watches(&ciliumv2.CiliumBGPClusterConfig{}, toWorld).
		Watches(&ciliumv2.CiliumBGPPeerConfig{}, toWorld).
		Watches(&ciliumv2.CiliumBGPNodeConfigOverride{}, toWorld).
		Watches(&ciliumv2.CiliumBGPNodeConfig{}, toWorld).
		Watches(&corev1.Node{}, toWorld, builder.WithPredicates(nodeChanged)).
		Watches(&corev1.Secret{}, toWorld).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// Reconcile reads everything, plans, and writes what changed.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	start := time.Now()
	if wait := r.pacer.Start(start); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var (
		clusterConfigs ciliumv2.CiliumBGPClusterConfigList
		peerConfigs    ciliumv2.CiliumBGPPeerConfigList
		overrides      ciliumv2.CiliumBGPNodeConfigOverrideList
		current        ciliumv2.CiliumBGPNodeConfigList
		nodes          corev1.NodeList
		secrets        corev1.SecretList
	)
	for _, l := range []client.ObjectList{&clusterConfigs, &peerConfigs, &overrides, &current, &nodes} {
		if err := r.Client.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.Client.List(ctx, &secrets, client.InNamespace(r.SecretNamespace), client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
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
	writes := nodeConfigs.WritesOwned(r.Client, nodeobjects.Ptrs(current.Items), desired)

	live := map[types.UID]bool{}
	for _, c := range byName {
		live[c.UID] = true
		info := clusterInfo{result: plan.Configs[c.Name], selectorErr: selectorErrs[c.Name], problems: problems[c.Name],
			sessions: summarize(viewsOf(views, plan.Configs[c.Name].Nodes), func(ciliumv2.CiliumBGPNodePeer) bool { return true })}
		writes = append(writes, r.statusWrite(c, func(o client.Object) []metav1.Condition {
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
		p := &peerConfigs.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		live[p.UID] = true
		var secret authSecret
		if p.Spec.AuthSecretRef != nil {
			secret = secretState[*p.Spec.AuthSecretRef]
		}
		s := summarize(views, func(peer ciliumv2.CiliumBGPNodePeer) bool {
			return peer.PeerConfigRef != nil && peer.PeerConfigRef.Name == p.Name
		})
		writes = append(writes, r.statusWrite(p, func(o client.Object) []metav1.Condition {
			return o.(*ciliumv2.CiliumBGPPeerConfig).Status.Conditions
		}, func(o client.Object) { setPeerStatus(o.(*ciliumv2.CiliumBGPPeerConfig), secret, r.SecretNamespace, s) }))
	}
	r.pacer.Cost(time.Since(start))
	err := passes.RunAll(ctx, r.Workers, writes)
	r.status.Retain(func(uid types.UID) bool { return live[uid] })
	return ctrl.Result{}, err
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
func (r *Reconciler) statusWrite(cached client.Object, conds func(client.Object) []metav1.Condition, mutate func(client.Object)) func(context.Context) error {
	return func(ctx context.Context) error {
		before := meta.FindStatusCondition(conds(cached), conditions.TypeReady)
		var after client.Object
		wrote, err := r.status.Patch(ctx, cached, func(o client.Object) {
			after = o
			mutate(o)
		})
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return nil // the watch event brings another pass
			}
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
