package egressgateway

import (
	"fmt"
	"net/netip"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/nodeplugins/egressgateway/kernel"
)

// plan turns the spec into the datapath state and the node's role in each
// gateway. held maps the egress IPs this node holds now to their interface;
// addrs and defaultLink are the node's IPv4 addresses and default-route
// interface. IPv6 entries are skipped (IPv4 only for now).
//
// Floating gateways translate on every candidate, holder or not: only the
// holder receives the traffic (it answers ARP), so a node that takes over
// translates from its first packet instead of after its next pass. A
// standby's own pods are steered to the holder, and steered packets are
// never translated on the way out.
func plan(spec nodesv1alpha1.EgressSpec, self string, held map[string]string, addrs []address, defaultLink string) (
	state kernel.State, gateways []nodesv1alpha1.EgressGatewayState, steered int, problems []string) {
	state.ClusterCIDRs = prefixes(spec.ClusterCIDRs)
	for _, s := range spec.Steering {
		m := match(s.EgressTraffic)
		if len(m.Sources) == 0 || len(m.Destinations) == 0 {
			continue
		}
		steered += len(m.Sources)
		switch {
		case s.EgressIP != "":
			if _, mine := held[s.EgressIP]; mine {
				continue // leaves from here, translated by the SNAT below
			}
			via, err := netip.ParseAddr(s.EgressIP)
			if err != nil {
				problems = append(problems, fmt.Sprintf("policy %s: egress IP %q: %v", s.Policy, s.EgressIP, err))
				continue
			}
			state.Steers = append(state.Steers, kernel.Steer{Match: m, Via: via})
		case s.GatewayIP != "":
			if s.GatewayNode == self {
				continue
			}
			via, err := netip.ParseAddr(s.GatewayIP)
			if err != nil {
				problems = append(problems, fmt.Sprintf("policy %s: gateway address %q: %v", s.Policy, s.GatewayIP, err))
				continue
			}
			state.Steers = append(state.Steers, kernel.Steer{Match: m, Via: via})
		default:
			// No gateway node: drop rather than leak with the wrong source.
			state.Steers = append(state.Steers, kernel.Steer{Match: m, Drop: true})
		}
	}

	for _, g := range spec.Gateways {
		st := nodesv1alpha1.EgressGatewayState{Policy: g.Policy, Gateway: g.Gateway, State: StateStandby}
		m := match(g.EgressTraffic)
		egressIP, link, problem := egressAddress(g, held, addrs, defaultLink)
		st.EgressIP, st.Interface, st.Problem = egressIP.String(), link, problem
		if !egressIP.IsValid() {
			st.EgressIP = g.EgressIP
		}
		if problem != "" {
			problems = append(problems, fmt.Sprintf("policy %s gateway %d: %s", g.Policy, g.Gateway, problem))
		}
		_, holding := held[g.EgressIP]
		switch {
		case g.EgressIP != "" && holding:
			st.State = StateActive
		case g.EgressIP == "" && problem == "":
			st.State = StateActive // the controller chose this node alone
		}
		gateways = append(gateways, st)
		if len(m.Sources) == 0 || len(m.Destinations) == 0 {
			continue
		}
		if egressIP.IsValid() {
			state.SNATs = append(state.SNATs, kernel.SNAT{Match: m, EgressIP: egressIP})
		} else if g.EgressIP == "" {
			// The chosen gateway without a usable address drops, as the seed
			// system does ("No Egress IP configured").
			state.SNATs = append(state.SNATs, kernel.SNAT{Match: m, Drop: true})
		}
	}
	return state, gateways, steered, problems
}

// egressAddress is the source address of a gateway on this node and its
// interface, or why there is none.
func egressAddress(g nodesv1alpha1.EgressGatewayDuty, held map[string]string, addrs []address, defaultLink string) (netip.Addr, string, string) {
	if g.EgressIP != "" {
		ip, err := netip.ParseAddr(g.EgressIP)
		if err != nil || !ip.Is4() {
			return netip.Addr{}, "", fmt.Sprintf("egress IP %q is not an IPv4 address", g.EgressIP)
		}
		if link, ok := held[g.EgressIP]; ok {
			return ip, link, ""
		}
		link := linkFor(ip, addrs)
		if link == "" {
			return ip, "", fmt.Sprintf("egress IP %s is in no subnet of this node's interfaces, so this node cannot hold it", g.EgressIP)
		}
		return ip, link, ""
	}
	link := g.Interface
	if link == "" {
		if defaultLink == "" {
			return netip.Addr{}, "", "no egressIP or interface set and this node has no default route"
		}
		link = defaultLink
	}
	for _, a := range addrs {
		if a.link == link {
			return a.prefix.Addr(), link, ""
		}
	}
	return netip.Addr{}, link, fmt.Sprintf("interface %s is not up with an IPv4 address", link)
}

func match(t nodesv1alpha1.EgressTraffic) kernel.Match {
	m := kernel.Match{Destinations: prefixes(t.DestinationCIDRs), Excluded: prefixes(t.ExcludedCIDRs)}
	for _, s := range t.SourceIPs {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
			m.Sources = append(m.Sources, ip)
		}
	}
	return m
}

// prefixes parses the IPv4 CIDRs of cidrs; the controller wrote them, and
// the CRD schema checked the policy's.
func prefixes(cidrs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	return out
}
