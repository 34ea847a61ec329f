package reconciler

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/egressgateway/planner"
	"github.com/plexus-net/plexus/internal/conditions"
)

// Ready reasons of a policy.
const (
	ReasonActive          = "Active"
	ReasonInvalid         = "InvalidSpec"
	ReasonNoGatewayNode   = "NoGatewayNode"
	ReasonNoActiveGateway = "NoActiveGateway"
	ReasonNoSourcePods    = "NoSourcePods"
	ReasonSplitBrain      = "SeveralActive"
)

// Gateway states.
const (
	StateActive  = "Active"
	StateStandby = "Standby"
)

// setPolicyStatus writes which node is each gateway's active one, which
// stand by, and the Ready condition, which says why the policy does
// nothing when it does nothing.
func setPolicyStatus(p *ciliumv2.CiliumEgressGatewayPolicy, res *planner.PolicyResult, roles map[roleKey]nodesv1alpha1.EgressGatewayState) {
	if res == nil {
		res = &planner.PolicyResult{}
	}
	gen := p.Generation
	p.Status.ObservedGeneration = gen
	p.Status.Gateways = nil
	var parts, idle, split, broken []string
	for _, g := range res.Gateways {
		var active, standby []string
		for _, n := range g.Candidates {
			role, ok := roles[roleKey{p.Name, int32(g.Index), n}]
			st := ciliumv2.EgressGatewayStatus{Node: n, EgressIP: g.EgressIP, State: StateStandby}
			if ok && role.EgressIP != "" {
				st.EgressIP = role.EgressIP
			}
			if ok && role.State == StateActive {
				st.State = StateActive
				active = append(active, n)
			} else {
				standby = append(standby, n)
			}
			if ok && role.Problem != "" {
				broken = append(broken, fmt.Sprintf("node %s: %s", n, role.Problem))
			}
			p.Status.Gateways = append(p.Status.Gateways, st)
		}
		desc := fmt.Sprintf("gateway %d", g.Index)
		if g.EgressIP != "" {
			desc += " (" + g.EgressIP + ")"
		}
		switch {
		case len(g.Candidates) == 0:
			continue // a planner problem says why
		case len(active) == 0 && g.Sources > 0:
			idle = append(idle, fmt.Sprintf("%s: no candidate is active (candidates %s)", desc, strings.Join(g.Candidates, ", ")))
		case len(active) > 1:
			// Each holder thinks it is the first live candidate: their
			// heartbeats do not reach each other (a partition).
			split = append(split, fmt.Sprintf("%s: active on %s at once: their heartbeats do not reach each other", desc, strings.Join(active, " and ")))
		case len(active) == 1:
			s := fmt.Sprintf("%s: active on %s", desc, active[0])
			if len(standby) > 0 {
				s += ", standby " + strings.Join(standby, ", ")
			}
			parts = append(parts, s)
		}
	}
	summary := fmt.Sprintf("%d source addresses", res.Sources)
	if len(parts) > 0 {
		summary += "; " + strings.Join(parts, "; ")
	}
	if len(res.Notes) > 0 {
		summary += "; " + strings.Join(res.Notes, "; ")
	}
	ready := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonActive, Message: summary}
	notReady := func(reason string, msgs ...string) {
		ready.Status, ready.Reason = metav1.ConditionFalse, reason
		ready.Message = strings.Join(append(msgs, summary), "; ")
	}
	switch {
	case res.Invalid:
		notReady(ReasonInvalid, res.Problems...)
	case len(res.Unmatched) > 0:
		notReady(ReasonNoGatewayNode, res.Problems...)
	case res.Sources == 0:
		notReady(ReasonNoSourcePods, res.Problems...)
	case len(split) > 0:
		notReady(ReasonSplitBrain, split...)
	case len(idle) > 0 || len(broken) > 0:
		notReady(ReasonNoActiveGateway, append(idle, broken...)...)
	}
	conditions.Set(&p.Status.Conditions, gen, ready)
}
