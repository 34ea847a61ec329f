package compiler

import (
	"fmt"
	"hash/fnv"
	"slices"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/identity"
)

// NodeSpec is the share of out that the node needs: the policies of the
// identities it hosts (local) and of its host endpoint, with the peer sets
// they name. The result is canonical (sorted, peer sets named by content),
// so equal inputs give equal specs and the controller writes only changes.
func (out *Output) NodeSpec(node string, local []identity.Number) nodesv1alpha1.NodePolicySpec {
	var spec nodesv1alpha1.NodePolicySpec
	sets := map[string]nodesv1alpha1.PeerSet{}
	ids := slices.Clone(local)
	slices.Sort(ids)
	for _, n := range slices.Compact(ids) {
		p := out.Endpoints[n]
		if p == nil {
			continue
		}
		spec.Identities = append(spec.Identities, nodesv1alpha1.IdentityPolicy{Identity: int64(n), DirectionalPolicy: p.toAPI(sets)})
	}
	if p := out.Hosts[node]; p != nil {
		d := p.toAPI(sets)
		spec.Host = &d
	}
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		spec.PeerSets = append(spec.PeerSets, sets[name])
	}
	return spec
}

func (p *Policy) toAPI(sets map[string]nodesv1alpha1.PeerSet) nodesv1alpha1.DirectionalPolicy {
	out := nodesv1alpha1.DirectionalPolicy{}
	source := map[PolicyRef]int32{}
	for i, ref := range p.Sources {
		out.Policies = append(out.Policies, ref.String())
		source[ref] = int32(i + 1)
	}
	out.Ingress, out.Egress = p.Ingress.toAPI(sets, source), p.Egress.toAPI(sets, source)
	return out
}

// toAPI writes d; source numbers the policies of the endpoint (from 1).
func (d Direction) toAPI(sets map[string]nodesv1alpha1.PeerSet, source map[PolicyRef]int32) nodesv1alpha1.PolicyDirection {
	out := nodesv1alpha1.PolicyDirection{Enforced: d.Enforced}
	for _, e := range d.Entries {
		out.Entries = append(out.Entries, nodesv1alpha1.PolicyEntry{
			Deny:     e.Deny,
			Peers:    peerSetName(e.Peers, sets),
			Protocol: int32(e.Port.Protocol),
			Port:     int32(e.Port.First),
			EndPort:  int32(e.Port.Last),
			PortName: e.Port.Name,
			Source:   source[e.Source],
		})
	}
	return out
}

// peerSetName is the name of p's set, adding the set to sets: "any", or a
// hash of its content, so that the name of a set is the same in every
// node's object and across passes.
func peerSetName(p Peers, sets map[string]nodesv1alpha1.PeerSet) string {
	if p.Any {
		return nodesv1alpha1.AnyPeer
	}
	key := p.Key()
	h := fnv.New64a()
	h.Write([]byte(key))
	set := nodesv1alpha1.PeerSet{}
	for _, n := range p.Identities {
		set.Identities = append(set.Identities, int64(n))
	}
	for _, c := range p.CIDRs {
		set.CIDRs = append(set.CIDRs, c.String())
	}
	// A hash collision must never merge two sets: a colliding name gets a
	// suffix (entries come in canonical order, so the suffix is stable).
	base := fmt.Sprintf("p%016x", h.Sum64())
	// Of len(sets)+1 candidate names one is free or equal (pigeonhole).
	for i := 0; i <= len(sets); i++ {
		set.Name = base
		if i > 0 {
			set.Name = fmt.Sprintf("%s-%d", base, i)
		}
		held, ok := sets[set.Name]
		if !ok {
			sets[set.Name] = set
			return set.Name
		}
		if slices.Equal(held.Identities, set.Identities) && slices.Equal(held.CIDRs, set.CIDRs) {
			return set.Name
		}
	}
	panic("compiler: no free peer set name among len(sets)+1 candidates")
}
