// Package datapath is the policy node plugin's kernel side: it computes
// what the eBPF maps of bpf/src/policy.c must hold for a NodePolicy (pure,
// in this file), writes only the entries that differ (sync.go), and
// attaches the programs to the pods' veths (attach.go). Maps and links are
// pinned, so a restarted plugin adopts them and enforcement never pauses.
package datapath

import (
	"fmt"
	"net/netip"
	"slices"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

// Directions and flags as bpf/src/policy.c defines them.
const (
	dirIngress = 0
	dirEgress  = 1

	epIngressEnforced = 1
	epEgressEnforced  = 2
	epHost            = 4

	hostIdentity = 1
	// hostEndpointKey is the endpoints map key of the host's own entry,
	// which the pods' programs read for what they send to the node (no
	// interface has index 0).
	hostEndpointKey = 0

	verdictDeny = 1

	// worldIdentity is what the programs give an address no entry claims.
	worldIdentity = 2
	// CIDRIdentityBase starts the node-local identities given to the CIDR
	// prefixes of policies (Cilium's local identity scope).
	CIDRIdentityBase = 1 << 24
)

// Endpoint is a local pod as the programs know it: by the ifindex of the
// host side of its veth, with its identity.
type Endpoint struct {
	Ifindex  uint32
	Identity uint32
	// NamedPorts are the pod's container ports that have a name, for
	// entries with a port name.
	NamedPorts []NamedPort
}

// NamedPort is a container port with a name.
type NamedPort struct {
	Name     string
	Protocol uint8
	Port     uint16
}

// PolicyKey is a policy map key before its port becomes a prefix.
type PolicyKey struct {
	Local, Peer uint32
	Dir, Proto  uint8
	Port        uint16 // the prefix's first port
	PortBits    uint8  // prefix length of the port, 0-16
}

// EndpointValue is an endpoints map value.
type EndpointValue struct {
	Identity, Flags uint32
}

// State is what the maps hold (desired or read back).
type State struct {
	Endpoints map[uint32]EndpointValue
	Policy    map[PolicyKey]uint32 // value: flags (verdictDeny)
	IPCache   map[netip.Prefix]uint32
	Services  map[ServiceKey]ServiceValue
}

// Input is what Desired computes from.
type Input struct {
	Spec      nodesv1alpha1.NodePolicySpec
	Endpoints []Endpoint
	// Addresses are the cluster's addresses with their identities: pods,
	// this node (host), other nodes (remote-node).
	Addresses map[netip.Addr]uint32
	// CIDRIdentities are the CIDR identities given so far (from the maps
	// on a restart), kept for the prefixes still in use, so that entries
	// do not change number.
	CIDRIdentities map[netip.Prefix]uint32
	// HostDevices are the ifindexes of the node's own devices, which a
	// host policy (Spec.Host) is enforced on.
	HostDevices []uint32
	// Services are the cluster's Service frontends with their ready
	// backends, so that a pod's egress to a Service address is judged by
	// where kube-proxy sends it.
	Services []Service
}

// Result is what Desired computes.
type Result struct {
	State State
	// CIDRIdentities are the CIDR identities the maps use, for the next
	// Input.
	CIDRIdentities map[netip.Prefix]uint32
	Problems       []Problem
	// Rules explain verdicts: which policies allowed or denied a flow.
	Rules Rules
}

// Problem is an entry that could not be programmed as written.
type Problem struct {
	// Identity is the local identity concerned; 0 for the NodePolicy as a
	// whole.
	Identity int64
	Message  string
}

// Desired computes the maps' contents. Deny precedence is resolved here
// within each (local, peer, direction, protocol): denied ports are cut out
// of allowed ranges, so no allow prefix is more specific than a deny that
// covers it; across those keys the program lets any deny win.
func Desired(in Input) Result {
	rules := Rules{}
	st := State{Endpoints: map[uint32]EndpointValue{}, Policy: map[PolicyKey]uint32{}, IPCache: map[netip.Prefix]uint32{}}

	cidrIDs := allocateCIDRIdentities(in.Spec.PeerSets, in.CIDRIdentities)
	for p, id := range cidrIDs {
		st.IPCache[p] = id
	}
	// Addresses of the cluster win over CIDR prefixes of the same length:
	// a policy's CIDR never captures a pod.
	for a, id := range in.Addresses {
		st.IPCache[netip.PrefixFrom(a, a.BitLen())] = id
	}
	st.Services = serviceEntries(in.Services, st.IPCache, cidrIDs)

	// The API server no longer refuses a list with two entries of one
	// identity or peer set (the lists are atomic); the controller never
	// writes one, and a NodePolicy that has one is reported, not guessed at.
	var problems []Problem
	sets := map[string][]uint32{}
	for _, ps := range in.Spec.PeerSets {
		if _, dup := sets[ps.Name]; dup {
			problems = append(problems, Problem{Message: fmt.Sprintf("peer set %q is listed more than once; the last one is used", ps.Name)})
		}
		sets[ps.Name] = expandPeerSet(ps, cidrIDs)
	}

	policies := map[int64]*nodesv1alpha1.IdentityPolicy{}
	for i := range in.Spec.Identities {
		id := in.Spec.Identities[i].Identity
		if policies[id] != nil {
			problems = append(problems, Problem{Identity: id, Message: "listed more than once; the entries of all are enforced, the enforcement of the last"})
		}
		policies[id] = &in.Spec.Identities[i]
	}
	named := map[uint32][]NamedPort{}
	for _, ep := range in.Endpoints {
		var flags uint32
		if p := policies[int64(ep.Identity)]; p != nil {
			flags = enforcementFlags(p.DirectionalPolicy)
		}
		st.Endpoints[ep.Ifindex] = EndpointValue{Identity: ep.Identity, Flags: flags}
		for _, np := range ep.NamedPorts {
			if !slices.Contains(named[ep.Identity], np) {
				named[ep.Identity] = append(named[ep.Identity], np)
			}
		}
	}
	if h := in.Spec.Host; h != nil {
		flags := enforcementFlags(*h)
		st.Endpoints[hostEndpointKey] = EndpointValue{Identity: hostIdentity, Flags: flags}
		for _, dev := range in.HostDevices {
			st.Endpoints[dev] = EndpointValue{Identity: hostIdentity, Flags: flags | epHost}
		}
	}

	pc := policyCompiler{st: st, sets: sets, rules: rules, problems: problems}
	for _, ip := range in.Spec.Identities {
		pc.add(uint32(ip.Identity), ip.DirectionalPolicy, named[uint32(ip.Identity)])
	}
	if h := in.Spec.Host; h != nil {
		// The node's own ports have no names: a host policy's port name
		// opens nothing.
		pc.add(hostIdentity, *h, nil)
	}
	problems = pc.problems
	slices.SortStableFunc(problems, func(a, b Problem) int { return int(a.Identity - b.Identity) })
	return Result{State: st, CIDRIdentities: cidrIDs, Problems: problems, Rules: rules}
}

func enforcementFlags(d nodesv1alpha1.DirectionalPolicy) uint32 {
	var flags uint32
	if d.Ingress.Enforced {
		flags |= epIngressEnforced
	}
	if d.Egress.Enforced {
		flags |= epEgressEnforced
	}
	return flags
}

// policyCompiler turns the entries of endpoints' policies into policy
// map entries.
type policyCompiler struct {
	st       State
	sets     map[string][]uint32
	rules    Rules
	problems []Problem
}

// add writes the policy of local identity into the policy map.
func (pc *policyCompiler) add(local uint32, p nodesv1alpha1.DirectionalPolicy, named []NamedPort) {
	for dir, d := range map[uint8]nodesv1alpha1.PolicyDirection{dirIngress: p.Ingress, dirEgress: p.Egress} {
		scope := ruleScope{local, Direction(dir)}
		type rangesKey struct {
			peer  uint32
			proto uint8
		}
		allow, deny := map[rangesKey][]portRange{}, map[rangesKey][]portRange{}
		for _, e := range d.Entries {
			rs, err := entryRanges(e, dir, named)
			if err != nil {
				pc.problems = append(pc.problems, Problem{Identity: int64(local), Message: err.Error()})
				continue
			}
			if len(rs) == 0 {
				continue // a port name none of the identity's pods has: it matches nothing
			}
			peers := []uint32{0}
			if e.Peers != nodesv1alpha1.AnyPeer {
				var ok bool
				if peers, ok = pc.sets[e.Peers]; !ok {
					pc.problems = append(pc.problems, Problem{Identity: int64(local), Message: fmt.Sprintf("entry names peer set %q, which the NodePolicy lacks", e.Peers)})
					continue
				}
			}
			for _, r := range rs {
				pc.rules[scope] = append(pc.rules[scope], newRule(e, r, peers, p.Policies))
				for _, peer := range peers {
					k := rangesKey{peer, uint8(e.Protocol)}
					if e.Deny {
						deny[k] = append(deny[k], r)
					} else {
						allow[k] = append(allow[k], r)
					}
				}
			}
		}
		put := func(k rangesKey, rs []portRange, flags uint32) {
			for _, r := range rs {
				for _, pr := range r.prefixes() {
					pc.st.Policy[PolicyKey{Local: local, Peer: k.peer, Dir: dir, Proto: k.proto, Port: pr.value, PortBits: pr.bits}] = flags
				}
			}
		}
		for k, rs := range deny {
			put(k, normalize(rs), verdictDeny)
		}
		for k, rs := range allow {
			put(k, minus(normalize(rs), normalize(deny[k])), 0)
		}
	}
}

// entryRanges are the ports of an entry. A port name is looked up among
// the local pods' named ports of the entry's protocol (any, for an entry
// of every protocol) for ingress, and may give several numbers (pods of
// one identity that number it differently) or none (it then matches
// nothing, as in Kubernetes). An egress name is the peer's, which the
// policy controller resolves to numbers: one reaching the node comes from
// an older controller and opens nothing.
func entryRanges(e nodesv1alpha1.PolicyEntry, dir uint8, named []NamedPort) ([]portRange, error) {
	if e.PortName == "" {
		return []portRange{{uint16(e.Port), uint16(e.EndPort)}}, nil
	}
	if dir != dirIngress {
		return nil, fmt.Errorf("egress to the named port %q reached the node unresolved (the policy controller resolves egress port names: is it older than this plugin?); it opens nothing", e.PortName)
	}
	var out []portRange
	for _, np := range named {
		if np.Name == e.PortName && (e.Protocol == 0 || int32(np.Protocol) == e.Protocol) {
			out = append(out, portRange{np.Port, np.Port})
		}
	}
	return out, nil
}

// allocateCIDRIdentities gives each CIDR of the peer sets an identity:
// the one it had (held), else the lowest free one. The whole address
// space of a family is the world itself, which needs no entry.
func allocateCIDRIdentities(sets []nodesv1alpha1.PeerSet, held map[netip.Prefix]uint32) map[netip.Prefix]uint32 {
	want := map[netip.Prefix]bool{}
	for _, ps := range sets {
		for _, c := range ps.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil || p.Bits() == 0 {
				continue
			}
			want[p.Masked()] = true
		}
	}
	out := map[netip.Prefix]uint32{}
	used := map[uint32]bool{}
	for p, id := range held {
		if want[p] {
			out[p] = id
			used[id] = true
		}
	}
	var fresh []netip.Prefix
	for p := range want {
		if _, ok := out[p]; !ok {
			fresh = append(fresh, p)
		}
	}
	slices.SortFunc(fresh, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	next := uint32(CIDRIdentityBase)
	for _, p := range fresh {
		for used[next] {
			next++
		}
		out[p] = next
		used[next] = true
	}
	return out
}

// expandPeerSet is the identities a peer set matches on this node: its
// identities, and the identity of every CIDR prefix known here that lies
// within one of its CIDRs (an address resolves to its most specific
// prefix). A /0 is the world: unclaimed addresses have identity 2.
func expandPeerSet(ps nodesv1alpha1.PeerSet, cidrIDs map[netip.Prefix]uint32) []uint32 {
	var out []uint32
	for _, n := range ps.Identities {
		out = append(out, uint32(n))
	}
	for _, c := range ps.CIDRs {
		within, err := netip.ParsePrefix(c)
		if err != nil {
			continue
		}
		within = within.Masked()
		if within.Bits() == 0 {
			out = append(out, worldIdentity)
		}
		for p, id := range cidrIDs {
			if p.Addr().Is4() == within.Addr().Is4() && p.Bits() >= within.Bits() && within.Contains(p.Addr()) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
