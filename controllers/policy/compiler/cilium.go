package compiler

import (
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

// ciliumPolicy compiles a CiliumNetworkPolicy (ref.Namespace set) or a
// CiliumClusterwideNetworkPolicy: spec and specs are rules alike.
func (c *compilation) ciliumPolicy(ref PolicyRef, spec *ciliumv2.PolicyRule, specs []ciliumv2.PolicyRule) {
	c.cur, c.curRef = &PolicyResult{}, ref
	c.out.Policies[ref] = c.cur
	if spec != nil {
		c.ciliumRule(ref.Namespace, "spec", spec)
	}
	for i := range specs {
		c.ciliumRule(ref.Namespace, fmt.Sprintf("specs[%d]", i), &specs[i])
	}
	slices.Sort(c.cur.Endpoints)
	c.cur.Endpoints = slices.Compact(c.cur.Endpoints)
	slices.Sort(c.cur.Nodes)
	c.cur.Nodes = slices.Compact(c.cur.Nodes)
}

func (c *compilation) ciliumRule(namespace, path string, r *ciliumv2.PolicyRule) {
	var cr compiledRule
	cr.ingress = dirRule{present: r.Ingress != nil || r.IngressDeny != nil, defaultDeny: r.EnableDefaultDeny == nil || r.EnableDefaultDeny.Ingress == nil || *r.EnableDefaultDeny.Ingress}
	cr.egress = dirRule{present: r.Egress != nil || r.EgressDeny != nil, defaultDeny: r.EnableDefaultDeny == nil || r.EnableDefaultDeny.Egress == nil || *r.EnableDefaultDeny.Egress}
	for i := range r.Ingress {
		ir := &r.Ingress[i]
		p := fmt.Sprintf("%s.ingress[%d]", path, i)
		if !c.authenticationOK(p, ir.Authentication) {
			continue
		}
		peers := c.ingressPeers(namespace, p, &ir.PolicyIngressCommon)
		cr.ingress.entries = append(cr.ingress.entries, entries(false, peers, c.allowPorts(p, ir.ToPorts, ir.ICMPs))...)
	}
	for i := range r.IngressDeny {
		ir := &r.IngressDeny[i]
		p := fmt.Sprintf("%s.ingressDeny[%d]", path, i)
		peers := c.ingressPeers(namespace, p, &ir.PolicyIngressCommon)
		cr.ingress.entries = append(cr.ingress.entries, entries(true, peers, c.denyPorts(p, ir.ToPorts, ir.ICMPs))...)
	}
	for i := range r.Egress {
		er := &r.Egress[i]
		p := fmt.Sprintf("%s.egress[%d]", path, i)
		if !c.authenticationOK(p, er.Authentication) {
			continue
		}
		if len(er.ToFQDNs) > 0 {
			c.problem(p+".toFQDNs", ReasonUnsupported, "toFQDNs needs the DNS proxy, which Plexus does not have yet; this egress rule allows nothing")
			continue
		}
		peers := c.egressPeers(namespace, p, &er.PolicyEgressCommon)
		cr.egress.entries = append(cr.egress.entries, entries(false, peers, c.allowPorts(p, er.ToPorts, er.ICMPs))...)
	}
	for i := range r.EgressDeny {
		er := &r.EgressDeny[i]
		p := fmt.Sprintf("%s.egressDeny[%d]", path, i)
		peers := c.egressPeers(namespace, p, &er.PolicyEgressCommon)
		cr.egress.entries = append(cr.egress.entries, entries(true, peers, c.denyPorts(p, er.ToPorts, er.ICMPs))...)
	}

	if r.NodeSelector != nil {
		c.applyToHosts(path, r.NodeSelector, cr)
		return
	}
	subject, err := newSelector(r.EndpointSelector, namespace)
	if err != nil {
		c.problem(path+".endpointSelector", ReasonInvalid, "%v; the rule selects nothing", err)
		return
	}
	ids := c.selectPods(subject)
	c.cur.Endpoints = append(c.cur.Endpoints, ids...)
	c.applyToPods(cr, ids)
}

// applyToHosts applies a host policy's rule to the nodes it selects.
func (c *compilation) applyToHosts(path string, sel *ciliumv2.EndpointSelector, cr compiledRule) {
	if !c.in.HostFirewall {
		c.problem(path+".nodeSelector", ReasonHostFirewallDisabled, "host policies need the host firewall (Helm policy.hostFirewall); this rule is not enforced")
		return
	}
	s, err := newSelector(sel, "")
	if err != nil {
		c.problem(path+".nodeSelector", ReasonInvalid, "%v; the rule selects no node", err)
		return
	}
	for _, name := range c.nodes {
		l := identity.Labels{}
		for k, v := range c.in.Nodes[name] {
			l[identity.SourceK8s+":"+k] = v
		}
		if !s.matches(l, false) {
			continue
		}
		c.cur.Nodes = append(c.cur.Nodes, name)
		p := c.out.Hosts[name]
		if p == nil {
			p = &Policy{}
			c.out.Hosts[name] = p
		}
		c.applyTo(p, cr)
	}
}

func (c *compilation) authenticationOK(path string, a *ciliumv2.Authentication) bool {
	if a == nil || a.Mode == "disabled" {
		return true
	}
	c.problem(path+".authentication", ReasonUnsupported, "mutual authentication (mode %s) is not available yet; this rule allows nothing", a.Mode)
	return false
}

// selectPods are the pod identities s selects. A selector confined to
// namespaces (every namespaced policy's) only looks at their identities.
func (c *compilation) selectPods(s selector) []identity.Number {
	candidates, ok := c.byLabel.candidates(s)
	if !ok {
		candidates = c.pods
	}
	var out []identity.Number
	for _, n := range candidates {
		if s.matches(c.in.Pods[n], false) {
			out = append(out, n)
		}
	}
	return out
}

// reservedLabels are the label sets of the reserved identities, which
// selectors naming reserved: keys can match.
var reservedLabels = func() map[identity.Number]identity.Labels {
	m := map[identity.Number]identity.Labels{}
	for n := identity.Host; n <= identity.WorldIPv6; n++ {
		m[n] = identity.Labels{identity.SourceReserved + ":" + identity.ReservedName(n): ""}
	}
	return m
}()

// endpointPeers are the identities that peer selectors select: pods, and
// reserved identities for selectors that name reserved: keys.
func (c *compilation) endpointPeers(namespace, path string, sels []ciliumv2.EndpointSelector) Peers {
	var ids []identity.Number
	for i := range sels {
		s, err := newSelector(&sels[i], namespace)
		if err != nil {
			c.problem(fmt.Sprintf("%s[%d]", path, i), ReasonInvalid, "%v; it selects nothing", err)
			continue
		}
		ids = append(ids, c.selectPods(s)...)
		if s.reserved {
			for n := identity.Host; n <= identity.WorldIPv6; n++ {
				if s.matches(reservedLabels[n], true) {
					ids = append(ids, n)
				}
			}
		}
	}
	return newPeers(ids, nil)
}

func (c *compilation) entities(path string, es []ciliumv2.Entity) Peers {
	var out Peers
	for i, e := range es {
		p, err := entityPeers(string(e), c.localPods)
		if err != nil {
			c.problem(fmt.Sprintf("%s[%d]", path, i), ReasonInvalid, "%v", err)
			continue
		}
		out = out.union(p)
	}
	return out
}

func (c *compilation) cidrs(path string, cs []ciliumv2.CIDR) Peers {
	var out []netip.Prefix
	for i, s := range cs {
		p, err := parseCIDR(string(s))
		if err != nil {
			c.problem(fmt.Sprintf("%s[%d]", path, i), ReasonInvalid, "%v", err)
			continue
		}
		out = append(out, p)
	}
	return newPeers(nil, out)
}

// parseCIDR reads a CIDR, or an address as its single-address prefix.
func parseCIDR(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (c *compilation) cidrSet(path string, rules []ciliumv2.CIDRRule) Peers {
	var out []netip.Prefix
	for i := range rules {
		r := &rules[i]
		p := fmt.Sprintf("%s[%d]", path, i)
		var base []netip.Prefix
		switch {
		case r.Cidr != "":
			pfx, err := parseCIDR(string(r.Cidr))
			if err != nil {
				c.problem(p+".cidr", ReasonInvalid, "%v", err)
				continue
			}
			base = []netip.Prefix{pfx}
		case r.CIDRGroupRef != "":
			g, ok := c.in.CIDRGroups[r.CIDRGroupRef]
			if !ok {
				c.problem(p+".cidrGroupRef", ReasonNotFound, "CiliumCIDRGroup %q does not exist; it adds no CIDRs until it does", r.CIDRGroupRef)
				continue
			}
			base = g.CIDRs
		case r.CIDRGroupSelector != nil:
			s, err := newSelector(r.CIDRGroupSelector, "")
			if err != nil {
				c.problem(p+".cidrGroupSelector", ReasonInvalid, "%v", err)
				continue
			}
			for name, g := range c.in.CIDRGroups {
				if s.matches(k8sLabels(g.Labels), false) {
					base = append(base, c.in.CIDRGroups[name].CIDRs...)
				}
			}
		}
		var excepts []netip.Prefix
		for j, e := range r.ExceptCIDRs {
			pfx, err := parseCIDR(string(e))
			if err != nil {
				c.problem(fmt.Sprintf("%s.except[%d]", p, j), ReasonInvalid, "%v", err)
				continue
			}
			if r.Cidr != "" && (pfx.Bits() < base[0].Bits() || !base[0].Contains(pfx.Addr())) {
				c.problem(fmt.Sprintf("%s.except[%d]", p, j), ReasonInvalid, "%s is not within %s", pfx, base[0])
			}
			excepts = append(excepts, pfx)
		}
		for _, b := range base {
			out = append(out, subtract(b, excepts)...)
		}
	}
	return newPeers(nil, out)
}

func k8sLabels(m map[string]string) identity.Labels {
	l := make(identity.Labels, len(m))
	for k, v := range m {
		l[identity.SourceK8s+":"+k] = v
	}
	return l
}

func (c *compilation) ingressPeers(namespace, path string, r *ciliumv2.PolicyIngressCommon) Peers {
	if len(r.FromEndpoints)+len(r.FromCIDR)+len(r.FromCIDRSet)+len(r.FromEntities)+len(r.FromGroups)+len(r.FromNodes) == 0 {
		return anyPeer
	}
	if len(r.FromGroups) > 0 {
		c.problem(path+".fromGroups", ReasonUnsupported, "cloud provider groups are not supported; they select nothing")
	}
	if len(r.FromNodes) > 0 {
		c.problem(path+".fromNodes", ReasonUnsupported, "node selectors as peers are not supported yet; use fromEntities host or remote-node")
	}
	return c.endpointPeers(namespace, path+".fromEndpoints", r.FromEndpoints).
		union(c.cidrs(path+".fromCIDR", r.FromCIDR)).
		union(c.cidrSet(path+".fromCIDRSet", r.FromCIDRSet)).
		union(c.entities(path+".fromEntities", r.FromEntities))
}

func (c *compilation) egressPeers(namespace, path string, r *ciliumv2.PolicyEgressCommon) Peers {
	if len(r.ToEndpoints)+len(r.ToCIDR)+len(r.ToCIDRSet)+len(r.ToEntities)+len(r.ToServices)+len(r.ToGroups)+len(r.ToNodes) == 0 {
		return anyPeer
	}
	if len(r.ToGroups) > 0 {
		c.problem(path+".toGroups", ReasonUnsupported, "cloud provider groups are not supported; they select nothing")
	}
	if len(r.ToNodes) > 0 {
		c.problem(path+".toNodes", ReasonUnsupported, "node selectors as peers are not supported yet; use toEntities host or remote-node")
	}
	return c.endpointPeers(namespace, path+".toEndpoints", r.ToEndpoints).
		union(c.cidrs(path+".toCIDR", r.ToCIDR)).
		union(c.cidrSet(path+".toCIDRSet", r.ToCIDRSet)).
		union(c.entities(path+".toEntities", r.ToEntities)).
		union(c.services(namespace, path+".toServices", r.ToServices))
}

// services are the peers of toServices: the pods a Service selects, or
// the addresses of a Service without a selector.
func (c *compilation) services(namespace, path string, ss []ciliumv2.PolicyService) Peers {
	var out Peers
	add := func(ns string, svc Service) {
		if svc.Selector != nil {
			sel := selector{}
			for _, k := range sortedKeys(svc.Selector) {
				sel.reqs = append(sel.reqs, requirement{source: identity.SourceK8s, key: k, op: "In", values: []string{svc.Selector[k]}})
			}
			sel.reqs = append(sel.reqs, requirement{source: identity.SourceK8s, key: identity.LabelNamespace, op: "In", values: []string{ns}})
			out = out.union(Peers{Identities: c.selectPods(sel)})
			return
		}
		var pfx []netip.Prefix
		for _, a := range svc.Addresses {
			pfx = append(pfx, netip.PrefixFrom(a, a.BitLen()))
		}
		out = out.union(newPeers(nil, pfx))
	}
	for i, s := range ss {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case s.K8sService != nil:
			ns := s.K8sService.Namespace
			if ns == "" {
				ns = namespace
			}
			key := types.NamespacedName{Namespace: ns, Name: s.K8sService.ServiceName}
			svc, ok := c.in.Services[key]
			if !ok {
				c.problem(p+".k8sService", ReasonNotFound, "Service %s does not exist; it adds no peers until it does", key)
				continue
			}
			add(ns, svc)
		case s.K8sServiceSelector != nil:
			sel, err := newSelector(&s.K8sServiceSelector.Selector, "")
			if err != nil {
				c.problem(p+".k8sServiceSelector", ReasonInvalid, "%v", err)
				continue
			}
			ns := s.K8sServiceSelector.Namespace
			if ns == "" {
				ns = namespace // "" for a clusterwide policy: every namespace
			}
			for _, key := range sortedServiceKeys(c.in.Services) {
				if (ns == "" || key.Namespace == ns) && sel.matches(k8sLabels(c.in.Services[key].Labels), false) {
					add(key.Namespace, c.in.Services[key])
				}
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedServiceKeys(m map[types.NamespacedName]Service) []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int {
		if a.Namespace != b.Namespace {
			if a.Namespace < b.Namespace {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return keys
}

// allowPorts are the ports of an allow rule. A port rule that needs what
// Plexus cannot enforce yet (L7 rules, TLS interception, an Envoy
// listener) is left out, so the rule allows less, never more.
func (c *compilation) allowPorts(path string, prs []ciliumv2.PortRule, icmps []ciliumv2.ICMPRule) []Port {
	if len(prs) == 0 && len(icmps) == 0 {
		return allPorts
	}
	var out []Port
	for i := range prs {
		pr := &prs[i]
		p := fmt.Sprintf("%s.toPorts[%d]", path, i)
		if what := unenforceable(pr); what != "" {
			c.problem(p+"."+what, ReasonUnsupported, "%s needs the L7 proxy, which Plexus does not have yet; these ports are not opened", what)
			continue
		}
		out = append(out, c.portList(p, pr.Ports)...)
	}
	return append(out, c.icmpPorts(path, icmps)...)
}

func (c *compilation) denyPorts(path string, prs []ciliumv2.PortDenyRule, icmps []ciliumv2.ICMPRule) []Port {
	if len(prs) == 0 && len(icmps) == 0 {
		return allPorts
	}
	var out []Port
	for i := range prs {
		out = append(out, c.portList(fmt.Sprintf("%s.toPorts[%d]", path, i), prs[i].Ports)...)
	}
	return append(out, c.icmpPorts(path, icmps)...)
}

func (c *compilation) portList(path string, pps []ciliumv2.PortProtocol) []Port {
	if len(pps) == 0 {
		return allPorts
	}
	var out []Port
	for j, pp := range pps {
		ports, err := portsOf(pp)
		if err != nil {
			c.problem(fmt.Sprintf("%s.ports[%d]", path, j), ReasonInvalid, "%v", err)
			continue
		}
		out = append(out, ports...)
	}
	return out
}

func (c *compilation) icmpPorts(path string, icmps []ciliumv2.ICMPRule) []Port {
	var out []Port
	for i, r := range icmps {
		for j, f := range r.Fields {
			port, err := icmpPort(f)
			if err != nil {
				c.problem(fmt.Sprintf("%s.icmps[%d].fields[%d]", path, i, j), ReasonInvalid, "%v", err)
				continue
			}
			out = append(out, port)
		}
	}
	return out
}

// unenforceable names the first part of a port rule that needs a proxy,
// or is "". A DNS rule that allows every name is enforceable: it allows
// what the port alone allows.
func unenforceable(pr *ciliumv2.PortRule) string {
	switch {
	case pr.TerminatingTLS != nil:
		return "terminatingTLS"
	case pr.OriginatingTLS != nil:
		return "originatingTLS"
	case len(pr.ServerNames) > 0:
		return "serverNames"
	case pr.Listener != nil:
		return "listener"
	case pr.Rules == nil:
		return ""
	case len(pr.Rules.HTTP) > 0:
		return "rules.http"
	case len(pr.Rules.Kafka) > 0:
		return "rules.kafka"
	case pr.Rules.L7Proto != "" || len(pr.Rules.L7) > 0:
		return "rules.l7"
	case len(pr.Rules.DNS) > 0 && !slices.ContainsFunc(pr.Rules.DNS, func(f ciliumv2.FQDNSelector) bool { return f.MatchPattern == "*" }):
		return "rules.dns"
	}
	return ""
}

// entries crosses peers with ports.
func entries(deny bool, peers Peers, ports []Port) []Entry {
	if peers.empty() {
		return nil
	}
	out := make([]Entry, 0, len(ports))
	for _, p := range ports {
		out = append(out, Entry{Deny: deny, Peers: peers, Port: p})
	}
	return out
}
