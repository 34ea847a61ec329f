package kernel

import "net/netip"

// State is everything the egress gateway datapath of one node does: which
// local pods' packets it steers towards a gateway, and, as an active
// gateway, which packets it translates to an egress address. Apply makes
// the kernel match it. Only its IPv4 part is programmed: IPv6 addresses
// and prefixes are ignored (see Kernel).
type State struct {
	// ClusterCIDRs are destinations never steered, translated or dropped
	// (pod CIDRs, node addresses): a policy for 0.0.0.0/0 must not capture
	// pod-to-pod or pod-to-node traffic.
	ClusterCIDRs []netip.Prefix
	// Steers are, in order, what this node does with its own pods' packets.
	// A packet takes the first Steer whose Match it matches.
	Steers []Steer
	// SNATs are, in order, what this node translates as an active gateway
	// (for its own pods and for packets steered here by other nodes). A
	// packet takes the first SNAT whose Match it matches.
	SNATs []SNAT
}

// Match selects packets: source among Sources, destination inside one of
// Destinations and inside none of Excluded (nor of State.ClusterCIDRs).
type Match struct {
	Sources      []netip.Addr
	Destinations []netip.Prefix
	Excluded     []netip.Prefix
}

// Steer sends matching packets to Via (an address on a directly connected
// subnet: a floating egress IP or a gateway node's address), or drops them
// when Drop is set (a policy with no gateway must not leak traffic with the
// pod's own or the node's address).
type Steer struct {
	Match
	Via  netip.Addr
	Drop bool
}

// SNAT rewrites the source of matching packets to EgressIP, with connection
// tracking so replies come back; or drops them when Drop is set (the egress
// address cannot be used on this node).
type SNAT struct {
	Match
	EgressIP netip.Addr
	Drop     bool
}

// Row is one line of what a node does with egress traffic, the equivalent
// of `cilium bpf egress list`: packets from Source to Destination.
type Row struct {
	Source      netip.Addr
	Destination netip.Prefix
	// Gateway is where this node steers the packets (the Steer's Via);
	// invalid when it does not steer them.
	Gateway netip.Addr
	// EgressIP is what this node translates their source to (the SNAT's
	// EgressIP); invalid when it does not translate them.
	EgressIP netip.Addr
	// Excluded is set for an excluded destination: neither steered nor
	// translated.
	Excluded bool
	// Drop is set when the node drops the packets (steering or
	// translating them).
	Drop bool
}

// Rows lists what s programs, IPv4 only, in order of precedence: a row for
// each source and destination (or excluded destination) of every Steer,
// with the EgressIP of the SNAT that takes the same packets on this node
// when there is one, then the rows of the SNATs no Steer row holds. A pair
// that an earlier Steer (or SNAT) already holds is not repeated: the
// earlier one wins.
func Rows(s State) []Row {
	type key struct {
		src      netip.Addr
		dst      netip.Prefix
		excluded bool
	}
	var rows []Row
	type setBy struct{ steer, snat bool }
	set := []setBy{}
	at := map[key]int{}
	// each calls f with the row of every pair of m, created if need be.
	each := func(m Match, f func(r *Row, by *setBy)) {
		for _, src := range m.Sources {
			if src = src.Unmap(); !src.Is4() {
				continue
			}
			for i, dsts := range [][]netip.Prefix{m.Destinations, m.Excluded} {
				for _, dst := range dsts {
					if !dst.Addr().Is4() {
						continue
					}
					k := key{src, dst.Masked(), i == 1}
					j, ok := at[k]
					if !ok {
						j = len(rows)
						at[k] = j
						rows = append(rows, Row{Source: src, Destination: k.dst, Excluded: k.excluded})
						set = append(set, setBy{})
					}
					f(&rows[j], &set[j])
				}
			}
		}
	}
	for _, st := range s.Steers {
		if !st.Drop && !st.Via.Unmap().Is4() {
			continue // not programmed
		}
		each(st.Match, func(r *Row, by *setBy) {
			if by.steer || r.Excluded {
				return
			}
			by.steer = true
			if st.Drop {
				r.Drop = true
			} else {
				r.Gateway = st.Via.Unmap()
			}
		})
	}
	for _, sn := range s.SNATs {
		if !sn.Drop && !sn.EgressIP.Unmap().Is4() {
			continue
		}
		each(sn.Match, func(r *Row, by *setBy) {
			if by.snat || r.Excluded {
				return
			}
			by.snat = true
			if sn.Drop {
				r.Drop = true
			} else {
				r.EgressIP = sn.EgressIP.Unmap()
			}
		})
	}
	return rows
}
