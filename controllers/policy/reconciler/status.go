package reconciler

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/policy/compiler"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/identity"
)

// Condition types and reasons of a policy's status.
const (
	// TypeValid is Cilium's condition (and its Valid column): the
	// policy could be compiled.
	TypeValid = "Valid"

	ReasonEnforced    = "Enforced"
	ReasonProgramming = "Programming"
	ReasonDisabled    = "EnforcementDisabled"
	ReasonCompiled    = "Compiled"
)

// summary is what a policy's status says.
type summary struct {
	mode      compiler.Mode
	endpoints int      // pods selected
	nodes     []string // nodes that enforce it: hosts of selected pods, selected hosts
	waiting   []string // of those, the nodes that have not programmed their latest NodePolicy
	problems  []compiler.Problem
}

func (s summary) equal(o summary) bool {
	return s.mode == o.mode && s.endpoints == o.endpoints && slices.Equal(s.nodes, o.nodes) &&
		slices.Equal(s.waiting, o.waiting) && slices.Equal(s.problems, o.problems)
}

// progressOnly says whether next differs from prev only in nodes that
// moved from waiting to enforcing, with both still Programming (see
// readyCondition): what the status may report a little later.
func progressOnly(prev, next summary) bool {
	if prev.mode != next.mode || prev.endpoints != next.endpoints || !slices.Equal(prev.nodes, next.nodes) ||
		!slices.Equal(prev.problems, next.problems) || len(prev.problems) > 0 || next.mode == compiler.ModeNever {
		return false
	}
	if len(next.waiting) == 0 || len(next.waiting) >= len(prev.waiting) {
		return false
	}
	for _, n := range next.waiting {
		if !slices.Contains(prev.waiting, n) {
			return false
		}
	}
	return true
}

// nodesByIdentity counts, per identity, its pods on each node.
func nodesByIdentity(local map[string][]identity.Number) map[identity.Number]map[string]int {
	out := map[identity.Number]map[string]int{}
	for node, ids := range local {
		for _, n := range ids {
			if out[n] == nil {
				out[n] = map[string]int{}
			}
			out[n][node]++
		}
	}
	return out
}

// nodeEnforcement is what a node's plugin has programmed of what the node
// must enforce now.
type nodeEnforcement struct {
	// identities holds the identities whose policy the node enforces as
	// desired; host whether its host policy is.
	identities map[identity.Number]bool
	host       bool
}

// enforcement says per node which identities' policies (and whether the
// host's) are programmed as they must be now, and returns what each node
// was last seen to have programmed, for the next pass.
//
// A node has programmed a spec when its plugin reported the NodePolicy's
// generation Ready. While the plugin works on a newer generation, what it
// programmed before (programmed, from earlier passes) still counts: the
// plugin rewrites only the entries that change, so the identities whose
// policy the new spec leaves alone stay enforced throughout, and their
// policies stay Ready instead of flapping through Programming on every
// change to a neighbour. An identity counts only when the programmed
// policy already is the desired one, so a change is never called Ready on
// the strength of the old spec's report. A node that reported the current
// generation not programmed counts as enforcing nothing: what it holds
// is unknown. (Entries name peer sets by a hash of their content, so
// equal entries mean equal peers.)
func enforcement(items []nodesv1alpha1.NodePolicy, desired map[string]nodesv1alpha1.NodePolicySpec,
	programmed map[types.UID]*nodesv1alpha1.NodePolicySpec) (map[string]nodeEnforcement, map[types.UID]*nodesv1alpha1.NodePolicySpec) {
	out := make(map[string]nodeEnforcement, len(items))
	now := make(map[types.UID]*nodesv1alpha1.NodePolicySpec, len(items))
	for i := range items {
		np := &items[i]
		have := programmed[np.UID]
		ready := meta.FindStatusCondition(np.Status.Conditions, conditions.TypeReady)
		switch {
		case np.Status.ObservedGeneration == np.Generation && ready != nil && ready.ObservedGeneration == np.Generation:
			have = nil
			if ready.Status == metav1.ConditionTrue {
				have = &np.Spec
			}
		}
		if have == nil {
			continue
		}
		now[np.UID] = have
		out[np.Name] = enforcedOf(have, desired[np.Name])
	}
	return out, now
}

