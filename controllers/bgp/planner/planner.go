// Package planner fans the BGP cluster configs out into one node config
// spec per selected node. It is pure and deterministic: the BGP controller
// feeds it the CiliumBGPClusterConfigs, CiliumBGPNodeConfigOverrides,
// nodes and the names of the existing CiliumBGPPeerConfigs, and writes back
// what it returns.
//
// The rules, from the seed system:
//   - a cluster config applies to the nodes its nodeSelector selects (no
//     selector: every node);
//   - two configs must not select the same node: the older one (by creation
//     time, then name) wins, and the other is applied to no node at all and
//     reports the conflict;
//   - a node's CiliumBGPNodeConfigOverride (named after the node) sets, per
//     instance, the router ID, local port and local ASN, and per peer the
//     local address;
//   - the router ID is the override's, else (mode default) the node's IPv4
//     InternalIP (none on an IPv6-only node, which derives one itself),
//     else (mode ip-pool) an address of the pool: kept from the node's
//     current config when still valid, otherwise the lowest free one.
package planner

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Router ID allocation modes.
const (
	RouterIDDefault = "default"
	RouterIDIPPool  = "ip-pool"
)

// ClusterConfig is a CiliumBGPClusterConfig with its selector compiled.
type ClusterConfig struct {
	Name      string
	Created   time.Time
	Nodes     labels.Selector // nil: every node
	Instances []ciliumv2.CiliumBGPInstance
}

// Node is a node.
type Node struct {
	Name   string
	Labels labels.Set
	IPv4   netip.Addr // its IPv4 InternalIP, if any
}

// Input is everything the plan depends on.
type Input struct {
	Configs   []ClusterConfig
	Nodes     []Node
	Overrides map[string]ciliumv2.CiliumBGPNodeConfigOverrideSpec // by node name
	// PeerConfigs are the names of the CiliumBGPPeerConfigs that exist.
	PeerConfigs map[string]bool
	// RouterIDMode is RouterIDDefault or RouterIDIPPool; RouterIDPool is the
	// pool of the latter.
	RouterIDMode string
	RouterIDPool netip.Prefix
	// CurrentRouterIDs are the router IDs the nodes' configs hold now
	// (node → instance → ID), so that a pool assignment survives restarts.
	CurrentRouterIDs map[string]map[string]string
}

// ConfigResult is what became of one cluster config.
type ConfigResult struct {
	// Nodes it is applied to, sorted.
	Nodes []string
	// Selected is true when its selector matches a node (applied or not).
	Selected bool
	// ConflictsWith are the older configs that already select some of the
	// nodes it selects; it is then applied to no node.
	ConflictsWith []string
	// MissingPeerConfigs are peerConfigRef names that do not exist, sorted.
	MissingPeerConfigs []string
}

// NodeResult is one node's config spec and what could not be honoured.
type NodeResult struct {
	Config   string // the cluster config it comes from
	Spec     ciliumv2.CiliumBGPNodeSpec
	Problems []string
}

// Plan is the whole decision.
type Plan struct {
	Configs map[string]*ConfigResult
	Nodes   map[string]*NodeResult
}

