// Package controller is the egress gateway controller's reconciler: from the
// CiliumEgressGatewayPolicies, pods, namespaces and nodes it writes one
// Egress object per node that has sources or gateway duties, and from the
// nodes' reports it writes each policy's status: which node is the active
// gateway, which stand by, and why a policy does nothing.
package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/egressgateway/planner"
	"github.com/plexus-net/plexus/internal/heartbeat"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumegressgatewaypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumegressgatewaypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods;namespaces;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=egresses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ManagedBy is the managed-by label value of the Egress objects it writes.
const ManagedBy = "plexus-egressgateway"

var egresses = nodeobjects.Kind[nodesv1alpha1.Egress, nodesv1alpha1.EgressSpec]{
	Name:      "Egress",
	ManagedBy: ManagedBy,
	New:       func() *nodesv1alpha1.Egress { return &nodesv1alpha1.Egress{} },
	Spec:      func(e *nodesv1alpha1.Egress) *nodesv1alpha1.EgressSpec { return &e.Spec },
	Object:    func(e *nodesv1alpha1.Egress) client.Object { return e },
}

// Reconciler keeps the Egress objects and the policies' status current.
type Reconciler struct {
	Client          client.Client
	Recorder        events.EventRecorder
	Workers         int
	MinPassInterval time.Duration

	status statuswrite.Writer
	pacer  passes.Pacer
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("egressgateway: Client and Recorder must be set")
	}
	r.status.Client = r.Client
	r.pacer.MinInterval = r.MinPassInterval
	toWorld := passes.ToWorld("egressgateway")
	return ctrl.NewControllerManagedBy(mgr).
		Named("egressgateway").
		Watches(&ciliumv2.CiliumEgressGatewayPolicy{}, toWorld).
		Watches(&corev1.Pod{}, toWorld).
		Watches(&corev1.Namespace{}, toWorld).
		Watches(&corev1.Node{}, toWorld).
		Watches(&ciliumv2.CiliumNode{}, toWorld).
		Watches(&nodesv1alpha1.Egress{}, toWorld).
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
		policies    ciliumv2.CiliumEgressGatewayPolicyList
		pods        corev1.PodList
		namespaces  corev1.NamespaceList
		nodes       corev1.NodeList
		ciliumNodes ciliumv2.CiliumNodeList
		current     nodesv1alpha1.EgressList
	)
	for _, l := range []client.ObjectList{&policies, &pods, &namespaces, &nodes, &ciliumNodes, &current} {
		if err := r.Client.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, err
		}
	}
	var pols []planner.Policy
	for i := range policies.Items {
		pols = append(pols, toPolicy(&policies.Items[i]))
	}
	var ps []planner.Pod
	for i := range pods.Items {
		if p, ok := toPod(&pods.Items[i]); ok {
			ps = append(ps, p)
		}
	}
	nsLabels := map[string]labels.Set{}
	for i := range namespaces.Items {
		nsLabels[namespaces.Items[i].Name] = labels.Set(namespaces.Items[i].Labels)
	}
	var ns []planner.Node
	for i := range nodes.Items {
		if nodes.Items[i].DeletionTimestamp == nil {
			ns = append(ns, toNode(&nodes.Items[i]))
		}
	}
	plan := planner.Decide(pols, ps, nsLabels, ns)
	cluster := clusterCIDRs(ns, ciliumNodes.Items)

	desired := map[string]nodesv1alpha1.EgressSpec{}
	for name, np := range plan.Nodes {
		desired[name] = desiredSpec(np, cluster)
	}
	writes := egresses.Writes(r.Client, nodeobjects.Ptrs(current.Items), desired)

	roles := reportedRoles(current.Items)
	live := map[types.UID]bool{}
	for i := range policies.Items {
		p := &policies.Items[i]
		live[p.UID] = true
		res := plan.Policies[p.Name]
		writes = append(writes, func(ctx context.Context) error {
			_, err := r.status.PatchReady(ctx, p, func(o client.Object) []metav1.Condition {
				return o.(*ciliumv2.CiliumEgressGatewayPolicy).Status.Conditions
			}, func(o client.Object) { setPolicyStatus(o.(*ciliumv2.CiliumEgressGatewayPolicy), res, roles) }, r.Recorder, "Reconcile")
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("status of CiliumEgressGatewayPolicy %s: %w", p.Name, err)
			}
			return nil
		})
	}
	r.pacer.Cost(time.Since(start))
	err := passes.RunAll(ctx, r.Workers, writes)
	r.status.Retain(func(uid types.UID) bool { return live[uid] })
	return ctrl.Result{}, err
}

// clusterCIDRs are the destinations never sent to a gateway: every node's
// addresses and every pod CIDR, merged, sorted.
func clusterCIDRs(nodes []planner.Node, cns []ciliumv2.CiliumNode) []string {
	var out []netip.Prefix
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	for _, n := range nodes {
		add(n.Address)
	}
	for i := range cns {
		for _, c := range cns[i].Spec.IPAM.PodCIDRs {
			add(c)
		}
		for _, a := range cns[i].Spec.IPAM.Pools.Allocated {
			for _, c := range a.CIDRs {
				add(c)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var strs []string
	for _, p := range slices.Compact(out) {
		strs = append(strs, p.String())
	}
	return strs
}

// roleKey names one node's role in one gateway of a policy.
type roleKey struct {
	policy  string
	gateway int32
	node    string
}

// reportedRoles are the roles the node plugins report. A node that was
// killed cannot clear its own report, so its roles count only while a peer
// still hears it (or it has no peer to ask).
func reportedRoles(items []nodesv1alpha1.Egress) map[roleKey]nodesv1alpha1.EgressGatewayState {
	views := map[string][]string{}
	peers := map[string][]string{}
	for i := range items {
		e := &items[i]
		views[e.Name] = e.Status.LivePeers
		for _, p := range e.Spec.Peers {
			peers[e.Name] = append(peers[e.Name], p.Node)
		}
	}
	credible := heartbeat.Credible(views, peers)
	out := map[roleKey]nodesv1alpha1.EgressGatewayState{}
	for i := range items {
		e := &items[i]
		if !credible[e.Name] {
			continue
		}
		for _, g := range e.Status.Gateways {
			out[roleKey{g.Policy, g.Gateway, e.Name}] = g
		}
	}
	return out
}