// enforcedOf says which of want's policies have holds as they are.
func enforcedOf(have *nodesv1alpha1.NodePolicySpec, want nodesv1alpha1.NodePolicySpec) nodeEnforcement {
	byID := make(map[int64]*nodesv1alpha1.IdentityPolicy, len(have.Identities))
	for j := range have.Identities {
		byID[have.Identities[j].Identity] = &have.Identities[j]
	}
	e := nodeEnforcement{identities: map[identity.Number]bool{}, host: have.Host.Equal(want.Host)}
	for j := range want.Identities {
		w := &want.Identities[j]
		if h := byID[w.Identity]; h != nil && h.Equal(w) {
			e.identities[identity.Number(w.Identity)] = true
		}
	}
	return e
}

func summarize(res *compiler.PolicyResult, nodesOf map[identity.Number]map[string]int, enforced map[string]nodeEnforcement, mode compiler.Mode) summary {
	s := summary{mode: mode}
	if res == nil {
		return s
	}
	s.problems = res.Problems
	seen, waiting := map[string]bool{}, map[string]bool{}
	for _, n := range res.Endpoints {
		for node, pods := range nodesOf[n] {
			s.endpoints += pods
			seen[node] = true
			if !enforced[node].identities[n] {
				waiting[node] = true
			}
		}
	}
	for _, node := range res.Nodes {
		seen[node] = true
		if !enforced[node].host {
			waiting[node] = true
		}
	}
	for node := range seen {
		s.nodes = append(s.nodes, node)
		if waiting[node] {
			s.waiting = append(s.waiting, node)
		}
	}
	slices.Sort(s.nodes)
	slices.Sort(s.waiting)
	return s
}

// setStatus writes the generation and the Valid and Ready conditions.
func setStatus(st *ciliumv2.NetworkPolicyStatus, generation int64, s summary) {
	st.ObservedGeneration = generation
	valid, ready := validCondition(s), readyCondition(s)
	conditions.Set(&st.Conditions, generation, valid)
	conditions.Set(&st.Conditions, generation, ready)
}

func validCondition(s summary) metav1.Condition {
	var invalid []compiler.Problem
	for _, p := range s.problems {
		if p.Reason == compiler.ReasonInvalid {
			invalid = append(invalid, p)
		}
	}
	if len(invalid) > 0 {
		return metav1.Condition{Type: TypeValid, Status: metav1.ConditionFalse, Reason: compiler.ReasonInvalid, Message: problemText(invalid)}
	}
	return metav1.Condition{Type: TypeValid, Status: metav1.ConditionTrue, Reason: ReasonCompiled, Message: "the policy compiles"}
}

// readyCondition is True when every node that must enforce the policy
// does, and every rule is enforced as written. Otherwise it says why not,
// the first reason first: problems (rules not enforced as written), the
// mode, then nodes still programming.
func readyCondition(s summary) metav1.Condition {
	c := metav1.Condition{Type: conditions.TypeReady}
	scope := fmt.Sprintf("selects %d %s on %d %s", s.endpoints, plural(s.endpoints, "pod", "pods"), len(s.nodes), plural(len(s.nodes), "node", "nodes"))
	switch {
	case len(s.problems) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, s.problems[0].Reason
		c.Message = "not enforced as written: " + problemText(s.problems) + "; " + scope
	case s.mode == compiler.ModeNever:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonDisabled
		c.Message = "policy enforcement mode is never: nothing is enforced; " + scope
	case len(s.waiting) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonProgramming
		c.Message = fmt.Sprintf("%s; enforced on %d of them, waiting for %s", scope, len(s.nodes)-len(s.waiting), listed(s.waiting, 5))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonEnforced
		c.Message = "enforced: " + scope
	}
	return c
}

func problemText(ps []compiler.Problem) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, p.Path+": "+p.Message)
	}
	return strings.Join(parts, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// listed names up to max items, then how many more.
func listed(items []string, limit int) string {
	if len(items) <= limit {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:limit], ", "), len(items)-limit)
}
