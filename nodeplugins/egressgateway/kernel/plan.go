package kernel

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/plexus-net/plexus/internal/fwmark"
	"github.com/plexus-net/plexus/internal/nftset"
)

// plan is the IPv4 part of a State, normalised: what Apply programs. Two
// States with equal plans program the same kernel state.
type plan struct {
	cluster []nftset.Range
	steers  []steerPlan
	snats   []snatPlan
	// vias[s-1] is the next hop of egress slot s.
	vias []netip.Addr
}

// matchPlan is a Match with deduplicated sources and merged ranges.
type matchPlan struct {
	sources  []netip.Addr
	dst      []nftset.Range
	excluded []nftset.Range
}

type steerPlan struct {
	// index is the Steer's position in State.Steers: it names its chain
	// and sets.
	index int
	matchPlan
	slot uint32 // 0 when drop
	drop bool
}

type snatPlan struct {
	index int
	matchPlan
	egressIP netip.Addr // invalid when drop
	drop     bool
}

func (p *plan) empty() bool { return len(p.steers) == 0 && len(p.snats) == 0 }

// equal reports whether p and q program the same kernel state.
func (p *plan) equal(q *plan) bool {
	return slices.Equal(p.cluster, q.cluster) && slices.Equal(p.vias, q.vias) &&
		slices.EqualFunc(p.steers, q.steers, func(a, b steerPlan) bool {
			return a.index == b.index && a.slot == b.slot && a.drop == b.drop && a.matchPlan.equal(&b.matchPlan)
		}) &&
		slices.EqualFunc(p.snats, q.snats, func(a, b snatPlan) bool {
			return a.index == b.index && a.egressIP == b.egressIP && a.drop == b.drop && a.matchPlan.equal(&b.matchPlan)
		})
}

func (m *matchPlan) equal(o *matchPlan) bool {
	return slices.Equal(m.sources, o.sources) && slices.Equal(m.dst, o.dst) && slices.Equal(m.excluded, o.excluded)
}

// compile turns s into a plan. IPv6 addresses and prefixes are left out; a
// Steer or SNAT that has no IPv4 source or destination left, or whose Via or
// EgressIP is IPv6, matches nothing and is left out whole. A Steer with
// neither Via nor Drop, or an SNAT with neither EgressIP nor Drop, is an
// error: the caller must say what happens to the traffic.
func compile(s State) (*plan, error) {
	p := &plan{cluster: nftset.IPv4Ranges(s.ClusterCIDRs)}
	for i, st := range s.Steers {
		m, ok := compileMatch(st.Match)
		via := st.Via.Unmap()
		switch {
		case st.Drop:
			if ok {
				p.steers = append(p.steers, steerPlan{index: i, matchPlan: m, drop: true})
			}
			continue
		case !via.IsValid():
			return nil, fmt.Errorf("steer %d: neither Via nor Drop", i)
		case !ok || !via.Is4():
			continue
		}
		slot := slices.Index(p.vias, via) + 1
		if slot == 0 {
			if uint32(len(p.vias)+1) >= fwmark.EgressSlots {
				return nil, fmt.Errorf("steer %d: more than %d distinct next hops", i, fwmark.EgressSlots-1)
			}
			p.vias = append(p.vias, via)
			slot = len(p.vias)
		}
		p.steers = append(p.steers, steerPlan{index: i, matchPlan: m, slot: uint32(slot)})
	}
	for i, sn := range s.SNATs {
		m, ok := compileMatch(sn.Match)
		egress := sn.EgressIP.Unmap()
		switch {
		case sn.Drop:
			if ok {
				p.snats = append(p.snats, snatPlan{index: i, matchPlan: m, drop: true})
			}
			continue
		case !egress.IsValid():
			return nil, fmt.Errorf("snat %d: neither EgressIP nor Drop", i)
		case !ok || !egress.Is4():
			continue
		}
		p.snats = append(p.snats, snatPlan{index: i, matchPlan: m, egressIP: egress})
	}
	return p, nil
}

// compileMatch returns m's IPv4 part, and false when it matches nothing.
func compileMatch(m Match) (matchPlan, bool) {
	mp := matchPlan{
		sources:  nftset.IPv4Addrs(m.Sources),
		dst:      nftset.IPv4Ranges(m.Destinations),
		excluded: nftset.IPv4Ranges(m.Excluded),
	}
	return mp, len(mp.sources) > 0 && len(mp.dst) > 0
}
