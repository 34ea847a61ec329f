// Package planner decides, for every node, which Service addresses it may
// announce on its L2 segment and which other nodes are candidates for the
// same addresses, in order of preference. It is pure: the controller feeds it
// the cluster's policies, Services, nodes and endpoints and writes back what
// it returns.
//
// The election itself is not decided here: for each address the candidates
// come in a fixed order (rendezvous hashing of node and address, so the
// addresses of many Services spread over the nodes and a node's failure moves
// only its own addresses), and the node plugins, which learn from each other
// on the segment which candidates are alive, let the first live one answer.
package planner

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/plexus-net/plexus/internal/rendezvous"
	"k8s.io/apimachinery/pkg/labels"
)

// ClassL2 is the loadBalancerClass the L2 announcer serves besides none.
const ClassL2 = "io.cilium/l2-announcer"

// Policy is a CiliumL2AnnouncementPolicy, its selectors compiled.
type Policy struct {
	Name            string
	Services        labels.Selector // nil when ServiceErr is set
	Nodes           labels.Selector // nil when NodeErr is set
	Interfaces      []string
	ExternalIPs     bool
	LoadBalancerIPs bool
	ServiceErr      error
	NodeErr         error
	// InterfacesErr names the first interface expression that does not
	// compile (CheckInterfaces).
	InterfacesErr error
}

// CheckInterfaces returns the error of the first expression of exprs that
// does not compile as a regular expression, for Policy.InterfacesErr.
func CheckInterfaces(exprs []string) error {
	for _, re := range exprs {
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("interfaces: %q: %w", re, err)
		}
	}
	return nil
}

// Service is what the planner needs of a Service.
type Service struct {
	Namespace, Name string
	// Labels are the Service's labels with the special namespace and name
	// keys (selectors.ServiceLabels).
	Labels labels.Set
	// Class is spec.loadBalancerClass ("" when unset).
	Class string
	// LoadBalancerIPs are status.loadBalancer.ingress IPs; ExternalIPs
	// spec.externalIPs.
	LoadBalancerIPs, ExternalIPs []string
	// LocalOnly: externalTrafficPolicy Local. Then only nodes in
	// EndpointNodes (those with a ready endpoint) are candidates.
	LocalOnly     bool
	EndpointNodes map[string]bool
}

// Key is namespace/name.
func (s Service) Key() string { return s.Namespace + "/" + s.Name }

// Node is a node that may announce.
type Node struct {
	Name    string
	Labels  labels.Set
	Address string // InternalIP used for heartbeats; nodes without one cannot take part
}

// Address is one address a node may announce.
type Address struct {
	IP         string
	Services   []string
	Interfaces []string
	Candidates []string
}

// Peer is a node and its heartbeat address.
type Peer struct{ Node, Address string }

// NodePlan is one node's share.
type NodePlan struct {
	Peers     []Peer
	Addresses []Address
}

// PolicyResult is what a policy selects and what is wrong with it.
type PolicyResult struct {
	Services, Nodes int
	// BadRegex is the first interface expression that does not compile.
	BadRegex error
}

// ServiceResult says, per address of a Service, who may announce it, or why
// nobody may.
type ServiceResult struct {
	// Candidates per IP, most preferred first.
	Candidates map[string][]string
	// Problem explains an empty candidate list or an address left out.
	Problem string
}

// Plan is the decision for the whole cluster.
type Plan struct {
	Nodes    map[string]*NodePlan
	Policies map[string]*PolicyResult
	// Services holds every Service some valid policy selects.
	Services map[string]*ServiceResult
}

