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

type addrState struct {
	services   map[string]bool
	candidates map[string]map[string]bool // node -> interface regexes ("" = all)
}

// Decide computes the plan.
func Decide(policies []Policy, services []Service, nodes []Node) Plan {
	plan := Plan{Nodes: map[string]*NodePlan{}, Policies: map[string]*PolicyResult{}, Services: map[string]*ServiceResult{}}
	addrs := map[string]*addrState{}
	nodeAddr := map[string]string{}
	for _, n := range nodes {
		nodeAddr[n.Name] = n.Address
	}
	policies = slices.Clone(policies)
	slices.SortFunc(policies, func(a, b Policy) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range policies {
		pr := &PolicyResult{}
		plan.Policies[p.Name] = pr
		for _, re := range p.Interfaces {
			if _, err := regexp.Compile(re); err != nil {
				pr.BadRegex = fmt.Errorf("interfaces: %q: %w", re, err)
				break
			}
		}
		if p.ServiceErr != nil || p.NodeErr != nil || pr.BadRegex != nil {
			continue // a broken policy announces nothing
		}
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
			sr := plan.Services[s.Key()]
			if sr == nil {
				sr = &ServiceResult{Candidates: map[string][]string{}}
				plan.Services[s.Key()] = sr
			}
			for _, ip := range ips {
				a, err := netip.ParseAddr(ip)
				switch {
				case err != nil:
					continue
				case !a.Is4():
					sr.Problem = fmt.Sprintf("%s is not announced: L2 announcements are IPv4 (ARP) only", ip)
					continue
				}
				st := addrs[ip]
				if st == nil {
					st = &addrState{services: map[string]bool{}, candidates: map[string]map[string]bool{}}
					addrs[ip] = st
				}
				st.services[s.Key()] = true
				for _, n := range selected {
					if n.Address == "" || (s.LocalOnly && !s.EndpointNodes[n.Name]) {
						continue
					}
					res := st.candidates[n.Name]
					if res == nil {
						res = map[string]bool{}
						st.candidates[n.Name] = res
					}
					if len(p.Interfaces) == 0 {
						res[""] = true
					}
					for _, re := range p.Interfaces {
						res[re] = true
					}
				}
				if _, ok := sr.Candidates[ip]; !ok {
					sr.Candidates[ip] = nil
				}
			}
		}
	}

	ips := make([]string, 0, len(addrs))
	for ip := range addrs {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	for _, ip := range ips {
		st := addrs[ip]
		cands := make([]string, 0, len(st.candidates))
		for n := range st.candidates {
			cands = append(cands, n)
		}
		rendezvous.Rank(ip, cands)
		svcs := make([]string, 0, len(st.services))
		for s := range st.services {
			svcs = append(svcs, s)
			plan.Services[s].Candidates[ip] = cands
		}
		slices.Sort(svcs)
		for _, n := range cands {
			np := plan.Nodes[n]
			if np == nil {
				np = &NodePlan{}
				plan.Nodes[n] = np
			}
			np.Addresses = append(np.Addresses, Address{IP: ip, Services: svcs, Interfaces: interfaces(st.candidates[n]), Candidates: cands})
		}
	}
	for name, np := range plan.Nodes {
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
	for _, s := range services {
		sr := plan.Services[s.Key()]
		if sr == nil || sr.Problem != "" {
			continue
		}
		for ip, c := range sr.Candidates {
			if len(c) == 0 {
				sr.Problem = fmt.Sprintf("no node may announce %s: %s", ip, whyNoCandidate(s))
			}
		}
	}
	return plan
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
