package datapath

import (
	"slices"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

// Rules are the entries of a NodePolicy as the maps resolved them (peer
// sets expanded, named ports looked up), kept to name the policies behind
// a verdict: the maps hold verdicts only, merged across policies.
type Rules map[ruleScope][]Rule

type ruleScope struct {
	local uint32
	dir   Direction
}

// Rule is one entry.
type Rule struct {
	Deny bool
	// Peers are the peer identities; nil matches every peer.
	Peers    []uint32
	Protocol uint8 // 0: every protocol and port
	Ports    portRange
	// Policy is the policy the entry comes from, as Kind/namespace/name;
	// empty for entries Plexus adds itself.
	Policy string
}

func newRule(e nodesv1alpha1.PolicyEntry, ports portRange, peers []uint32, policies []string) Rule {
	r := Rule{Deny: e.Deny, Protocol: uint8(e.Protocol), Ports: ports}
	if e.Peers != nodesv1alpha1.AnyPeer {
		r.Peers = peers
	}
	if i := int(e.Source); i > 0 && i <= len(policies) {
		r.Policy = policies[i-1]
	}
	return r
}

func (r Rule) matches(peer uint32, proto uint8, port uint16) bool {
	if r.Peers != nil && !slices.Contains(r.Peers, peer) {
		return false
	}
	if r.Protocol == 0 {
		return true
	}
	return r.Protocol == proto && r.Ports.first <= port && port <= r.Ports.last
}

// Explain names the policies whose entries allow and deny a packet of the
// local identity in direction dir with the peer identity, protocol and
// port (ICMP type): what the maps decided, with names. Each list is
// sorted and without repeats; entries Plexus adds itself are not named.
func (rs Rules) Explain(local, peer uint32, dir Direction, proto uint8, port uint16) (allowedBy, deniedBy []string) {
	for _, r := range rs[ruleScope{local, dir}] {
		if r.Policy == "" || !r.matches(peer, proto, port) {
			continue
		}
		if r.Deny {
			deniedBy = append(deniedBy, r.Policy)
		} else {
			allowedBy = append(allowedBy, r.Policy)
		}
	}
	slices.Sort(allowedBy)
	slices.Sort(deniedBy)
	return slices.Compact(allowedBy), slices.Compact(deniedBy)
}
