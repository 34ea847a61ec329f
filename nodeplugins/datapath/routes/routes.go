// Package routes decides what a node's kernel must hold to reach every other
// node's pods: one route per remote pod CIDR and, in VXLAN mode, one tunnel
// endpoint (VTEP) per remote node. It is pure: the same CiliumNodes always give
// the same Desired, in the same order, so applying it twice changes nothing.
package routes

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Mode is how packets reach other nodes.
type Mode string

const (
	// ModeNative routes pod CIDRs via the other nodes' addresses on the
	// underlay: the underlay must carry pod addresses (one L2 segment, or
	// routers that know the pod CIDRs).
	ModeNative Mode = "native"
	// ModeVXLAN encapsulates pod traffic in VXLAN between the nodes' IPv4
	// InternalIPs, so the underlay sees only node addresses.
	ModeVXLAN Mode = "vxlan"
)

// ParseMode accepts the --routing-mode values.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeNative, ModeVXLAN:
		return m, nil
	}
	return "", fmt.Errorf("routing mode %q: want %q or %q", s, ModeNative, ModeVXLAN)
}

// Route is one remote pod CIDR and the next hop that reaches it. In native
// mode Via is the remote node's InternalIP of the CIDR's family, on the
// underlay device; in VXLAN mode it is the remote VTEP's IPv4 InternalIP (IPv4
// CIDRs) or its link-local address (IPv6 CIDRs), on the VXLAN device.
type Route struct {
	Dst  netip.Prefix
	Via  netip.Addr
	Node string
}

// VTEP is a remote node's VXLAN endpoint. Its MAC and link-local address are
// derived from Underlay, so every node computes them without extra state.
type VTEP struct {
	Node     string
	Underlay netip.Addr       // the remote node's IPv4 InternalIP: FDB destination
	MAC      net.HardwareAddr // the remote VXLAN device's MAC
	// Neighbours are the next hops that resolve to MAC on the VXLAN device:
	// Underlay always, the link-local address when the node has IPv6 CIDRs.
	Neighbours []netip.Addr
}

// Desired is the whole cross-node state of one node.
type Desired struct {
	Mode Mode
	// Local is this node's IPv4 InternalIP, the VXLAN device's source
	// address (VXLAN mode only).
	Local  netip.Addr
	VTEPs  []VTEP  // by node name; VXLAN mode only
	Routes []Route // IPv4 first, then by address and prefix length
	// Nodes is how many other nodes have at least one route.
	Nodes int
	// LocalPodCIDRs are this node's own pod CIDRs, sorted.
	LocalPodCIDRs []netip.Prefix
	// PodCIDRs are the pod CIDRs of every node, this one included and
	// routable or not, sorted and without duplicates: the destinations
	// pods reach with their own address.
	PodCIDRs []netip.Prefix
	// Skipped says which nodes or CIDRs were left out and why.
	Skipped []string
}

// Compute returns what node local needs in mode, given every CiliumNode. It
// fails only when the local node itself cannot take part: it is missing, or
// (VXLAN) has no IPv4 InternalIP to send from. Problems of other nodes are
// listed in Skipped and do not stop the rest.
func Compute(nodes []ciliumv2.CiliumNode, local string, mode Mode) (Desired, error) {
	d := Desired{Mode: mode}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b ciliumv2.CiliumNode) int { return cmp.Compare(a.Name, b.Name) })

	// The local node's own CIDRs are routed to its pods by the CNI; a remote
	// node claiming one of them (a stale object) must not steal the traffic.
	owner := map[netip.Prefix]string{}
	found := false
	for _, n := range sorted {
		if n.Name != local {
			continue
		}
		found = true
		cidrs, _ := podCIDRs(n)
		for _, c := range cidrs {
			owner[c] = local
		}
		d.LocalPodCIDRs = cidrs
		d.Local = internalIP(n, true)
	}
	if !found {
		return Desired{}, fmt.Errorf("CiliumNode %q not found", local)
	}
	if mode == ModeVXLAN && !d.Local.IsValid() {
		return Desired{}, fmt.Errorf("CiliumNode %q has no IPv4 InternalIP in spec.addresses: VXLAN needs one as the tunnel source", local)
	}
	if mode != ModeVXLAN {
		d.Local = netip.Addr{}
	}

	for _, n := range sorted {
		if n.Name == local {
			continue
		}
		cidrs, bad := podCIDRs(n)
		d.PodCIDRs = append(d.PodCIDRs, cidrs...)
		v4 := internalIP(n, true)
		v6 := internalIP(n, false)
		if !v4.IsValid() && !v6.IsValid() {
			d.Skipped = append(d.Skipped, fmt.Sprintf("node %s: no InternalIP", n.Name))
			continue
		}
		for _, b := range bad {
			d.Skipped = append(d.Skipped, fmt.Sprintf("node %s: %s", n.Name, b))
		}
		vtep := VTEP{Node: n.Name, Underlay: v4}
		if v4.IsValid() {
			vtep.MAC = MAC(v4)
			vtep.Neighbours = []netip.Addr{v4}
		}
		var routes []Route
		for _, c := range cidrs {
			if o, taken := owner[c]; taken {
				d.Skipped = append(d.Skipped, fmt.Sprintf("node %s: pod CIDR %s is also node %s's", n.Name, c, o))
				continue
			}
			via, why := nextHop(mode, c, v4, v6)
			if !via.IsValid() {
				d.Skipped = append(d.Skipped, fmt.Sprintf("node %s: pod CIDR %s: %s", n.Name, c, why))
				continue
			}
			owner[c] = n.Name
			routes = append(routes, Route{Dst: c, Via: via, Node: n.Name})
			if mode == ModeVXLAN && c.Addr().Is6() && len(vtep.Neighbours) == 1 {
				vtep.Neighbours = append(vtep.Neighbours, via)
			}
		}
		if len(routes) == 0 {
			continue
		}
		d.Nodes++
		d.Routes = append(d.Routes, routes...)
		if mode == ModeVXLAN {
			d.VTEPs = append(d.VTEPs, vtep)
		}
	}
	slices.SortFunc(d.Routes, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	d.PodCIDRs = append(d.PodCIDRs, d.LocalPodCIDRs...)
	slices.SortFunc(d.PodCIDRs, comparePrefix)
	d.PodCIDRs = slices.Compact(d.PodCIDRs)
	return d, nil
}

