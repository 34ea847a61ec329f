package reconciler

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/egressgateway/planner"
	"github.com/plexus-net/plexus/internal/selectors"
)

// toPolicy compiles a policy's selectors. An absent podSelector or
// namespaceSelector stays nil (absent); a nodeSelector limits the others.
func toPolicy(p *ciliumv2.CiliumEgressGatewayPolicy) planner.Policy {
	out := planner.Policy{Name: p.Name, DestinationCIDRs: p.Spec.DestinationCIDRs, ExcludedCIDRs: p.Spec.ExcludedCIDRs}
	var errs []error
	compile := func(field string, s *metav1.LabelSelector) labels.Selector {
		if s == nil {
			return nil
		}
		sel, err := selectors.Compile(s, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return labels.Nothing()
		}
		return sel
	}
	for i, r := range p.Spec.Selectors {
		f := fmt.Sprintf("spec.selectors[%d]", i)
		out.Rules = append(out.Rules, planner.Rule{
			Pods:       compile(f+".podSelector", r.PodSelector),
			Namespaces: compile(f+".namespaceSelector", r.NamespaceSelector),
			Nodes:      compile(f+".nodeSelector", r.NodeSelector),
		})
	}
	// Cilium uses egressGateways when it has entries, else egressGateway.
	gws := p.Spec.EgressGateways
	switch {
	case len(gws) > 0 && p.Spec.EgressGateway != nil:
		out.Notes = append(out.Notes, "spec.egressGateway is ignored: spec.egressGateways is set and takes precedence, as in Cilium")
	case p.Spec.EgressGateway != nil:
		gws = []ciliumv2.EgressGateway{*p.Spec.EgressGateway}
	case len(p.Spec.Selectors) == 0 && len(p.Spec.DestinationCIDRs) == 0:
		errs = append(errs, errors.New("spec is empty: the policy selects nothing and does nothing"))
	}
	if v6 := ipv6CIDRs(p.Spec.DestinationCIDRs); len(v6) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("IPv6 destinations %s are not steered: Plexus's egress gateway is IPv4 only for now, so IPv6 traffic to them leaves as if no policy applied",
			strings.Join(v6, ", ")))
	}
	for i, g := range gws {
		sel := compile(fmt.Sprintf("spec.egressGateways[%d].nodeSelector", i), g.NodeSelector)
		if sel == nil {
			sel = labels.Nothing()
		}
		out.Gateways = append(out.Gateways, planner.Gateway{Nodes: sel, EgressIP: g.EgressIP, Interface: g.Interface})
	}
	out.Err = errors.Join(errs...)
	return out
}

// toPod returns the pod as a source candidate: scheduled, running or about
// to, with addresses of its own (host-network pods have the node's).
func toPod(p *corev1.Pod) (planner.Pod, bool) {
	if p.DeletionTimestamp != nil || p.Spec.HostNetwork || p.Spec.NodeName == "" ||
		p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return planner.Pod{}, false
	}
	out := planner.Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Node: p.Spec.NodeName, Labels: labels.Set(p.Labels)}
	for _, ip := range p.Status.PodIPs {
		out.IPs = append(out.IPs, ip.IP)
	}
	if len(out.IPs) == 0 && p.Status.PodIP != "" {
		out.IPs = []string{p.Status.PodIP}
	}
	return out, len(out.IPs) > 0
}

func toNode(n *corev1.Node) planner.Node {
	out := planner.Node{Name: n.Name, Labels: labels.Set(n.Labels)}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && out.Address == "" {
			out.Address = a.Address
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	return out
}

// desiredSpec is a node's Egress spec from its plan.
func desiredSpec(np *planner.NodePlan, cluster []string) nodesv1alpha1.EgressSpec {
	spec := nodesv1alpha1.EgressSpec{ClusterCIDRs: slices.Clone(cluster)}
	for _, p := range np.Peers {
		spec.Peers = append(spec.Peers, nodesv1alpha1.L2Peer{Node: p.Node, Address: p.Address})
	}
	for _, s := range np.Steering {
		spec.Steering = append(spec.Steering, nodesv1alpha1.EgressSteering{
			EgressTraffic: traffic(s.Traffic), EgressIP: s.EgressIP, GatewayNode: s.GatewayNode, GatewayIP: s.GatewayIP,
		})
	}
	for _, d := range np.Duties {
		spec.Gateways = append(spec.Gateways, nodesv1alpha1.EgressGatewayDuty{
			EgressTraffic: traffic(d.Traffic), EgressIP: d.EgressIP, Interface: d.Interface, Candidates: slices.Clone(d.Candidates),
		})
	}
	return spec
}

func traffic(t planner.Traffic) nodesv1alpha1.EgressTraffic {
	return nodesv1alpha1.EgressTraffic{
		Policy: t.Policy, Gateway: int32(t.Gateway), SourceIPs: slices.Clone(t.SourceIPs),
		DestinationCIDRs: slices.Clone(t.DestinationCIDRs), ExcludedCIDRs: slices.Clone(t.ExcludedCIDRs),
	}
}

// ipv6CIDRs are the IPv6 entries of cidrs.
func ipv6CIDRs(cidrs []string) []string {
	var out []string
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is6() {
			out = append(out, c)
		}
	}
	return out
}
