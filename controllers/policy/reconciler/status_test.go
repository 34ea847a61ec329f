package reconciler

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/policy/compiler"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/identity"
)

// A node enforces an identity's policy only once its plugin programmed a
// NodePolicy that already holds that identity's policy as it must be now:
// a change is not Ready on the strength of the old spec's report. While
// the plugin works on a new generation, what it programmed before still
// counts for the identities whose policy did not change (their policies
// stay Ready, nothing flaps), but not after a failed report, and not for
// a NodePolicy made anew under the same name.
func TestEnforcementCountsOnlyTheDesiredSpec(t *testing.T) {
	entries := func(port int32) nodesv1alpha1.DirectionalPolicy {
		return nodesv1alpha1.DirectionalPolicy{Ingress: nodesv1alpha1.PolicyDirection{Enforced: true,
			Entries: []nodesv1alpha1.PolicyEntry{{Peers: "any", Protocol: 6, Port: port, EndPort: port}}}}
	}
	spec := func(port1000, port2000 int32) nodesv1alpha1.NodePolicySpec {
		return nodesv1alpha1.NodePolicySpec{Identities: []nodesv1alpha1.IdentityPolicy{
			{Identity: 1000, DirectionalPolicy: entries(port1000)}, {Identity: 2000, DirectionalPolicy: entries(port2000)}}}
	}
	reported := func(generation int64, status metav1.ConditionStatus, s nodesv1alpha1.NodePolicySpec) nodesv1alpha1.NodePolicy {
		return nodesv1alpha1.NodePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-1", Generation: 2},
			Spec:       s,
			Status: nodesv1alpha1.NodePolicyStatus{ObservedGeneration: generation, Conditions: []metav1.Condition{
				{Type: conditions.TypeReady, Status: status, Reason: "Programmed", ObservedGeneration: generation}}},
		}
	}
	programmed := reported(2, metav1.ConditionTrue, spec(80, 80))
	// The controller rewrote identity 2000's policy (generation 2 -> 3);
	// the plugin has not reported generation 3 yet.
	inProgress := reported(2, metav1.ConditionTrue, spec(80, 9090))
	inProgress.Generation = 3
	failed := reported(2, metav1.ConditionFalse, spec(80, 80))
	remade := inProgress
	remade.UID = "uid-2"
	before := map[types.UID]*nodesv1alpha1.NodePolicySpec{"uid-1": new(spec(80, 80))}
	for _, tc := range []struct {
		name       string
		np         nodesv1alpha1.NodePolicy
		before     map[types.UID]*nodesv1alpha1.NodePolicySpec
		desired    nodesv1alpha1.NodePolicySpec
		want1000   bool
		want2000   bool
		wantOnNode bool
	}{
		{"programmed, unchanged", programmed, nil, spec(80, 80), true, true, true},
		{"identity 1000's policy about to change", programmed, nil, spec(8080, 80), false, true, true},
		{"being programmed, nothing known before", inProgress, nil, spec(80, 9090), false, false, false},
		{"being programmed: 1000 unchanged, 2000 changed", inProgress, before, spec(80, 9090), true, false, true},
		{"current generation failed", failed, before, spec(80, 80), false, false, false},
		{"made anew under the same name", remade, before, spec(80, 9090), false, false, false},
	} {
		got, now := enforcement([]nodesv1alpha1.NodePolicy{tc.np}, map[string]nodesv1alpha1.NodePolicySpec{"n1": tc.desired}, tc.before)
		e, ok := got["n1"]
		if ok != tc.wantOnNode || e.identities[identity.Number(1000)] != tc.want1000 || e.identities[identity.Number(2000)] != tc.want2000 {
			t.Errorf("%s: %+v (reported %v), want 1000=%v 2000=%v", tc.name, e, ok, tc.want1000, tc.want2000)
		}
		if _, kept := now[tc.np.UID]; kept != tc.wantOnNode {
			t.Errorf("%s: remembered for the next pass: %v, want %v", tc.name, kept, tc.wantOnNode)
		}
	}
}

// While a policy is Programming, a report that only moves nodes from
// waiting to enforcing may wait until a second after the status last
// changed; becoming Ready, a new problem or node, a node falling back to
// waiting, or a spec change (new generation) is written at once.
func TestProgressWaitsOnlyForProgress(t *testing.T) {
	waiting := func(nodes ...string) summary {
		return summary{mode: compiler.ModeDefault, endpoints: 3, nodes: []string{"a", "b", "c"}, waiting: nodes}
	}
	withProblem := waiting("a")
	withProblem.problems = []compiler.Problem{{Reason: compiler.ReasonUnsupported, Path: "spec", Message: "x"}}
	for _, tc := range []struct {
		name       string
		prev, next summary
		want       bool
	}{
		{"one node fewer to wait for", waiting("a", "b", "c"), waiting("a"), true},
		{"ready", waiting("a", "b"), waiting(), false},
		{"a node waits again", waiting("a"), waiting("a", "b"), false},
		{"another node waits", waiting("a", "b"), waiting("c"), false},
		{"a problem", waiting("a", "b"), withProblem, false},
	} {
		if got := progressOnly(tc.prev, tc.next); got != tc.want {
			t.Errorf("%s: progressOnly %v, want %v", tc.name, got, tc.want)
		}
	}

	var c checkedStatuses
	pol := &ciliumv2.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{UID: "p", ResourceVersion: "1", Generation: 1}}
	t0 := time.Now()
	c.record(pol, waiting("a", "b", "c"), t0)
	if got := c.settling(pol, waiting("a"), t0.Add(300*time.Millisecond)); got != 700*time.Millisecond {
		t.Errorf("progress 0.3 s after the status changed waits %v, want 0.7 s", got)
	}
	if got := c.settling(pol, waiting("a"), t0.Add(1500*time.Millisecond)); got != 0 {
		t.Errorf("progress 1.5 s after waits %v, want nothing", got)
	}
	// Recording the same summary again (the write found it in place)
	// does not restart the second.
	c.record(pol, waiting("a", "b", "c"), t0.Add(200*time.Millisecond))
	if got := c.settling(pol, waiting("a"), t0.Add(300*time.Millisecond)); got != 700*time.Millisecond {
		t.Errorf("after recording the same status again: waits %v, want 0.7 s", got)
	}
	changed := pol.DeepCopy()
	changed.Generation = 2
	if got := c.settling(changed, waiting("a"), t0.Add(300*time.Millisecond)); got != 0 {
		t.Errorf("after a spec change: waits %v, want nothing", got)
	}
}
