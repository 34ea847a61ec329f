package compiler

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/plexus-net/plexus/internal/identity"
)

// Peers is the set of remote ends an entry matches: every peer, or the
// listed identities and the addresses outside the cluster under CIDRs. A
// pod's address always resolves to its identity, so CIDRs only ever match
// what is not a pod (Cilium's rule: CIDR rules are for outside the
// cluster).
type Peers struct {
	Any        bool
	Identities []identity.Number
	// CIDRs are disjoint-or-nested prefixes with exceptions already cut
	// out. The node gives each prefix an identity in its IP-to-identity
	// map; a peer matches when the most specific prefix holding its
	// address lies within one of these.
	CIDRs []netip.Prefix
}

// anyPeer is every peer, inside the cluster or outside.
var anyPeer = Peers{Any: true}

func (p Peers) empty() bool { return !p.Any && len(p.Identities) == 0 && len(p.CIDRs) == 0 }

// newPeers is the set of ids and cidrs in canonical form: both sorted,
// without duplicates. Every Peers is made through it (or union).
func newPeers(ids []identity.Number, cidrs []netip.Prefix) Peers {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	cidrs = slices.Clone(cidrs)
	slices.SortFunc(cidrs, comparePrefix)
	return Peers{Identities: slices.Compact(ids), CIDRs: slices.Compact(cidrs)}
}

// union adds o to p, keeping both lists sorted and free of duplicates.
// Peers are never modified once made, so a union with an empty set is the
// other set itself, not a copy (broad rules share one list everywhere).
func (p Peers) union(o Peers) Peers {
	if p.Any || o.Any {
		return anyPeer
	}
	if p.empty() {
		return o
	}
	if o.empty() {
		return p
	}
	return newPeers(append(slices.Clone(p.Identities), o.Identities...), append(slices.Clone(p.CIDRs), o.CIDRs...))
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Key is a canonical form of the set, equal for equal sets.
func (p Peers) Key() string {
	if p.Any {
		return "any"
	}
	parts := make([]string, 0, 1+len(p.CIDRs))
	if len(p.Identities) > 0 {
		ids := make([]string, len(p.Identities))
		for i, n := range p.Identities {
			ids[i] = n.String()
		}
		parts = append(parts, strings.Join(ids, ","))
	}
	for _, c := range p.CIDRs {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, " ")
}

// entityPeers is what fromEntities/toEntities name, as identities and
// CIDRs; "cluster" holds the local cluster's pods, which the caller gives.
func entityPeers(name string, pods []identity.Number) (Peers, error) {
	switch name {
	case "all":
		return anyPeer, nil
	case "world":
		return Peers{
			Identities: []identity.Number{identity.World, identity.WorldIPv4, identity.WorldIPv6},
			CIDRs:      []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		}, nil
	case "world-ipv4":
		return Peers{Identities: []identity.Number{identity.WorldIPv4}, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, nil
	case "world-ipv6":
		return Peers{Identities: []identity.Number{identity.WorldIPv6}, CIDRs: []netip.Prefix{netip.MustParsePrefix("::/0")}}, nil
	case "cluster":
		ids := append([]identity.Number{identity.Host, identity.Unmanaged, identity.Health, identity.Init, identity.RemoteNode, identity.Ingress}, pods...)
		slices.Sort(ids)
		return Peers{Identities: ids}, nil
	}
	if n, ok := identity.ReservedByName(name); ok {
		return Peers{Identities: []identity.Number{n}}, nil
	}
	return Peers{}, fmt.Errorf("unknown entity %q", name)
}

// subtract is p without the addresses of excepts, as prefixes: p is split
// in halves until no half partly overlaps an exception. Each exception
// costs at most one split per bit, so the result is small.
func subtract(p netip.Prefix, excepts []netip.Prefix) []netip.Prefix {
	overlapping := false
	for _, e := range excepts {
		switch {
		case e.Bits() <= p.Bits() && e.Contains(p.Addr()):
			return nil // p lies wholly within an exception
		case p.Contains(e.Addr()) && e.Addr().Is4() == p.Addr().Is4():
			overlapping = true
		}
	}
	if !overlapping {
		return []netip.Prefix{p}
	}
	lo, hi := halves(p)
	return append(subtract(lo, excepts), subtract(hi, excepts)...)
}

// halves splits p into its two prefixes one bit longer.
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	lo := netip.PrefixFrom(p.Addr(), bits)
	b := p.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	return lo, netip.PrefixFrom(hiAddr, bits)
}
