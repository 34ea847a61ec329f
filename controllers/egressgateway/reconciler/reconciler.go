// Package reconciler is the egress gateway controller's reconciler: from the
// CiliumEgressGatewayPolicies, pods, namespaces and nodes it writes one
// Egress object per node that has sources or gateway duties, and from the
// nodes' reports it writes each policy's status: which node is the active
// gateway, which stand by, and why a policy does nothing.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/egressgateway/planner"
	"github.com/plexus-net/plexus/internal/heartbeat"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/internal/passes"
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
	Client   client.Client
	Recorder events.EventRecorder
	Passes   passes.Settings

	runner passes.Runner
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("egressgateway: Client and Recorder must be set")
	}
	r.runner = passes.Runner{Name: "egressgateway", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr,
		passes.For(&ciliumv2.CiliumEgressGatewayPolicy{}), passes.For(&corev1.Pod{}), passes.For(&corev1.Namespace{}),
		passes.For(&corev1.Node{}), passes.For(&ciliumv2.CiliumNode{}), passes.For(&nodesv1alpha1.Egress{}))
}

// decide reads everything, plans, and adds the writes of what changed.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		policies    ciliumv2.CiliumEgressGatewayPolicyList
		pods        corev1.PodList
		namespaces  corev1.NamespaceList
		nodes       corev1.NodeList
		ciliumNodes ciliumv2.CiliumNodeList
		current     nodesv1alpha1.EgressList
	)
	if err := p.ListAll(ctx, &policies, &pods, &namespaces, &nodes, &ciliumNodes, &current); err != nil {
		return err
	}
	var pols []planner.Policy
	for i := range policies.Items {
		pols = append(pols, toPolicy(&policies.Items[i]))
	}
	var ps []planner.Pod
	for i := range pods.Items {
		if pod, ok := toPod(&pods.Items[i]); ok {
			ps = append(ps, pod)
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
	p.Write(egresses.Writes(r.Client, nodeobjects.Ptrs(current.Items), desired)...)

	roles := reportedRoles(current.Items)
	for i := range policies.Items {
		pol := &policies.Items[i]
		res := plan.Policies[pol.Name]
		p.Write(func(ctx context.Context) error {
			_, err := p.Status.PatchReady(ctx, pol, func(o client.Object) []metav1.Condition {
				return o.(*ciliumv2.CiliumEgressGatewayPolicy).Status.Conditions
			}, func(o client.Object) { setPolicyStatus(o.(*ciliumv2.CiliumEgressGatewayPolicy), res, roles) }, r.Recorder, "Reconcile")
			if err != nil {
				return fmt.Errorf("status of CiliumEgressGatewayPolicy %s: %w", pol.Name, err)
			}
			return nil
		})
	}
	return nil
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
	reports := make([]heartbeat.Report, len(items))
	for i := range items {
		reports[i] = heartbeat.ReportOf(items[i].Name, items[i].Status.LivePeers, items[i].Spec.Peers)
	}
	credible := heartbeat.CredibleReports(reports)
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
