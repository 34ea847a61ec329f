// Package planner decides, for every node, which of its pods' traffic goes
// to which egress gateway, and which gateways it is a candidate for. It is
// pure and deterministic: the controller feeds it the policies, pods,
// namespaces and nodes, and writes back what it returns.
//
// The rules, from the seed system, with high availability added:
//   - a pod is a source of a policy when it matches any of its selectors
//     (podSelector with the io.kubernetes.pod.namespace key,
//     namespaceSelector, and nodeSelector limiting them to pods on matching
//     nodes); a rule with neither pod nor namespace selector selects nothing;
//   - each source uses one of the policy's gateways, chosen by rendezvous
//     hashing of its pod UID, so it is stable while the set of gateways is,
//     and adding a gateway moves only the pods it ranks first for;
//   - a gateway's candidates are the nodes its nodeSelector matches, by name.
//     With an egressIP they all stand by and the first live one (decided by
//     the node plugins between themselves) holds the address; without one,
//     the first Ready candidate is the gateway, as in the seed system;
//   - a gateway no node matches drops its sources' traffic.
package planner

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/plexus-net/plexus/internal/rendezvous"
)

// PodNamespaceKey is the special label key that matches a pod's namespace.
const PodNamespaceKey = "io.kubernetes.pod.namespace"

// Policy is a CiliumEgressGatewayPolicy, its selectors compiled.
type Policy struct {
	Name                            string
	Rules                           []Rule
	DestinationCIDRs, ExcludedCIDRs []string
	Gateways                        []Gateway
	// Err is a selector that does not compile: the policy does nothing.
	Err error
	// Notes say what of the policy as written is not used, and why.
	Notes []string
}

// Rule is one entry of spec.selectors; nil selectors are absent.
type Rule struct {
	Pods, Namespaces, Nodes labels.Selector
}

// Gateway is one entry of the policy's gateways.
type Gateway struct {
	Nodes     labels.Selector
	EgressIP  string
	Interface string
}

// Pod is what the planner needs of a pod.
type Pod struct {
	Namespace, Name, UID string
	Labels               labels.Set
	Node                 string
	IPs                  []string
}

// Node is a node.
type Node struct {
	Name    string
	Labels  labels.Set
	Address string // InternalIP; nodes without one cannot be gateways
	Ready   bool
}

// Traffic is sources, destinations and exceptions of one (policy, gateway).
type Traffic struct {
	Policy                          string
	Gateway                         int
	SourceIPs                       []string
	DestinationCIDRs, ExcludedCIDRs []string
}

// Steering is where a node sends its sources of one (policy, gateway): to
// the floating EgressIP, to GatewayNode at GatewayIP, or, with neither,
// nowhere (dropped).
type Steering struct {
	Traffic
	EgressIP               string
	GatewayNode, GatewayIP string
}

// Duty is a gateway a node is a candidate for.
type Duty struct {
	Traffic
	EgressIP   string
	Interface  string
	Candidates []string
}

// Peer is a node and its heartbeat address.
type Peer struct{ Node, Address string }

// NodePlan is one node's share.
type NodePlan struct {
	Peers    []Peer
	Steering []Steering
	Duties   []Duty
}

// GatewayResult is what became of one gateway of a policy.
type GatewayResult struct {
	Index      int
	EgressIP   string
	Candidates []string // floating: all, in order; otherwise the chosen node alone
	Sources    int      // source addresses assigned to it
}

// PolicyResult summarises a policy for its status.
type PolicyResult struct {
	Sources  int // selected pod addresses
	Gateways []GatewayResult
	// Invalid: a selector does not compile, so the policy does nothing.
	Invalid bool
	// Unmatched are the gateways no node matches (their traffic is dropped).
	Unmatched []int
	// Problems say, in words, why (part of) the policy does not work as
	// written.
	Problems []string
	// Notes say what of the policy is ignored although it works.
	Notes []string
}

// Plan is the whole decision.
type Plan struct {
	Nodes    map[string]*NodePlan
	Policies map[string]*PolicyResult
}

