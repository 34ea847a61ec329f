package reconciler

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
)

// A node's report counts only for the spec the node must enforce now: a
// NodePolicy that this pass rewrites is not programmed yet, so a policy
// change is not Ready on the strength of the old spec's report.
func TestNodeReportsCountOnlyTheDesiredSpec(t *testing.T) {
	old := nodesv1alpha1.NodePolicySpec{PeerSets: []nodesv1alpha1.PeerSet{{Name: "p1", Identities: []int64{1000}}}}
	changed := nodesv1alpha1.NodePolicySpec{PeerSets: []nodesv1alpha1.PeerSet{{Name: "p1", Identities: []int64{1000, 1001}}}}
	programmed := nodesv1alpha1.NodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Generation: 2},
		Spec:       old,
		Status: nodesv1alpha1.NodePolicyStatus{ObservedGeneration: 2, Conditions: []metav1.Condition{
			{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: 2}}},
	}
	stale := programmed
	stale.Status.ObservedGeneration = 1
	for _, tc := range []struct {
		name    string
		np      nodesv1alpha1.NodePolicy
		desired nodesv1alpha1.NodePolicySpec
		want    bool
	}{
		{"programmed, unchanged", programmed, old, true},
		{"programmed, about to change", programmed, changed, false},
		{"not yet programmed", stale, old, false},
	} {
		got := nodeReports([]nodesv1alpha1.NodePolicy{tc.np}, map[string]nodesv1alpha1.NodePolicySpec{"n1": tc.desired})["n1"]
		if got != tc.want {
			t.Errorf("%s: reported %v, want %v", tc.name, got, tc.want)
		}
	}
}
