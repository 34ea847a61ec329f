package reconciler

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/l2announcer/planner"
	"github.com/plexus-net/plexus/internal/conditions"
)

// ServiceConditionType is the condition on a Service that says which node
// answers ARP for each of its addresses.
const ServiceConditionType = "plexus.dev/L2Announced"

// Reasons.
const (
	ReasonAnnounced      = "Announced"
	ReasonNoAnnouncer    = "NoAnnouncer"
	ReasonNoCandidate    = "NoCandidate"
	ReasonReady          = "Ready"
	ReasonInvalid        = "InvalidSpec"
	ReasonNoAddressTypes = "NoAddressTypes"
	ReasonNoNodes        = "NoNodes"
	reasonSeedError      = "error" // the seed's reason on its io.cilium/bad-* conditions
	reasonSeedValid      = "valid"
)

// announcer is a node announcing an address, and where.
type announcer struct {
	Node       string
	Interfaces []string
}

// setPolicyStatus writes a policy's counts and conditions.
func setPolicyStatus(p *ciliumv2alpha1.CiliumL2AnnouncementPolicy, pol planner.Policy, res *planner.PolicyResult) {
	if res == nil {
		res = &planner.PolicyResult{}
	}
	gen := p.Generation
	p.Status.ObservedGeneration = gen
	p.Status.Services, p.Status.Nodes = int32(res.Services), int32(res.Nodes)
	bad := func(t string, err error) {
		c := metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: reasonSeedValid, Message: "valid"}
		if err != nil {
			c.Status, c.Reason, c.Message = metav1.ConditionTrue, reasonSeedError, err.Error()
		}
		conditions.Set(&p.Status.Conditions, gen, c)
	}
	bad(ciliumv2alpha1.L2PolicyConditionBadServiceSelector, pol.ServiceErr)
	bad(ciliumv2alpha1.L2PolicyConditionBadNodeSelector, pol.NodeErr)
	bad(ciliumv2alpha1.L2PolicyConditionBadInterfaceRegex, res.BadRegex)

	ready := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonReady,
		Message: fmt.Sprintf("%d Services announced from %d candidate nodes", res.Services, res.Nodes)}
	switch {
	case pol.ServiceErr != nil || pol.NodeErr != nil || res.BadRegex != nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonInvalid, "the policy announces nothing until the io.cilium/bad-* conditions are False"
	case !p.Spec.LoadBalancerIPs && !p.Spec.ExternalIPs:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonNoAddressTypes, "spec.loadBalancerIPs and spec.externalIPs are both false: the policy announces nothing"
	case res.Nodes == 0:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonNoNodes, "spec.nodeSelector selects no node: nothing can be announced"
	}
	conditions.Set(&p.Status.Conditions, gen, ready)
}

// serviceCondition says who announces each of a Service's addresses.
func serviceCondition(res *planner.ServiceResult, announcers map[string][]announcer) metav1.Condition {
	c := metav1.Condition{Type: ServiceConditionType, Status: metav1.ConditionTrue, Reason: ReasonAnnounced}
	ips := make([]string, 0, len(res.Candidates))
	for ip := range res.Candidates {
		ips = append(ips, ip)
	}
	slices.Sort(ips)
	var parts []string
	for _, ip := range ips {
		cands := res.Candidates[ip]
		as := announcers[ip]
		switch {
		case len(cands) == 0:
			c.Status, c.Reason = metav1.ConditionFalse, ReasonNoCandidate
			parts = append(parts, fmt.Sprintf("%s: no candidate node", ip))
		case len(as) == 0:
			if c.Reason != ReasonNoCandidate {
				c.Status, c.Reason = metav1.ConditionFalse, ReasonNoAnnouncer
			}
			parts = append(parts, fmt.Sprintf("%s: no node announces it (candidates %s)", ip, strings.Join(cands, ", ")))
		default:
			var who []string
			for _, a := range as {
				who = append(who, fmt.Sprintf("node %s on %s", a.Node, strings.Join(a.Interfaces, ",")))
			}
			s := fmt.Sprintf("%s by %s", ip, strings.Join(who, " and "))
			if len(as) > 1 {
				s += " (more than one node: their views of each other differ, e.g. a partition)"
			}
			parts = append(parts, s)
		}
	}
	if res.Problem != "" {
		parts = append(parts, res.Problem)
		if len(ips) == 0 {
			c.Status, c.Reason = metav1.ConditionFalse, ReasonNoCandidate
		}
	}
	c.Message = strings.Join(parts, "; ")
	return c
}

func hasCondition(s *corev1.Service) bool {
	for _, c := range s.Status.Conditions {
		if c.Type == ServiceConditionType {
			return true
		}
	}
	return false
}
