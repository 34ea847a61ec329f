package compiler

import (
	"fmt"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/plexus-net/plexus/internal/identity"
)

// networkPolicy compiles a Kubernetes NetworkPolicy with its upstream
// semantics: policyTypes decide the directions it isolates (Ingress
// always when absent, Egress when it has egress rules); a rule without
// peers matches every peer, one without ports every port; ipBlock is a
// CIDR with exceptions (and, as in Cilium, never matches pods).
func (c *compilation) networkPolicy(np *networkingv1.NetworkPolicy) {
	ref := PolicyRef{KindNetworkPolicy, np.Namespace, np.Name}
	c.cur, c.curRef = &PolicyResult{}, ref
	c.out.Policies[ref] = c.cur

	types := np.Spec.PolicyTypes
	if len(types) == 0 {
		types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			types = append(types, networkingv1.PolicyTypeEgress)
		}
	}
	var cr compiledRule
	if slices.Contains(types, networkingv1.PolicyTypeIngress) {
		cr.ingress = dirRule{present: true, defaultDeny: true}
		for i, r := range np.Spec.Ingress {
			p := fmt.Sprintf("spec.ingress[%d]", i)
			cr.ingress.entries = append(cr.ingress.entries, entries(false, c.netpolPeers(np.Namespace, p+".from", r.From), c.netpolPorts(p+".ports", r.Ports))...)
		}
	}
	if slices.Contains(types, networkingv1.PolicyTypeEgress) {
		cr.egress = dirRule{present: true, defaultDeny: true}
		for i, r := range np.Spec.Egress {
			p := fmt.Sprintf("spec.egress[%d]", i)
			cr.egress.entries = append(cr.egress.entries, entries(false, c.netpolPeers(np.Namespace, p+".to", r.To), c.netpolPorts(p+".ports", r.Ports))...)
		}
	}
	subject, err := k8sSelector(&np.Spec.PodSelector, "")
	if err != nil {
		c.problem("spec.podSelector", ReasonInvalid, "%v; the policy selects nothing", err)
		return
	}
	subject.reqs = append(subject.reqs, namespaceIs(np.Namespace))
	c.cur.Endpoints = c.selectPods(subject)
	c.applyToPods(cr, c.cur.Endpoints)
}

func namespaceIs(ns string) requirement {
	return requirement{source: identity.SourceK8s, key: identity.LabelNamespace, op: metav1.LabelSelectorOpIn, values: []string{ns}}
}

func (c *compilation) netpolPeers(namespace, path string, peers []networkingv1.NetworkPolicyPeer) Peers {
	if len(peers) == 0 {
		return anyPeer
	}
	var out Peers
	for i, peer := range peers {
		p := fmt.Sprintf("%s[%d]", path, i)
		if peer.IPBlock != nil {
			out = out.union(c.ipBlock(p+".ipBlock", peer.IPBlock))
			continue
		}
		var sel selector
		if peer.PodSelector != nil {
			s, err := k8sSelector(peer.PodSelector, "")
			if err != nil {
				c.problem(p+".podSelector", ReasonInvalid, "%v; it selects nothing", err)
				continue
			}
			sel = s
		}
		if peer.NamespaceSelector != nil {
			s, err := k8sSelector(peer.NamespaceSelector, identity.LabelNamespaceLabelsPrefix)
			if err != nil {
				c.problem(p+".namespaceSelector", ReasonInvalid, "%v; it selects nothing", err)
				continue
			}
			sel = sel.and(s)
		} else {
			sel.reqs = append(sel.reqs, namespaceIs(namespace))
		}
		out = out.union(Peers{Identities: c.selectPods(sel)})
	}
	return out
}

func (c *compilation) ipBlock(path string, b *networkingv1.IPBlock) Peers {
	base, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		c.problem(path+".cidr", ReasonInvalid, "%q is not a CIDR", b.CIDR)
		return Peers{}
	}
	base = base.Masked()
	var excepts []netip.Prefix
	for j, e := range b.Except {
		pfx, err := netip.ParsePrefix(e)
		if err != nil {
			c.problem(fmt.Sprintf("%s.except[%d]", path, j), ReasonInvalid, "%q is not a CIDR", e)
			continue
		}
		excepts = append(excepts, pfx.Masked())
	}
	return newPeers(nil, subtract(base, excepts))
}

func (c *compilation) netpolPorts(path string, ports []networkingv1.NetworkPolicyPort) []Port {
	if len(ports) == 0 {
		return allPorts
	}
	var out []Port
	for j, np := range ports {
		proto := ProtoTCP
		if np.Protocol != nil {
			proto = KubernetesProtocol(*np.Protocol)
		}
		port := wholeProtocol(proto)
		switch {
		case np.Port == nil:
		case np.Port.Type == intstr.String:
			port.First, port.Last, port.Name = 0, 0, np.Port.StrVal
		default:
			port.First, port.Last = uint16(np.Port.IntVal), uint16(np.Port.IntVal)
			if np.EndPort != nil {
				if *np.EndPort < np.Port.IntVal {
					c.problem(fmt.Sprintf("%s[%d].endPort", path, j), ReasonInvalid, "endPort %d is below port %d", *np.EndPort, np.Port.IntVal)
					continue
				}
				port.Last = uint16(*np.EndPort)
			}
		}
		out = append(out, port)
	}
	return out
}