// Decide computes the plan.
func Decide(in Input) Plan {
	plan := Plan{Configs: map[string]*ConfigResult{}, Nodes: map[string]*NodeResult{}}
	configs := slices.SortedFunc(slices.Values(in.Configs), func(a, b ClusterConfig) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Name, b.Name))
	})
	nodes := slices.SortedFunc(slices.Values(in.Nodes), func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })

	owner := map[string]string{} // node → the config applied to it
	for _, c := range configs {
		res := &ConfigResult{MissingPeerConfigs: missingPeerConfigs(c, in.PeerConfigs)}
		plan.Configs[c.Name] = res
		var selected []string
		conflicts := map[string]bool{}
		for _, n := range nodes {
			if c.Nodes != nil && !c.Nodes.Matches(n.Labels) {
				continue
			}
			selected = append(selected, n.Name)
			if o, taken := owner[n.Name]; taken {
				conflicts[o] = true
			}
		}
		res.Selected = len(selected) > 0
		if len(conflicts) > 0 {
			res.ConflictsWith = slices.Sorted(maps.Keys(conflicts))
			continue
		}
		for _, n := range selected {
			owner[n] = c.Name
		}
		res.Nodes = selected
	}

	ids := newRouterIDs(in, owner)
	byName := map[string]Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	cfgByName := map[string]ClusterConfig{}
	for _, c := range configs {
		cfgByName[c.Name] = c
	}
	for _, name := range slices.Sorted(maps.Keys(owner)) {
		c := cfgByName[owner[name]]
		nr := &NodeResult{Config: c.Name}
		plan.Nodes[name] = nr
		ov := in.Overrides[name]
		for _, inst := range c.Instances {
			io := findInstance(ov, inst.Name)
			ni := ciliumv2.CiliumBGPNodeInstance{Name: inst.Name, LocalASN: inst.LocalASN, LocalPort: inst.LocalPort}
			if io != nil {
				ni.LocalASN = cmp.Or(io.LocalASN, ni.LocalASN)
				ni.LocalPort = cmp.Or(io.LocalPort, ni.LocalPort)
			}
			if ni.LocalASN == nil {
				nr.Problems = append(nr.Problems, fmt.Sprintf("instance %s: no localASN in the cluster config %s nor in the node's override", inst.Name, c.Name))
			}
			id, problem := ids.assign(byName[name], inst.Name, io)
			if problem != "" {
				nr.Problems = append(nr.Problems, fmt.Sprintf("instance %s: %s", inst.Name, problem))
			}
			if id != "" {
				ni.RouterID = &id
			}
			for _, p := range inst.Peers {
				np := ciliumv2.CiliumBGPNodePeer{Name: p.Name, PeerAddress: p.PeerAddress, PeerASN: p.PeerASN,
					AutoDiscovery: p.AutoDiscovery, PeerConfigRef: p.PeerConfigRef}
				if po := findPeer(io, p.Name); po != nil {
					np.LocalAddress = po.LocalAddress
				}
				ni.Peers = append(ni.Peers, np)
			}
			nr.Spec.BGPInstances = append(nr.Spec.BGPInstances, ni)
		}
		nr.Problems = append(nr.Problems, unknownOverrides(ov, c)...)
	}
	return plan
}

func missingPeerConfigs(c ClusterConfig, exist map[string]bool) []string {
	missing := map[string]bool{}
	for _, inst := range c.Instances {
		for _, p := range inst.Peers {
			if p.PeerConfigRef != nil && !exist[p.PeerConfigRef.Name] {
				missing[p.PeerConfigRef.Name] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(missing))
}

// unknownOverrides names override instances and peers the cluster config
// does not have: they override nothing, which the user should know.
func unknownOverrides(ov ciliumv2.CiliumBGPNodeConfigOverrideSpec, c ClusterConfig) []string {
	var out []string
	for _, io := range ov.BGPInstances {
		i := slices.IndexFunc(c.Instances, func(x ciliumv2.CiliumBGPInstance) bool { return x.Name == io.Name })
		if i < 0 {
			out = append(out, fmt.Sprintf("override instance %s: no such instance in the cluster config %s", io.Name, c.Name))
			continue
		}
		for _, po := range io.Peers {
			if !slices.ContainsFunc(c.Instances[i].Peers, func(p ciliumv2.CiliumBGPPeer) bool { return p.Name == po.Name }) {
				out = append(out, fmt.Sprintf("override peer %s/%s: no such peer in the cluster config %s", io.Name, po.Name, c.Name))
			}
		}
	}
	return out
}

func findInstance(ov ciliumv2.CiliumBGPNodeConfigOverrideSpec, name string) *ciliumv2.CiliumBGPNodeConfigInstanceOverride {
	for i := range ov.BGPInstances {
		if ov.BGPInstances[i].Name == name {
			return &ov.BGPInstances[i]
		}
	}
	return nil
}

func findPeer(io *ciliumv2.CiliumBGPNodeConfigInstanceOverride, name string) *ciliumv2.CiliumBGPNodeConfigPeerOverride {
	if io == nil {
		return nil
	}
	for i := range io.Peers {
		if io.Peers[i].Name == name {
			return &io.Peers[i]
		}
	}
	return nil
}
