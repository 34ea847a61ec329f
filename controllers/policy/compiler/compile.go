// Package compiler turns network policies (CiliumNetworkPolicy,
// CiliumClusterwideNetworkPolicy and Kubernetes NetworkPolicy) into what
// each security identity's endpoints enforce: per direction, whether
// default deny is on, and entries of (peers, protocol, port range, allow
// or deny). It is pure: the same policies, identities and settings give
// the same result, so the controller can recompute it every pass and
// write only what changed.
//
// The semantics are Cilium's: policies are per endpoint and per
// direction; a policy that selects an endpoint in a direction turns on
// default deny there (unless enableDefaultDeny says otherwise); allows
// of all policies add up; a deny wins over any allow; replies of allowed
// connections pass (the datapath's connection tracking); the node may
// always reach its pods (kubelet probes).
//
// What cannot be enforced (L7 rules without a proxy, FQDN rules, cloud
// groups) never widens what is allowed: the allow it belongs to is left
// out and a Problem says so, and the policy's status carries it.
package compiler

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

// Mode is the policy enforcement mode.
type Mode string

// Enforcement modes, as Cilium's policyEnforcementMode.
const (
	// ModeDefault enforces a direction of an endpoint once a policy
	// selects the endpoint in that direction.
	ModeDefault Mode = "default"
	// ModeAlways enforces every endpoint in both directions.
	ModeAlways Mode = "always"
	// ModeNever enforces nothing, deny rules included.
	ModeNever Mode = "never"
)

// Input is everything a compilation reads.
type Input struct {
	Mode Mode
	// Pods are the identities of pods, with their security labels.
	Pods map[identity.Number]identity.Labels
	// ClusterID is the local cluster's: the entity "cluster" holds its
	// pods, not those of other clusters in a Cluster Mesh.
	ClusterID uint32
	// HostFirewall enables policies with a nodeSelector (host policies).
	HostFirewall bool
	// Nodes are the nodes' labels, for host policies.
	Nodes map[string]map[string]string

	CiliumPolicies      []ciliumv2.CiliumNetworkPolicy
	ClusterwidePolicies []ciliumv2.CiliumClusterwideNetworkPolicy
	NetworkPolicies     []networkingv1.NetworkPolicy

	// CIDRGroups are CiliumCIDRGroups by name.
	CIDRGroups map[string]CIDRGroup
	// Services are the Services toServices rules may name.
	Services map[types.NamespacedName]Service
	// NamedPorts are the named container ports of each identity's pods,
	// for egress rules that name a port (the peer's).
	NamedPorts map[identity.Number][]NamedPort
}

// CIDRGroup is a CiliumCIDRGroup: external CIDRs under a name and labels.
type CIDRGroup struct {
	Labels map[string]string
	CIDRs  []netip.Prefix
}

// Service is what toServices needs of a Service: its labels (for
// k8sServiceSelector) and either its pod selector or, for a Service
// without one, its endpoints' addresses.
type Service struct {
	Labels    map[string]string
	Selector  map[string]string
	Addresses []netip.Addr
}

// Output is the result of a compilation.
type Output struct {
	// Endpoints are the policies of pod identities that enforce or deny
	// anything; an identity absent here allows everything.
	Endpoints map[identity.Number]*Policy
	// Hosts are the host endpoints' policies by node name.
	Hosts map[string]*Policy
	// Policies are per policy what it selects and what is wrong with it.
	Policies map[PolicyRef]*PolicyResult
}

// Policy is what one endpoint enforces.
type Policy struct {
	Ingress, Egress Direction
	// Sources are the policies that select the endpoint.
	Sources []PolicyRef
}

// Direction is the enforcement of one direction: with Enforced, only
// what an allow entry matches passes; without, everything passes. In
// both, what a deny entry matches is dropped.
type Direction struct {
	Enforced bool
	Entries  []Entry
}

// Entry matches traffic by peer and port.
type Entry struct {
	Deny  bool
	Peers Peers
	Port  Port
	// Source is the policy whose rule gives the entry; zero for entries
	// the compiler adds itself (the node's access to its pods).
	Source PolicyRef
}

// PolicyRef names a policy.
type PolicyRef struct {
	Kind, Namespace, Name string
}

