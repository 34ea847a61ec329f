// Package reconciler is the L2 announcer's reconciler: from the policies,
// Services, Nodes and EndpointSlices it writes one L2Announcement per
// candidate node, and from the nodes' reports it writes which node announces
// each Service's addresses. Elections happen between the node plugins, so a
// failover costs the API server one status write per affected node and
// Service, never a Lease per Service.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// Reconciler keeps the L2Announcements and the status of policies and
// Services current.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Passes   passes.Settings

	runner     passes.Runner
	interfaces interfaceChecks
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("l2announcer: Client and Recorder must be set")
	}
	r.runner = passes.Runner{Name: "l2announcer", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr,
		passes.For(&ciliumv2alpha1.CiliumL2AnnouncementPolicy{}), passes.For(&corev1.Service{}), passes.For(&corev1.Node{}),
		passes.For(&discoveryv1.EndpointSlice{}), passes.For(&nodesv1alpha1.L2Announcement{}))
}

// decide reads everything, plans, and adds the writes of what changed.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		policies  ciliumv2alpha1.CiliumL2AnnouncementPolicyList
		services  corev1.ServiceList
		nodes     corev1.NodeList
		sliceList discoveryv1.EndpointSliceList
		current   nodesv1alpha1.L2AnnouncementList
	)
	if err := p.ListAll(ctx, &policies, &services, &nodes, &sliceList, &current); err != nil {
		return err
	}
	var pols []planner.Policy
	byPolicy := map[string]planner.Policy{}
	for i := range policies.Items {
		pol := toPolicy(&policies.Items[i], &r.interfaces)
		pols = append(pols, pol)
		byPolicy[pol.Name] = pol
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
	r.interfaces.endPass()
	plan := planner.Decide(pols, svcs, ns)

	// Who announces what, as the nodes report it. A node that was killed
	// cannot clear its own report, so a report counts only while some peer
	// still hears the node (or the node has no peer to ask).
	announcers := map[string][]announcer{}
	reports := make([]heartbeat.Report, len(current.Items))
	for i := range current.Items {
		a := &current.Items[i]
		reports[i] = heartbeat.ReportOf(a.Name, a.Status.LivePeers, a.Spec.Peers)
	}
	credible := heartbeat.CredibleReports(reports)
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
	p.Write(l2Announcements.Writes(r.Client, nodeobjects.Ptrs(current.Items), desired)...)
	for i := range policies.Items {
		pol := &policies.Items[i]
		p.Write(r.policyWrite(p.Status, pol, byPolicy[pol.Name], plan.Policies[pol.Name]))
	}
	for i := range services.Items {
		s := &services.Items[i]
		res := plan.Services[s.Namespace+"/"+s.Name]
		switch {
		case res != nil && s.DeletionTimestamp == nil:
			c := serviceCondition(res, announcers)
			p.Write(serviceStatusWrite(p.Status, s, func(svc *corev1.Service) {
				conditions.Set(&svc.Status.Conditions, svc.Generation, c)
			}))
		case hasCondition(s):
			p.Write(serviceStatusWrite(p.Status, s, func(svc *corev1.Service) {
				conditions.Remove(&svc.Status.Conditions, ServiceConditionType)
			}))
		}
	}
	return nil
}

// policyWrite writes a policy's status and a Warning Event when it stops
// being Ready or the reason changes.
func (r *Reconciler) policyWrite(status *statuswrite.Writer, obj *ciliumv2alpha1.CiliumL2AnnouncementPolicy, pol planner.Policy, res *planner.PolicyResult) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := status.PatchReady(ctx, obj, func(o client.Object) []metav1.Condition {
			return o.(*ciliumv2alpha1.CiliumL2AnnouncementPolicy).Status.Conditions
		}, func(o client.Object) { setPolicyStatus(o.(*ciliumv2alpha1.CiliumL2AnnouncementPolicy), pol, res) }, r.Recorder, "Validate")
		if err != nil {
			return fmt.Errorf("status of CiliumL2AnnouncementPolicy %s: %w", obj.Name, err)
		}
		return nil
	}
}

// serviceStatusWrite writes the L2 condition of a Service's status.
func serviceStatusWrite(status *statuswrite.Writer, svc *corev1.Service, mutate func(*corev1.Service)) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := status.Patch(ctx, svc, func(o client.Object) { mutate(o.(*corev1.Service)) }); err != nil {
			return fmt.Errorf("status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		return nil
	}
}
