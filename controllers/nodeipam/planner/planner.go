// Package planner decides the addresses Node IPAM gives LoadBalancer
// Services: the addresses of the nodes themselves, for clusters where
// neither L2 announcements nor BGP can make a pool address reachable. It is
// a pure function of the Services, the Nodes and the EndpointSlices, so
// every rule (I32-I37) is tested without an API server.
//
// The rules:
//   - a Service is served when it is of type LoadBalancer with class
//     io.cilium/node, or without a class when Node IPAM is the default;
//   - its candidate nodes are all nodes but those being deleted, those
//     labelled node.kubernetes.io/exclude-from-external-load-balancers and
//     those tainted ToBeDeletedByClusterAutoscaler; the annotation
//     io.cilium.nodeipam/match-node-labels (a label selector) narrows them;
//     with externalTrafficPolicy Local, only nodes with a ready endpoint of
//     the Service remain;
//   - per IP family of the Service (spec.ipFamilies), the candidates'
//     ExternalIPs of that family if any has one, else their InternalIPs.
//     (Cilium decides ExternalIP or InternalIP once for all families, so a
//     dual-stack Service whose nodes have only IPv4 ExternalIPs gets no
//     IPv6 address there; Plexus decides per family.)
package planner

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// The Service class and annotation of Node IPAM, and the node markers that
// keep a node out (the cloud-provider conventions of KEP-3458).
const (
	Class                     = "io.cilium/node"
	MatchNodeLabelsAnnotation = "io.cilium.nodeipam/match-node-labels"
	ExcludeLabel              = corev1.LabelNodeExcludeBalancers
	ToBeDeletedTaint          = "ToBeDeletedByClusterAutoscaler"
)

// Reasons of the Service condition.
const (
	ReasonSatisfied         = "Satisfied"
	ReasonNoNodes           = "NoNodes"
	ReasonInvalidAnnotation = "InvalidAnnotation"
)

// Config is how the controller is set up.
type Config struct {
	// ServeClassless: Services without spec.loadBalancerClass are Node
	// IPAM's (defaultLBServiceIPAM=nodeipam).
	ServeClassless bool
}

// Result is what one Service gets.
type Result struct {
	// Addresses sorted, IPv4 first.
	Addresses []netip.Addr
	Satisfied bool
	Reason    string
	Message   string
}

// Served says whether Node IPAM is responsible for svc.
func Served(cfg Config, svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return cfg.ServeClassless
	}
	return *svc.Spec.LoadBalancerClass == Class
}

// Plan decides every served Service's addresses.
func Plan(cfg Config, services []corev1.Service, nodes []corev1.Node, slices []discoveryv1.EndpointSlice) map[types.NamespacedName]Result {
	eligible := make([]*corev1.Node, 0, len(nodes))
	for i := range nodes {
		if includable(&nodes[i]) {
			eligible = append(eligible, &nodes[i])
		}
	}
	local := readyNodes(slices)
	out := map[types.NamespacedName]Result{}
	for i := range services {
		svc := &services[i]
		if Served(cfg, svc) {
			out[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = plan(svc, eligible, local)
		}
	}
	return out
}

// includable: not being deleted, not excluded by label, not about to be
// removed by the cluster autoscaler.
func includable(n *corev1.Node) bool {
	if n.DeletionTimestamp != nil {
		return false
	}
	if _, excluded := n.Labels[ExcludeLabel]; excluded {
		return false
	}
	return !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == ToBeDeletedTaint })
}

// readyNodes maps each Service to the nodes with a ready endpoint of it.
func readyNodes(eps []discoveryv1.EndpointSlice) map[types.NamespacedName]map[string]bool {
	out := map[types.NamespacedName]map[string]bool{}
	for _, es := range eps {
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := types.NamespacedName{Namespace: es.Namespace, Name: name}
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil || ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if out[key] == nil {
				out[key] = map[string]bool{}
			}
			out[key][*ep.NodeName] = true
		}
	}
	return out
}

func plan(svc *corev1.Service, eligible []*corev1.Node, local map[types.NamespacedName]map[string]bool) Result {
	candidates := eligible
	var narrowed []string
	if v, ok := svc.Annotations[MatchNodeLabelsAnnotation]; ok {
		sel, err := labels.Parse(v)
		if err != nil {
			return Result{Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf("annotation %s: %q is not a label selector: %s", MatchNodeLabelsAnnotation, clip(v), clip(err.Error()))}
		}
		candidates = filter(candidates, func(n *corev1.Node) bool { return sel.Matches(labels.Set(n.Labels)) })
		narrowed = append(narrowed, "match "+MatchNodeLabelsAnnotation+" "+clip(v))
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		ready := local[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}]
		candidates = filter(candidates, func(n *corev1.Node) bool { return ready[n.Name] })
		narrowed = append(narrowed, "have a ready endpoint (externalTrafficPolicy Local)")
	}
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	var addrs []netip.Addr
	for _, f := range families {
		addrs = append(addrs, familyAddrs(candidates, f)...)
	}
	slices.SortFunc(addrs, netip.Addr.Compare) // IPv4 before IPv6
	addrs = slices.Compact(addrs)
	if len(addrs) == 0 {
		what := "no node"
		if len(narrowed) > 0 {
			what = "no node that may carry load-balancer traffic and that the Service's rules select (nodes that " + strings.Join(narrowed, " and ") + ")"
		}
		return Result{Reason: ReasonNoNodes, Message: fmt.Sprintf("%s has an InternalIP or ExternalIP of the Service's families (%s)", what, joinFamilies(families))}
	}
	return Result{Addresses: addrs, Satisfied: true, Reason: ReasonSatisfied,
		Message: fmt.Sprintf("the addresses of %d nodes", countNodes(candidates, addrs))}
}

// clip shortens a quoted user value so that a condition message stays well
// under the API's limit.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func filter(ns []*corev1.Node, keep func(*corev1.Node) bool) []*corev1.Node {
	var out []*corev1.Node
	for _, n := range ns {
		if keep(n) {
			out = append(out, n)
		}
	}
	return out
}

// familyAddrs is the candidates' ExternalIPs of family f, or their
// InternalIPs of f when none has an ExternalIP of f.
func familyAddrs(nodes []*corev1.Node, f corev1.IPFamily) []netip.Addr {
	var ext, in []netip.Addr
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if err != nil || (f == corev1.IPv4Protocol) != ip.Unmap().Is4() {
				continue
			}
			switch a.Type {
			case corev1.NodeExternalIP:
				ext = append(ext, ip.Unmap())
			case corev1.NodeInternalIP:
				in = append(in, ip.Unmap())
			}
		}
	}
	if len(ext) > 0 {
		return ext
	}
	return in
}

func countNodes(nodes []*corev1.Node, addrs []netip.Addr) int {
	n := 0
	for _, node := range nodes {
		if slices.ContainsFunc(node.Status.Addresses, func(a corev1.NodeAddress) bool {
			ip, err := netip.ParseAddr(a.Address)
			return err == nil && slices.Contains(addrs, ip.Unmap())
		}) {
			n++
		}
	}
	return n
}

func joinFamilies(fs []corev1.IPFamily) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}
