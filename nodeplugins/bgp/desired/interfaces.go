package desired

import (
	"net/netip"
	"slices"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Interface is what Compute needs of one of the node's interfaces.
type Interface struct {
	// Up: administratively up and operationally up or unknown (loopbacks
	// report unknown).
	Up bool
	// Addrs are its addresses, in any order.
	Addrs []netip.Addr
}

// ReferencedInterfaces are the interface names that advertisements
// (advertisementType Interface) and peer configs (transport.sourceInterface)
// name: the plugin reads only these from the kernel.
func ReferencedInterfaces(ads []ciliumv2.CiliumBGPAdvertisement, pcs []ciliumv2.CiliumBGPPeerConfig) []string {
	var names []string
	for _, ad := range ads {
		for _, a := range ad.Spec.Advertisements {
			if a.AdvertisementType == ciliumv2.BGPInterfaceAdvert && a.Interface != nil {
				names = append(names, a.Interface.Name)
			}
		}
	}
	for _, pc := range pcs {
		if t := pc.Spec.Transport; t != nil && t.SourceInterface != nil {
			names = append(names, *t.SourceInterface)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// usableAddr says whether an interface address may be advertised or used
// as a session's source, by Cilium's rule: global unicast, or IPv4
// link-local; never IPv4-mapped, loopback, multicast or IPv6 link-local.
func usableAddr(a netip.Addr) bool {
	if a.Is4In6() {
		return false
	}
	if a.Is6() {
		return a.IsGlobalUnicast()
	}
	return a.IsGlobalUnicast() || a.IsLinkLocalUnicast()
}

// interfaceRoutes are the host routes of an up interface's usable
// addresses, and why there are none when the interface is missing or down.
func (w *world) interfaceRoutes(name string) ([]netip.Prefix, string) {
	iface, ok := w.in.Interfaces[name]
	switch {
	case !ok:
		return nil, "this node has no interface " + quote(name)
	case !iface.Up:
		return nil, "interface " + quote(name) + " is down"
	}
	var out []netip.Prefix
	for _, a := range iface.Addrs {
		if usableAddr(a) {
			out = append(out, hostPrefix(a))
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return slices.Compact(out), ""
}

// sourceAddress is the one usable address of family afi on the named
// interface, for a session's source; the empty address and why when there
// is none or more than one.
func (w *world) sourceAddress(name, afi string) (netip.Addr, string) {
	iface, ok := w.in.Interfaces[name]
	if !ok {
		return netip.Addr{}, "this node has no interface " + quote(name)
	}
	var found []netip.Addr
	for _, a := range iface.Addrs {
		if usableAddr(a) && afiOf(netip.PrefixFrom(a, 0)) == afi && !slices.Contains(found, a) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return netip.Addr{}, "interface " + quote(name) + " has no usable " + afi + " address"
	case 1:
		return found[0], ""
	}
	slices.SortFunc(found, netip.Addr.Compare)
	return netip.Addr{}, "interface " + quote(name) + " has several " + afi + " addresses (" + joinAddrs(found) + "), so none is chosen"
}

func joinAddrs(as []netip.Addr) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}
