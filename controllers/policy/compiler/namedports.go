package compiler

import (
	"slices"

	"github.com/plexus-net/plexus/internal/identity"
)

// NamedPort is a container port with a name, as the pods of an identity
// declare it.
type NamedPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// resolveEgressNames turns egress entries that name a port into entries
// with numbers. An egress port name is the peer's: the node that sends
// cannot see the peer's pods, so the compiler, which sees every pod,
// resolves it per peer identity (peers that name the port differently
// get separate entries; peers without such a port, and CIDR peers, get
// none, as a name only ever matches pods). A rule for any peer reaches
// the pods that have the port, as in Kubernetes NetworkPolicy: never the
// same number on an address outside the cluster.
func (c *compilation) resolveEgressNames(entries []Entry) []Entry {
	out := entries[:0:0]
	for _, e := range entries {
		if e.Port.Name == "" {
			out = append(out, e)
			continue
		}
		peers := e.Peers.Identities
		if e.Peers.Any {
			peers = c.pods
		}
		type target struct {
			proto Protocol
			port  uint16
		}
		groups := map[target][]identity.Number{}
		for _, n := range peers {
			for _, np := range c.in.NamedPorts[n] {
				if np.Name == e.Port.Name && (e.Port.Protocol == ProtoAny || np.Protocol == e.Port.Protocol) {
					t := target{np.Protocol, np.Port}
					groups[t] = append(groups[t], n)
				}
			}
		}
		targets := make([]target, 0, len(groups))
		for t := range groups {
			targets = append(targets, t)
		}
		slices.SortFunc(targets, func(a, b target) int {
			if a.proto != b.proto {
				return int(a.proto) - int(b.proto)
			}
			return int(a.port) - int(b.port)
		})
		for _, t := range targets {
			r := e
			r.Port = Port{Protocol: t.proto, First: t.port, Last: t.port}
			r.Peers = newPeers(groups[t], nil)
			out = append(out, r)
		}
	}
	return out
}
