// Package controller is the L2 announcer's reconciler: from the policies,
// Services, Nodes and EndpointSlices it writes one L2Announcement per
// candidate node, and from the nodes' reports it writes which node announces
// each Service's addresses. Elections happen between the node plugins, so a
// failover costs the API server one status write per affected node and
// Service, never a Lease per Service.
package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/l2announcer/planner"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/heartbeat"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliuml2announcementpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliuml2announcementpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l2announcements,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ManagedByLabel marks the L2Announcements this controller writes.
const (
	ManagedByLabel = nodeobjects.ManagedByLabel
	ManagedByValue = "plexus-l2announcer"
)

var l2Announcements = nodeobjects.Kind[nodesv1alpha1.L2Announcement, nodesv1alpha1.L2AnnouncementSpec]{
	Name:      "L2Announcement",
	ManagedBy: ManagedByValue,
	New:       func() *nodesv1alpha1.L2Announcement { return &nodesv1alpha1.L2Announcement{} },
	Spec:      func(a *nodesv1alpha1.L2Announcement) *nodesv1alpha1.L2AnnouncementSpec { return &a.Spec },
	Object:    func(a *nodesv1alpha1.L2Announcement) client.Object { return a },
}

// ptrs points at the elements of items.

// Reconciler keeps the L2Announcements and the status of policies and
// Services current.
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
		return errors.New("l2announcer: Client and Recorder must be set")
	}
	r.status.Client = r.Client
	r.pacer.MinInterval = r.MinPassInterval
	toWorld := passes.ToWorld("l2announcer")
	return ctrl.NewControllerManagedBy(mgr).
		Named("l2announcer").
		Watches(&ciliumv2alpha1.CiliumL2AnnouncementPolicy{}, toWorld).
		Watches(&corev1.Service{}, toWorld).
		Watches(&corev1.Node{}, toWorld).
		Watches(&discoveryv1.EndpointSlice{}, toWorld).
		Watches(&nodesv1alpha1.L2Announcement{}, toWorld).
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
		policies  ciliumv2alpha1.CiliumL2AnnouncementPolicyList
		services  corev1.ServiceList
		nodes     corev1.NodeList
		sliceList discoveryv1.EndpointSliceList
		current   nodesv1alpha1.L2AnnouncementList
	)
	for _, l := range []client.ObjectList{&policies, &services, &nodes, &sliceList, &current} {
		if err := r.Client.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, err
		}
	}
	var pols []planner.Policy
	byPolicy := map[string]planner.Policy{}
	for i := range policies.Items {
		p := toPolicy(&policies.Items[i])
		pols = append(pols, p)
		byPolicy[p.Name] = p
	}
	eps := readyEndpointNodes(sliceList.Items)
	var svcs []planner.Service
	for i := range services.Items {
		if services.Items[i].DeletionTimestamp == nil {
			svcs = append(svcs, toService(&services.Items[i], eps))
		}
	}
	var ns []planner.Node
	for i := range nodes.Items {
		if nodes.Items[i].DeletionTimestamp == nil {
			ns = append(ns, toNode(&nodes.Items[i]))
		}
	}
	plan := planner.Decide(pols, svcs, ns)

	// Who announces what, as the nodes report it. A node that was killed
	// cannot clear its own report, so a report counts only while some peer
	// still hears the node (or the node has no peer to ask).
	announcers := map[string][]announcer{}
	views, peers := map[string][]string{}, map[string][]string{}
	for i := range current.Items {
		a := &current.Items[i]
		views[a.Name] = a.Status.LivePeers
		for _, p := range a.Spec.Peers {
			peers[a.Name] = append(peers[a.Name], p.Node)
		}
	}
	credible := heartbeat.Credible(views, peers)
	for i := range current.Items {
		a := &current.Items[i]
		if plan.Nodes[a.Name] == nil || !credible[a.Name] {
			continue
		}
		for _, ann := range a.Status.Announcing {
			announcers[ann.IP] = append(announcers[ann.IP], announcer{Node: a.Name, Interfaces: ann.Interfaces})
		}
	}
	for ip := range announcers {
		slices.SortFunc(announcers[ip], func(a, b announcer) int { return strings.Compare(a.Node, b.Node) })
	}

	desired := map[string]nodesv1alpha1.L2AnnouncementSpec{}
	for name, np := range plan.Nodes {
		desired[name] = desiredSpec(np)
	}
	writes := l2Announcements.Writes(r.Client, nodeobjects.Ptrs(current.Items), desired)
	live := map[types.UID]bool{}
	for i := range policies.Items {
		p := &policies.Items[i]
		live[p.UID] = true
		writes = append(writes, r.policyWrite(p, byPolicy[p.Name], plan.Policies[p.Name]))
	}
	for i := range services.Items {
		s := &services.Items[i]
		res := plan.Services[s.Namespace+"/"+s.Name]
		switch {
		case res != nil && s.DeletionTimestamp == nil:
			live[s.UID] = true
			c := serviceCondition(res, announcers)
			writes = append(writes, r.statusWrite(s, func(o client.Object) {
				svc := o.(*corev1.Service)
				conditions.Set(&svc.Status.Conditions, svc.Generation, c)
			}))
		case hasCondition(s):
			live[s.UID] = true
			writes = append(writes, r.statusWrite(s, func(o client.Object) {
				svc := o.(*corev1.Service)
				conditions.Remove(&svc.Status.Conditions, ServiceConditionType)
			}))
		}
	}
	r.pacer.Cost(time.Since(start))
	err := passes.RunAll(ctx, r.Workers, writes)
	r.status.Retain(func(uid types.UID) bool { return live[uid] })
	return ctrl.Result{}, err
}

// policyWrite writes a policy's status and a Warning Event when it stops
// being Ready or the reason changes.
func (r *Reconciler) policyWrite(p *ciliumv2alpha1.CiliumL2AnnouncementPolicy, pol planner.Policy, res *planner.PolicyResult) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := r.status.PatchReady(ctx, p, func(o client.Object) []metav1.Condition {
			return o.(*ciliumv2alpha1.CiliumL2AnnouncementPolicy).Status.Conditions
		}, func(o client.Object) { setPolicyStatus(o.(*ciliumv2alpha1.CiliumL2AnnouncementPolicy), pol, res) }, r.Recorder, "Validate")
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("status of CiliumL2AnnouncementPolicy %s: %w", p.Name, err)
		}
		return nil
	}
}

func (r *Reconciler) statusWrite(obj client.Object, mutate func(client.Object)) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := r.status.Patch(ctx, obj, mutate); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("status of %T %s: %w", obj, obj.GetName(), err)
		}
		return nil
	}
}
