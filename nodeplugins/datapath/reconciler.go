// Package datapath is the netlink part of Plexus's node datapath plugin: it
// watches every CiliumNode, computes this node's routes to the others' pod
// CIDRs (package routes), makes the kernel match by diff (package kernel), and
// reports the outcome as the DatapathReady condition on its own CiliumNode.
package datapath

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/nodeplugins/datapath/kernel"
	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes/status,verbs=patch

const (
	// FieldOwner is the server-side apply field manager of the condition,
	// so it merges with the IPAM controller's conditions on the same node.
	FieldOwner = "plexus-datapath"

	// ConditionDatapathReady is True when the kernel holds a route to every
	// other node's pod CIDRs that could be routed.
	ConditionDatapathReady = "DatapathReady"

	// ReasonProgrammed means every route is in the kernel.
	ReasonProgrammed = "Programmed"
	// ReasonRouteConflict means a route Plexus did not make holds a pod CIDR.
	ReasonRouteConflict = "RouteConflict"
	// ReasonProgramFailed means the kernel refused a change.
	ReasonProgramFailed = "ProgrammingFailed"
	// ReasonNodeNotRoutable means a node has no address to route its pods to.
	ReasonNodeNotRoutable = "NodeNotRoutable"
)

// Applier makes the kernel match a desired state (kernel.Kernel).
type Applier interface {
	Apply(routes.Desired) (kernel.Changes, error)
}

// Reconciler programs one node. Every event leads to the same full pass:
// the decision depends on all nodes together.
type Reconciler struct {
	// Client reads CiliumNodes from the cache and applies the condition.
	Client   client.Client
	NodeName string
	Mode     routes.Mode
	Kernel   Applier
	// Resync is how often a pass runs without events, to repair drift
	// (a route someone deleted).
	Resync time.Duration
	// Debounce collects the events of a burst (a node joining updates its
	// CiliumNode several times) into one pass.
	Debounce time.Duration
}

// passKey is the one work item: all events collapse into it.
var passKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "datapath"}}

// SetupWithManager watches CiliumNodes; status-only updates (the conditions
// this and other controllers write) do not trigger a pass.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) { q.AddAfter(passKey, r.Debounce) }
	h := handler.TypedFuncs[*ciliumv2.CiliumNode, reconcile.Request]{
		CreateFunc: func(_ context.Context, _ event.TypedCreateEvent[*ciliumv2.CiliumNode], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q)
		},
		UpdateFunc: func(_ context.Context, _ event.TypedUpdateEvent[*ciliumv2.CiliumNode], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q)
		},
		DeleteFunc: func(_ context.Context, _ event.TypedDeleteEvent[*ciliumv2.CiliumNode], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q)
		},
		GenericFunc: func(_ context.Context, _ event.TypedGenericEvent[*ciliumv2.CiliumNode], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q)
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("datapath").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		WatchesRawSource(source.Kind(mgr.GetCache(), &ciliumv2.CiliumNode{}, h,
			predicate.TypedGenerationChangedPredicate[*ciliumv2.CiliumNode]{})).
		Complete(r)
}

// Reconcile runs one full pass: list, compute, apply, report.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	logger := log.FromContext(ctx)
	var list ciliumv2.CiliumNodeList
	if err := r.Client.List(ctx, &list); err != nil {
		return reconcile.Result{}, err
	}
	var own *ciliumv2.CiliumNode
	for i := range list.Items {
		if list.Items[i].Name == r.NodeName {
			own = &list.Items[i]
		}
	}

	desired, err := routes.Compute(list.Items, r.NodeName, r.Mode)
	if err != nil {
		// Without its own CiliumNode the node cannot tell what is stale:
		// it leaves the kernel as it is rather than delete working routes.
		logger.Info("leaving the datapath as it is", "reason", err.Error())
		if own != nil {
			if err := r.report(ctx, own, metav1.ConditionFalse, ReasonNodeNotRoutable, err.Error()); err != nil {
				return reconcile.Result{}, err
			}
		}
		return reconcile.Result{RequeueAfter: r.Resync}, nil
	}

	changes, applyErr := r.Kernel.Apply(desired)
	if changes.Writes() > 0 {
		logger.Info("datapath changed", "mode", r.Mode, "device", changes.Device,
			"routesAdded", changes.RoutesAdded, "routesReplaced", changes.RoutesReplaced, "routesDeleted", changes.RoutesDeleted,
			"fdbAdded", changes.FDBAdded, "fdbDeleted", changes.FDBDeleted,
			"neighboursSet", changes.NeighboursSet, "neighboursDeleted", changes.NeighboursDeleted,
			"masquerade", changes.Masquerade)
	}
	logger.V(1).Info("pass done", "writes", changes.Writes(), "routes", len(desired.Routes), "error", applyErr)
	status, reason, message := summarize(desired, changes, applyErr)
	if err := r.report(ctx, own, status, reason, message); err != nil {
		return reconcile.Result{}, err
	}
	if applyErr != nil {
		return reconcile.Result{}, applyErr // retried with backoff
	}
	return reconcile.Result{RequeueAfter: r.Resync}, nil
}

// summarize turns a pass into the condition: "vxlan: 2 nodes, 3 routes".
func summarize(d routes.Desired, ch kernel.Changes, applyErr error) (metav1.ConditionStatus, string, string) {
	msg := fmt.Sprintf("%s: %d nodes, %d routes", d.Mode, d.Nodes, len(d.Routes)-len(ch.Conflicts))
	if len(d.Skipped) > 0 {
		msg += "; skipped: " + strings.Join(d.Skipped, "; ")
	}
	switch {
	case applyErr != nil:
		return metav1.ConditionFalse, ReasonProgramFailed, applyErr.Error()
	case len(ch.Conflicts) > 0:
		return metav1.ConditionFalse, ReasonRouteConflict, strings.Join(ch.Conflicts, "; ") + "; " + msg
	default:
		return metav1.ConditionTrue, ReasonProgrammed, msg
	}
}

// report applies the DatapathReady condition to own's status when it differs
// from what the cache shows. Server-side apply with its own field manager
// touches only this list entry (conditions are a map keyed by type).
func (r *Reconciler) report(ctx context.Context, own *ciliumv2.CiliumNode, status metav1.ConditionStatus, reason, message string) error {
	conds := append([]metav1.Condition(nil), own.Status.Conditions...)
	if !conditions.Set(&conds, own.Generation, metav1.Condition{Type: ConditionDatapathReady, Status: status, Reason: reason, Message: message}) {
		return nil
	}
	var c metav1.Condition
	for _, x := range conds {
		if x.Type == ConditionDatapathReady {
			c = x
		}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ciliumv2.GroupVersion.String(),
		"kind":       "CiliumNode",
		"metadata":   map[string]any{"name": own.Name},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type":               c.Type,
			"status":             string(c.Status),
			"reason":             c.Reason,
			"message":            c.Message,
			"observedGeneration": c.ObservedGeneration,
			"lastTransitionTime": c.LastTransitionTime.UTC().Format(time.RFC3339),
		}}},
	}}
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("reporting %s on CiliumNode %s: %w", ConditionDatapathReady, own.Name, err)
	}
	return nil
}