func (r PolicyRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Kinds of PolicyRef.
const (
	KindCNP           = "CiliumNetworkPolicy"
	KindCCNP          = "CiliumClusterwideNetworkPolicy"
	KindNetworkPolicy = "NetworkPolicy"
)

// PolicyResult is what the status of a policy reports.
type PolicyResult struct {
	// Endpoints are the pod identities the policy selects; Nodes the
	// nodes whose host endpoint it selects.
	Endpoints []identity.Number
	Nodes     []string
	Problems  []Problem
}

// Problem is something in a policy that is not enforced as written.
type Problem struct {
	// Path is the field, as in "specs[1].ingress[0].toPorts[0].rules".
	Path   string
	Reason string
	// Message says what is left out, for a condition or an Event.
	Message string
}

// Reasons of Problems.
const (
	ReasonUnsupported          = "Unsupported"
	ReasonInvalid              = "Invalid"
	ReasonNotFound             = "NotFound"
	ReasonHostFirewallDisabled = "HostFirewallDisabled"
)

// Compile computes every endpoint's policy.
func Compile(in Input) *Output {
	c := &compilation{in: in, out: &Output{
		Endpoints: map[identity.Number]*Policy{},
		Hosts:     map[string]*Policy{},
		Policies:  map[PolicyRef]*PolicyResult{},
	}}
	c.pods = make([]identity.Number, 0, len(in.Pods))
	for n := range in.Pods {
		c.pods = append(c.pods, n)
	}
	slices.Sort(c.pods)
	c.byLabel = labelIndex{}
	for _, n := range c.pods {
		if n.ClusterID() == in.ClusterID {
			c.localPods = append(c.localPods, n)
		}
		c.byLabel.add(n, in.Pods[n])
	}
	c.nodes = make([]string, 0, len(in.Nodes))
	for n := range in.Nodes {
		c.nodes = append(c.nodes, n)
	}
	slices.Sort(c.nodes)

	for i := range in.CiliumPolicies {
		p := &in.CiliumPolicies[i]
		c.ciliumPolicy(PolicyRef{KindCNP, p.Namespace, p.Name}, p.Spec, p.Specs)
	}
	for i := range in.ClusterwidePolicies {
		p := &in.ClusterwidePolicies[i]
		c.ciliumPolicy(PolicyRef{Kind: KindCCNP, Name: p.Name}, p.Spec, p.Specs)
	}
	for i := range in.NetworkPolicies {
		c.networkPolicy(&in.NetworkPolicies[i])
	}
	c.finish()
	return c.out
}

type compilation struct {
	in   Input
	out  *Output
	pods []identity.Number
	// localPods are the pods of the local cluster.
	localPods []identity.Number
	// byLabel indexes the pods by label, so that a selector looks only
	// at the pods one of its In requirements admits.
	byLabel labelIndex
	nodes   []string
	// cur is the policy being compiled, curRef its name.
	cur    *PolicyResult
	curRef PolicyRef
	// enforced records which directions some policy turned on, per
	// endpoint, before the mode is applied.
	ingressOn, egressOn map[*Policy]bool
}

func (c *compilation) problem(path, reason, format string, args ...any) {
	c.cur.Problems = append(c.cur.Problems, Problem{Path: path, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// compiledRule is one rule of a policy, ready to apply to its subjects.
type compiledRule struct {
	ingress, egress dirRule
}

type dirRule struct {
	// present is set when the rule selects its subjects in this
	// direction, which turns default deny on unless defaultDeny is off.
	present, defaultDeny bool
	entries              []Entry
}

// apply adds the rule to the policies of pod identities ids.
func (c *compilation) applyToPods(r compiledRule, ids []identity.Number) {
	for _, n := range ids {
		p := c.out.Endpoints[n]
		if p == nil {
			p = &Policy{}
			c.out.Endpoints[n] = p
		}
		c.applyTo(p, r)
	}
}

func (c *compilation) applyTo(p *Policy, r compiledRule) {
	if c.ingressOn == nil {
		c.ingressOn, c.egressOn = map[*Policy]bool{}, map[*Policy]bool{}
	}
	if r.ingress.present && r.ingress.defaultDeny {
		c.ingressOn[p] = true
	}
	if r.egress.present && r.egress.defaultDeny {
		c.egressOn[p] = true
	}
	for _, e := range r.ingress.entries {
		e.Source = c.curRef
		p.Ingress.Entries = append(p.Ingress.Entries, e)
	}
	for _, e := range r.egress.entries {
		e.Source = c.curRef
		p.Egress.Entries = append(p.Egress.Entries, e)
	}
}

// finish records which policies select each endpoint, applies the
// enforcement mode, adds the host's access to its pods, and puts entries
// in canonical order.
func (c *compilation) finish() {
	refs := make([]PolicyRef, 0, len(c.out.Policies))
	for ref := range c.out.Policies {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b PolicyRef) int { return strings.Compare(a.String(), b.String()) })
	for _, ref := range refs {
		for _, n := range c.out.Policies[ref].Endpoints {
			if p := c.out.Endpoints[n]; p != nil {
				p.Sources = append(p.Sources, ref)
			}
		}
		for _, node := range c.out.Policies[ref].Nodes {
			if p := c.out.Hosts[node]; p != nil {
				p.Sources = append(p.Sources, ref)
			}
		}
	}
	if c.in.Mode == ModeNever {
		c.out.Endpoints = map[identity.Number]*Policy{}
		c.out.Hosts = map[string]*Policy{}
		return
	}
	always := c.in.Mode == ModeAlways
	if always {
		for _, n := range c.pods {
			if c.out.Endpoints[n] == nil {
				c.out.Endpoints[n] = &Policy{}
			}
		}
		if c.in.HostFirewall {
			for _, n := range c.nodes {
				if c.out.Hosts[n] == nil {
					c.out.Hosts[n] = &Policy{}
				}
			}
		}
	}
	for _, p := range c.out.Endpoints {
		p.Egress.Entries = c.resolveEgressNames(p.Egress.Entries)
		// The node reaches its own pods whatever the policy, so that
		// kubelet probes keep working.
		c.settle(p, always, Entry{Peers: Peers{Identities: []identity.Number{identity.Host}}, Port: allPorts[0]})
	}
	for _, p := range c.out.Hosts {
		p.Egress.Entries = c.resolveEgressNames(p.Egress.Entries)
		c.settle(p, always)
	}
}

// settle sets p's enforcement and puts its entries in canonical order;
// implicit are the ingress entries an enforced ingress gets.
func (c *compilation) settle(p *Policy, always bool, implicit ...Entry) {
	p.Ingress.Enforced = always || c.ingressOn[p]
	p.Egress.Enforced = always || c.egressOn[p]
	if p.Ingress.Enforced {
		p.Ingress.Entries = append(p.Ingress.Entries, implicit...)
	}
	p.Ingress.Entries = canonical(p.Ingress.Entries)
	p.Egress.Entries = canonical(p.Egress.Entries)
}

// canonical sorts entries and merges those of one policy that differ
// only in peers (those of different policies stay apart, so that a flow
// can name the policy that allowed or denied it).
func canonical(es []Entry) []Entry {
	type key struct {
		deny   bool
		port   Port
		source PolicyRef
	}
	merged := map[key]Peers{}
	for _, e := range es {
		k := key{e.Deny, e.Port, e.Source}
		merged[k] = merged[k].union(e.Peers)
	}
	out := make([]Entry, 0, len(merged))
	for k, p := range merged {
		out = append(out, Entry{Deny: k.deny, Peers: p, Port: k.port, Source: k.source})
	}
	sort.Slice(out, func(i, j int) bool { return entryLess(out[i], out[j]) })
	return out
}

func entryLess(a, b Entry) bool {
	if a.Deny != b.Deny {
		return a.Deny
	}
	if a.Port.Protocol != b.Port.Protocol {
		return a.Port.Protocol < b.Port.Protocol
	}
	if a.Port.First != b.Port.First {
		return a.Port.First < b.Port.First
	}
	if a.Port.Last != b.Port.Last {
		return a.Port.Last < b.Port.Last
	}
	if a.Port.Name != b.Port.Name {
		return a.Port.Name < b.Port.Name
	}
	return a.Source.String() < b.Source.String()
}