// Decide computes the plan. namespaces maps namespace names to their labels.
func Decide(policies []Policy, pods []Pod, namespaces map[string]labels.Set, nodes []Node) Plan {
	plan := Plan{Nodes: map[string]*NodePlan{}, Policies: map[string]*PolicyResult{}}
	nodes = slices.SortedFunc(slices.Values(nodes), func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	nodeByName := map[string]Node{}
	for _, n := range nodes {
		nodeByName[n.Name] = n
	}
	pods = slices.SortedFunc(slices.Values(pods), func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	policies = slices.SortedFunc(slices.Values(policies), func(a, b Policy) int { return cmp.Compare(a.Name, b.Name) })
	nodePlan := func(name string) *NodePlan {
		if plan.Nodes[name] == nil {
			plan.Nodes[name] = &NodePlan{}
		}
		return plan.Nodes[name]
	}

	for _, p := range policies {
		res := &PolicyResult{Notes: slices.Clone(p.Notes)}
		plan.Policies[p.Name] = res
		if p.Err != nil {
			res.Invalid = true
			res.Problems = append(res.Problems, p.Err.Error())
			continue
		}
		gws := make([]gatewayPlan, len(p.Gateways))
		keys := make([]string, len(p.Gateways))
		for i, g := range p.Gateways {
			gws[i] = planGateway(g, nodes)
			keys[i] = strconv.Itoa(i)
			if len(gws[i].candidates) == 0 {
				res.Unmatched = append(res.Unmatched, i)
				res.Problems = append(res.Problems, fmt.Sprintf("%s matches no node with an InternalIP%s: its sources' traffic to the destinations is dropped",
					gatewayField(p, i), readyNote(g.EgressIP)))
			}
		}

		// Sources, assigned to gateways and grouped by node.
		perNode := map[string][][]string{} // node → gateway index → IPs
		for _, pod := range pods {
			if !selected(p.Rules, pod, namespaces[pod.Namespace], nodeByName[pod.Node].Labels) {
				continue
			}
			gi := 0
			if len(keys) > 1 {
				ranked := slices.Clone(keys)
				rendezvous.Rank(pod.UID, ranked)
				gi, _ = strconv.Atoi(ranked[0])
			}
			if perNode[pod.Node] == nil {
				perNode[pod.Node] = make([][]string, len(gws))
			}
			perNode[pod.Node][gi] = append(perNode[pod.Node][gi], pod.IPs...)
			gws[gi].sources = append(gws[gi].sources, pod.IPs...)
			res.Sources += len(pod.IPs)
		}
		traffic := func(gi int, ips []string) Traffic {
			return Traffic{Policy: p.Name, Gateway: gi, SourceIPs: sortedIPs(ips),
				DestinationCIDRs: slices.Clone(p.DestinationCIDRs), ExcludedCIDRs: slices.Clone(p.ExcludedCIDRs)}
		}
		for _, node := range slices.Sorted(maps.Keys(perNode)) {
			for gi, ips := range perNode[node] {
				if len(ips) == 0 {
					continue
				}
				st := Steering{Traffic: traffic(gi, ips), EgressIP: gws[gi].egressIP}
				if st.EgressIP == "" && len(gws[gi].candidates) > 0 {
					st.GatewayNode = gws[gi].candidates[0]
					st.GatewayIP = nodeByName[st.GatewayNode].Address
				}
				np := nodePlan(node)
				np.Steering = append(np.Steering, st)
			}
		}
		for gi, g := range gws {
			res.Gateways = append(res.Gateways, GatewayResult{Index: gi, EgressIP: g.egressIP, Candidates: g.candidates, Sources: len(g.sources)})
			if len(g.sources) == 0 {
				continue // nothing to translate: the candidates need not know
			}
			for _, c := range g.candidates {
				np := nodePlan(c)
				np.Duties = append(np.Duties, Duty{Traffic: traffic(gi, g.sources), EgressIP: g.egressIP,
					Interface: p.Gateways[gi].Interface, Candidates: slices.Clone(g.candidates)})
			}
		}
		if res.Sources == 0 {
			res.Problems = append(res.Problems, "no running pod with an address matches spec.selectors")
		}
	}

	// Heartbeat peers: the candidates of every floating gateway a node
	// stands for.
	for _, np := range plan.Nodes {
		seen := map[string]bool{}
		for _, d := range np.Duties {
			if d.EgressIP == "" {
				continue
			}
			for _, c := range d.Candidates {
				if !seen[c] {
					seen[c] = true
					np.Peers = append(np.Peers, Peer{Node: c, Address: nodeByName[c].Address})
				}
			}
		}
		slices.SortFunc(np.Peers, func(a, b Peer) int { return cmp.Compare(a.Node, b.Node) })
	}
	return plan
}

type gatewayPlan struct {
	egressIP   string
	candidates []string
	sources    []string
}

// planGateway finds a gateway's candidates: with an egressIP every matching
// node with an address (the node plugins pick the first live one), without
// one the first Ready such node (a single gateway, as in the seed system).
func planGateway(g Gateway, nodes []Node) gatewayPlan {
	gp := gatewayPlan{egressIP: g.EgressIP}
	for _, n := range nodes { // sorted by name
		if n.Address == "" || !g.Nodes.Matches(n.Labels) {
			continue
		}
		if gp.egressIP == "" {
			if n.Ready {
				gp.candidates = []string{n.Name}
				break
			}
			continue
		}
		gp.candidates = append(gp.candidates, n.Name)
	}
	return gp
}

// selected reports whether any rule selects the pod. Every selector a rule
// has must match; a rule needs a pod or a namespace selector.
func selected(rules []Rule, pod Pod, nsLabels, nodeLabels labels.Set) bool {
	withNS := make(labels.Set, len(pod.Labels)+1)
	for k, v := range pod.Labels {
		withNS[k] = v
	}
	withNS[PodNamespaceKey] = pod.Namespace // the special key wins over a label
	for _, r := range rules {
		if r.Pods == nil && r.Namespaces == nil {
			continue
		}
		if (r.Pods == nil || r.Pods.Matches(withNS)) &&
			(r.Namespaces == nil || r.Namespaces.Matches(nsLabels)) &&
			(r.Nodes == nil || r.Nodes.Matches(nodeLabels)) {
			return true
		}
	}
	return false
}

func gatewayField(p Policy, i int) string {
	if len(p.Gateways) == 1 {
		return "spec.egressGateway(s).nodeSelector"
	}
	return fmt.Sprintf("spec.egressGateways[%d].nodeSelector", i)
}

func readyNote(egressIP string) string {
	if egressIP == "" {
		return " that is Ready"
	}
	return ""
}

func sortedIPs(ips []string) []string {
	out := slices.Clone(ips)
	slices.SortFunc(out, func(a, b string) int {
		x, errx := netip.ParseAddr(a)
		y, erry := netip.ParseAddr(b)
		if errx != nil || erry != nil {
			return cmp.Compare(a, b)
		}
		return x.Compare(y)
	})
	return slices.Compact(out)
}