func nextHop(mode Mode, cidr netip.Prefix, v4, v6 netip.Addr) (netip.Addr, string) {
	switch {
	case mode == ModeVXLAN && !v4.IsValid():
		return netip.Addr{}, "VXLAN needs the node's IPv4 InternalIP"
	case mode == ModeVXLAN && cidr.Addr().Is4():
		return v4, ""
	case mode == ModeVXLAN:
		return LinkLocal(MAC(v4)), ""
	case cidr.Addr().Is4() && !v4.IsValid():
		return netip.Addr{}, "no IPv4 InternalIP to route via"
	case cidr.Addr().Is4():
		return v4, ""
	case !v6.IsValid():
		return netip.Addr{}, "no IPv6 InternalIP to route via"
	default:
		return v6, ""
	}
}

// internalIP returns the node's first InternalIP of the family (zero if
// none).
func internalIP(n ciliumv2.CiliumNode, ipv4 bool) netip.Addr {
	for _, a := range n.Spec.Addresses {
		if a.Type != ciliumv2.NodeAddressInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.IP)
		if err != nil || ip.Zone() != "" {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() == ipv4 {
			return ip
		}
	}
	return netip.Addr{}
}

// podCIDRs returns the node's pod CIDRs (spec.ipam.podCIDRs, every
// multi-pool allocation, and each single address of crd mode's spec.ipam.pool
// and ipv6-pool as a host prefix), masked and without duplicates, and the
// entries that do not parse.
func podCIDRs(n ciliumv2.CiliumNode) (cidrs []netip.Prefix, bad []string) {
	all := slices.Clone(n.Spec.IPAM.PodCIDRs)
	for _, a := range n.Spec.IPAM.Pools.Allocated {
		all = append(all, a.CIDRs...)
	}
	for _, m := range []ciliumv2.AllocationMap{n.Spec.IPAM.Pool, n.Spec.IPAM.IPv6Pool} {
		for _, key := range slices.Sorted(maps.Keys(m)) {
			if ip, err := netip.ParseAddr(key); err == nil {
				key = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()).String()
			}
			all = append(all, key) // one that does not parse is reported below
		}
	}
	for _, s := range all {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			bad = append(bad, fmt.Sprintf("pod CIDR %q does not parse", s))
			continue
		}
		cidrs = append(cidrs, p.Masked())
	}
	slices.SortFunc(cidrs, comparePrefix)
	return slices.Compact(cidrs), bad
}

func comparePrefix(a, b netip.Prefix) int {
	if a.Addr().Is4() != b.Addr().Is4() {
		if a.Addr().Is4() {
			return -1
		}
		return 1
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// MAC is the VXLAN device MAC of the node with IPv4 address ip:
// 0e:b9:<the four address bytes>, a locally administered unicast address.
func MAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x0e, 0xb9, b[0], b[1], b[2], b[3]}
}

// LinkLocal is the IPv6 link-local address (modified EUI-64) of mac, the next
// hop of IPv6 pod CIDRs through that VTEP.
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}
