package reconciler

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
)

// Annotations on a Node that carry its pod CIDRs when spec.podCIDRs cannot
// (kubernetes mode; the seed system reads the same ones).
const (
	AnnotationIPv4PodCIDR = "network.cilium.io/ipv4-pod-cidr"
	AnnotationIPv6PodCIDR = "network.cilium.io/ipv6-pod-cidr"
)

// kubePodCIDRs is what kube-controller-manager (or the admin) assigned the
// Node: spec.podCIDRs, else spec.podCIDR, with the annotations filling a
// family the spec lacks.
func kubePodCIDRs(n *corev1.Node) []string {
	cidrs := slices.Clone(n.Spec.PodCIDRs)
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	has := func(v4 bool) bool {
		return slices.ContainsFunc(cidrs, func(c string) bool {
			p, err := netip.ParsePrefix(c)
			return err == nil && p.Addr().Is4() == v4
		})
	}
	if a := n.Annotations[AnnotationIPv4PodCIDR]; a != "" && !has(true) {
		cidrs = append(cidrs, a)
	}
	if a := n.Annotations[AnnotationIPv6PodCIDR]; a != "" && !has(false) {
		cidrs = append(cidrs, a)
	}
	return cidrs
}

// nodeAddresses copies the Node's internal and external addresses, in the
// Node's order.
func nodeAddresses(n *corev1.Node) []ciliumv2.NodeAddress {
	var out []ciliumv2.NodeAddress
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeInternalIP:
			out = append(out, ciliumv2.NodeAddress{Type: ciliumv2.NodeAddressInternalIP, IP: a.Address})
		case corev1.NodeExternalIP:
			out = append(out, ciliumv2.NodeAddress{Type: ciliumv2.NodeAddressExternalIP, IP: a.Address})
		}
	}
	return out
}

func toAllocatorNode(n *corev1.Node, cn *ciliumv2.CiliumNode) allocator.Node {
	out := allocator.Node{Name: n.Name, Created: n.CreationTimestamp.Time, KubePodCIDRs: kubePodCIDRs(n)}
	if cn != nil {
		out.Created = cn.CreationTimestamp.Time
		out.PodCIDRs = cn.Spec.IPAM.PodCIDRs
		for _, r := range cn.Spec.IPAM.Pools.Requested {
			out.Requested = append(out.Requested, allocator.Request{Pool: r.Pool, IPv4: r.Needed.IPv4Addrs, IPv6: r.Needed.IPv6Addrs})
		}
		for _, a := range cn.Spec.IPAM.Pools.Allocated {
			out.Allocated = append(out.Allocated, allocator.PoolCIDRs{Pool: a.Pool, CIDRs: a.CIDRs})
		}
		listed := map[string]bool{}
		for _, m := range []ciliumv2.AllocationMap{cn.Spec.IPAM.Pool, cn.Spec.IPAM.IPv6Pool} {
			for ip := range m {
				if !listed[ip] {
					listed[ip] = true
					out.Listed = append(out.Listed, ip)
				}
			}
		}
	}
	return out
}

// toAllocatorPool converts a pool. Entries the schema would refuse are
// skipped: objects stored before a schema change cannot break a pass.
func toAllocatorPool(p *ciliumv2alpha1.CiliumPodIPPool) allocator.Pool {
	fam := func(f *ciliumv2alpha1.IPPoolFamily) *allocator.Family {
		if f == nil {
			return nil
		}
		out := &allocator.Family{MaskSize: int(f.MaskSize)}
		for _, c := range f.CIDRs {
			if p, err := netip.ParsePrefix(c); err == nil {
				out.CIDRs = append(out.CIDRs, p.Masked())
			}
		}
		return out
	}
	return allocator.Pool{Name: p.Name, Created: p.CreationTimestamp.Time, Deleting: p.DeletionTimestamp != nil, IPv4: fam(p.Spec.IPv4), IPv6: fam(p.Spec.IPv6),
		AllowFirstIP: p.Spec.AllowFirstIP, AllowLastIP: p.Spec.AllowLastIP}
}

// desiredSpec is the CiliumNode spec with what the controller owns set:
// addresses, and the CIDRs of the mode in use. The node's own fields
// (requests) and, in crd mode, the whole of spec.ipam are left as they are.
func desiredSpec(cur ciliumv2.NodeSpec, n *corev1.Node, mode allocator.Mode, res *allocator.NodeResult) ciliumv2.NodeSpec {
	spec := *cur.DeepCopy()
	spec.Addresses = nodeAddresses(n)
	switch mode {
	case allocator.ModeCRD:
	case allocator.ModeMultiPool:
		spec.IPAM.Pools.Allocated = nil
		for _, a := range res.Allocated {
			spec.IPAM.Pools.Allocated = append(spec.IPAM.Pools.Allocated, ciliumv2.IPAMPoolAllocation{Pool: a.Pool, CIDRs: slices.Clone(a.CIDRs)})
		}
	default:
		spec.IPAM.PodCIDRs = slices.Clone(res.PodCIDRs)
	}
	return spec
}

// specCurrent reports whether cur already holds what desiredSpec would
// write, without building it: a pass asks for every node, and copies of
// thousands of specs would make it slow.
func specCurrent(cur ciliumv2.NodeSpec, n *corev1.Node, mode allocator.Mode, res *allocator.NodeResult) bool {
	i := 0
	for _, a := range n.Status.Addresses {
		var typ string
		switch a.Type {
		case corev1.NodeInternalIP:
			typ = ciliumv2.NodeAddressInternalIP
		case corev1.NodeExternalIP:
			typ = ciliumv2.NodeAddressExternalIP
		default:
			continue
		}
		if i >= len(cur.Addresses) || cur.Addresses[i] != (ciliumv2.NodeAddress{Type: typ, IP: a.Address}) {
			return false
		}
		i++
	}
	if i != len(cur.Addresses) {
		return false
	}
	switch mode {
	case allocator.ModeCRD:
		return true
	case allocator.ModeMultiPool:
		return slices.EqualFunc(cur.IPAM.Pools.Allocated, res.Allocated, func(a ciliumv2.IPAMPoolAllocation, b allocator.PoolCIDRs) bool {
			return a.Pool == b.Pool && slices.Equal(a.CIDRs, b.CIDRs)
		})
	default:
		return slices.Equal(cur.IPAM.PodCIDRs, res.PodCIDRs)
	}
}
