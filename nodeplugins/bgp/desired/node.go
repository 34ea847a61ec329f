package desired

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/iprange"
	"github.com/plexus-net/plexus/internal/selectors"
)

// Special keys that select CiliumPodIPPools by namespace and name as if they
// were labels (the pools are cluster-scoped, so the namespace is empty).
const (
	PodIPPoolNamespaceKey = "io.cilium.podippool.namespace"
	PodIPPoolNameKey      = "io.cilium.podippool.name"
)

// world is what Compute derives from the input once: the node's own facts
// and the route sources, sorted, plus the problems found on the way.
type world struct {
	in       *Input
	labels   labels.Set // the Node's labels
	podCIDRs []netip.Prefix
	pools    []podPool
	services []service
	lbPools  []lbPool
	problems []Problem
}

// podPool is a CiliumPodIPPool with the CIDRs it allocated to this node.
type podPool struct {
	name   string
	labels labels.Set
	cidrs  []netip.Prefix
}

// service is a Service with what decides where its addresses go.
type service struct {
	svc    *corev1.Service
	labels labels.Set
	// local is true when this node has a ready endpoint of the Service.
	local bool
}

// lbPool is a CiliumLoadBalancerIPPool's labels and address ranges.
type lbPool struct {
	name   string
	labels labels.Set
	ranges []iprange.Range
}

func newWorld(in *Input) *world {
	w := &world{in: in, labels: labels.Set{}}
	if in.Node != nil {
		w.labels = labels.Set(in.Node.Labels)
	}
	w.podCIDRs = nodePodCIDRs(in)
	w.pools = nodePools(in)
	w.services = nodeServices(in)
	w.lbPools = lbPools(in)
	return w
}

func (w *world) problem(reason, format string, args ...any) {
	w.problems = append(w.problems, Problem{Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// supports reports whether the node runs the IP family of afi.
func (w *world) supports(afi string) bool {
	switch afi {
	case ciliumv2.BGPAddressFamilyIPv4:
		return w.in.IPv4Enabled
	case ciliumv2.BGPAddressFamilyIPv6:
		return w.in.IPv6Enabled
	}
	return false
}

// afiOf is the address family of a prefix.
func afiOf(p netip.Prefix) string {
	if p.Addr().Is4() {
		return ciliumv2.BGPAddressFamilyIPv4
	}
	return ciliumv2.BGPAddressFamilyIPv6
}

// nodePodCIDRs are the node's own pod CIDRs: Node.spec.podCIDRs in
// kubernetes mode, CiliumNode.spec.ipam.podCIDRs in cluster-pool mode, and
// none in other modes (B28: PodCIDR advertisements then do nothing).
func nodePodCIDRs(in *Input) []netip.Prefix {
	var raw []string
	switch in.IPAMMode {
	case IPAMKubernetes:
		if in.Node != nil {
			raw = in.Node.Spec.PodCIDRs
			if len(raw) == 0 && in.Node.Spec.PodCIDR != "" {
				raw = []string{in.Node.Spec.PodCIDR}
			}
		}
	case IPAMClusterPool:
		if in.CiliumNode != nil {
			raw = in.CiliumNode.Spec.IPAM.PodCIDRs
		}
	}
	return parsePrefixes(raw)
}

// nodePools are the existing pools, sorted by name, each with the CIDRs the
// node's CiliumNode holds from it.
func nodePools(in *Input) []podPool {
	held := map[string][]string{}
	if in.CiliumNode != nil {
		for _, a := range in.CiliumNode.Spec.IPAM.Pools.Allocated {
			held[a.Pool] = append(held[a.Pool], a.CIDRs...)
		}
	}
	out := make([]podPool, 0, len(in.PodIPPools))
	for i := range in.PodIPPools {
		p := &in.PodIPPools[i]
		set := make(labels.Set, len(p.Labels)+2)
		for k, v := range p.Labels {
			set[k] = v
		}
		set[PodIPPoolNamespaceKey] = p.Namespace
		set[PodIPPoolNameKey] = p.Name
		out = append(out, podPool{name: p.Name, labels: set, cidrs: parsePrefixes(held[p.Name])})
	}
	slices.SortFunc(out, func(a, b podPool) int { return strings.Compare(a.name, b.name) })
	return out
}

// nodeServices are the Services, sorted by namespace and name, with whether
// this node has a ready endpoint of each. An endpoint whose ready condition
// is unknown counts as ready, as the EndpointSlice API says.
func nodeServices(in *Input) []service {
	local := map[string]bool{}
	for i := range in.EndpointSlices {
		es := &in.EndpointSlices[i]
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.NodeName != nil && *ep.NodeName == in.NodeName && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
				local[es.Namespace+"/"+name] = true
			}
		}
	}
	out := make([]service, 0, len(in.Services))
	for i := range in.Services {
		s := &in.Services[i]
		out = append(out, service{svc: s, labels: selectors.ServiceLabels(s.Namespace, s.Name, s.Labels),
			local: local[s.Namespace+"/"+s.Name]})
	}
	slices.SortFunc(out, func(a, b service) int {
		return cmp.Or(strings.Compare(a.svc.Namespace, b.svc.Namespace), strings.Compare(a.svc.Name, b.svc.Name))
	})
	return out
}

func lbPools(in *Input) []lbPool {
	out := make([]lbPool, 0, len(in.LoadBalancerIPPools))
	for i := range in.LoadBalancerIPPools {
		p := &in.LoadBalancerIPPools[i]
		lp := lbPool{name: p.Name, labels: labels.Set(p.Labels)}
		for _, b := range p.Spec.Blocks {
			if b.Cidr != "" {
				if pfx, err := netip.ParsePrefix(b.Cidr); err == nil {
					if r, ok := iprange.FromPrefix(pfx, false); ok {
						lp.ranges = append(lp.ranges, r)
					}
				}
				continue
			}
			if r, err := iprange.Parse(b.Start, b.Stop); err == nil {
				lp.ranges = append(lp.ranges, r)
			}
		}
		out = append(out, lp)
	}
	slices.SortFunc(out, func(a, b lbPool) int { return strings.Compare(a.name, b.name) })
	return out
}

// nodeIPv4 is the node's first IPv4 InternalIP: from the Node, else from
// the CiliumNode (which copies it). It is the default router ID.
func nodeIPv4(in *Input) netip.Addr {
	if in.Node != nil {
		for _, a := range in.Node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Unmap().Is4() {
					return ip.Unmap()
				}
			}
		}
	}
	if in.CiliumNode != nil {
		for _, a := range in.CiliumNode.Spec.Addresses {
			if a.Type == ciliumv2.NodeAddressInternalIP {
				if ip, err := netip.ParseAddr(a.IP); err == nil && ip.Unmap().Is4() {
					return ip.Unmap()
				}
			}
		}
	}
	return netip.Addr{}
}

// parsePrefixes parses CIDRs, masks them, and drops what does not parse
// (the writers validate them).
func parsePrefixes(raw []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range raw {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}