// Decide computes the plan: each valid policy adds its Services' addresses
// with the nodes it selects as candidates (collect), then every address's
// candidates are ranked and handed to the nodes (assign), each node learns
// its peers, and Services left without candidates are told why.
func Decide(policies []Policy, services []Service, nodes []Node) Plan {
	plan := Plan{Nodes: map[string]*NodePlan{}, Policies: map[string]*PolicyResult{}, Services: map[string]*ServiceResult{}}
	c := collector{plan: &plan, addrs: map[string]*addrState{}}
	policies = slices.Clone(policies)
	slices.SortFunc(policies, func(a, b Policy) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range policies {
		pr := &PolicyResult{BadRegex: p.InterfacesErr}
		plan.Policies[p.Name] = pr
		if p.ServiceErr != nil || p.NodeErr != nil || p.InterfacesErr != nil {
			continue // a broken policy announces nothing
		}
		c.collect(p, pr, services, nodes)
	}
	c.assign()
	addPeers(plan.Nodes, nodes)
	explainEmpty(plan.Services, services)
	return plan
}

// addrState is what the policies say about one address: the Services that
// have it and, per candidate node, the interface expressions it may be
// announced on ("" for any).
type addrState struct {
	services   map[string]bool
	candidates map[string]map[string]bool
}

// collector gathers the addresses every policy selects, with their
// candidates, across policies.
type collector struct {
	plan  *Plan
	addrs map[string]*addrState
}

// collect adds what policy p selects: its Services' addresses, announced
// by the nodes it selects.
func (c *collector) collect(p Policy, pr *PolicyResult, services []Service, nodes []Node) {
	var selected []Node
	for _, n := range nodes {
		if p.Nodes.Matches(n.Labels) {
			selected = append(selected, n)
		}
	}
	pr.Nodes = len(selected)
	for _, s := range services {
		if !eligible(s) || !p.Services.Matches(s.Labels) {
			continue
		}
		ips := announcedIPs(p, s)
		if len(ips) == 0 {
			continue
		}
		pr.Services++
		sr := c.plan.Services[s.Key()]
		if sr == nil {
			sr = &ServiceResult{Candidates: map[string][]string{}}
			c.plan.Services[s.Key()] = sr
		}
		for _, ip := range ips {
			c.addAddress(p, s, sr, ip, selected)
		}
	}
}

// addAddress records that Service s has ip, which the selected nodes may
// announce on p's interfaces (only nodes with a ready endpoint when the
// Service's traffic policy is Local). IPv6 addresses are not announced:
// the Service is told so.
func (c *collector) addAddress(p Policy, s Service, sr *ServiceResult, ip string, selected []Node) {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		return
	case !a.Is4():
		sr.Problem = fmt.Sprintf("%s is not announced: L2 announcements are IPv4 (ARP) only", ip)
		return
	}
	st := c.addrs[ip]
	if st == nil {
		st = &addrState{services: map[string]bool{}, candidates: map[string]map[string]bool{}}
		c.addrs[ip] = st
	}
	st.services[s.Key()] = true
	for _, n := range selected {
		if n.Address == "" || (s.LocalOnly && !s.EndpointNodes[n.Name]) {
			continue
		}
		exprs := st.candidates[n.Name]
		if exprs == nil {
			exprs = map[string]bool{}
			st.candidates[n.Name] = exprs
		}
		if len(p.Interfaces) == 0 {
			exprs[""] = true
		}
		for _, re := range p.Interfaces {
			exprs[re] = true
		}
	}
	if _, ok := sr.Candidates[ip]; !ok {
		sr.Candidates[ip] = nil
	}
}

// assign ranks every address's candidates (rendezvous hashing) and gives
// each candidate node the address, in address order.
func (c *collector) assign() {
	ips := make([]string, 0, len(c.addrs))
	for ip := range c.addrs {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	for _, ip := range ips {
		st := c.addrs[ip]
		cands := make([]string, 0, len(st.candidates))
		for n := range st.candidates {
			cands = append(cands, n)
		}
		rendezvous.Rank(ip, cands)
		svcs := make([]string, 0, len(st.services))
		for s := range st.services {
			svcs = append(svcs, s)
			c.plan.Services[s].Candidates[ip] = cands
		}
		slices.Sort(svcs)
		for _, n := range cands {
			np := c.plan.Nodes[n]
			if np == nil {
				np = &NodePlan{}
				c.plan.Nodes[n] = np
			}
			np.Addresses = append(np.Addresses, Address{IP: ip, Services: svcs, Interfaces: interfaces(st.candidates[n]), Candidates: cands})
		}
	}
}

// addPeers gives each node its heartbeat peers: itself and every node that
// is a candidate for one of its addresses.
func addPeers(plans map[string]*NodePlan, nodes []Node) {
	nodeAddr := map[string]string{}
	for _, n := range nodes {
		nodeAddr[n.Name] = n.Address
	}
	for name, np := range plans {
		peers := map[string]bool{name: true}
		for _, a := range np.Addresses {
			for _, c := range a.Candidates {
				peers[c] = true
			}
		}
		for p := range peers {
			np.Peers = append(np.Peers, Peer{Node: p, Address: nodeAddr[p]})
		}
		slices.SortFunc(np.Peers, func(a, b Peer) int { return strings.Compare(a.Node, b.Node) })
	}
}

// explainEmpty says, for a selected Service with an address nobody may
// announce, why.
func explainEmpty(results map[string]*ServiceResult, services []Service) {
	for _, s := range services {
		sr := results[s.Key()]
		if sr == nil || sr.Problem != "" {
			continue
		}
		for ip, c := range sr.Candidates {
			if len(c) == 0 {
				sr.Problem = fmt.Sprintf("no node may announce %s: %s", ip, whyNoCandidate(s))
			}
		}
	}
}

func whyNoCandidate(s Service) string {
	if s.LocalOnly {
		return "externalTrafficPolicy is Local and no selected node has a ready endpoint"
	}
	return "the policies selecting the Service select no node with an InternalIP"
}

// eligible: the Service is of a class the L2 announcer serves.
func eligible(s Service) bool { return s.Class == "" || s.Class == ClassL2 }

func announcedIPs(p Policy, s Service) []string {
	var out []string
	if p.LoadBalancerIPs {
		out = append(out, s.LoadBalancerIPs...)
	}
	if p.ExternalIPs {
		out = append(out, s.ExternalIPs...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// interfaces turns a node's regex set into the list for its spec: empty
// when any policy allows every interface.
func interfaces(set map[string]bool) []string {
	if set[""] {
		return nil
	}
	out := make([]string, 0, len(set))
	for re := range set {
		out = append(out, re)
	}
	slices.Sort(out)
	return out
}
