package reconciler

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/identity"
)

// A node enforces an identity's policy only once its plugin programmed a
// NodePolicy that already holds that identity's policy as it must be now:
// a change is not Ready on the strength of the old spec's report, and a
// NodePolicy rewritten for one identity leaves the other identities'
// policies enforced (their policies stay Ready, nothing flaps).
func TestEnforcementCountsOnlyTheDesiredSpec(t *testing.T) {
	entries := func(port int32) nodesv1alpha1.DirectionalPolicy {
		return nodesv1alpha1.DirectionalPolicy{Ingress: nodesv1alpha1.PolicyDirection{Enforced: true,
			Entries: []nodesv1alpha1.PolicyEntry{{Peers: "any", Protocol: 6, Port: port, EndPort: port}}}}
	}
	spec := func(port1000, port2000 int32) nodesv1alpha1.NodePolicySpec {
		return nodesv1alpha1.NodePolicySpec{Identities: []nodesv1alpha1.IdentityPolicy{
			{Identity: 1000, DirectionalPolicy: entries(port1000)}, {Identity: 2000, DirectionalPolicy: entries(port2000)}}}
	}
	programmed := nodesv1alpha1.NodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Generation: 2},
		Spec:       spec(80, 80),
		Status: nodesv1alpha1.NodePolicyStatus{ObservedGeneration: 2, Conditions: []metav1.Condition{
			{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: 2}}},
	}
	stale := programmed
	stale.Status.ObservedGeneration = 1
	for _, tc := range []struct {
		name       string
		np         nodesv1alpha1.NodePolicy
		desired    nodesv1alpha1.NodePolicySpec
		want1000   bool
		want2000   bool
		wantOnNode bool
	}{
		{"programmed, unchanged", programmed, spec(80, 80), true, true, true},
		{"identity 1000's policy about to change", programmed, spec(8080, 80), false, true, true},
		{"not yet programmed", stale, spec(80, 80), false, false, false},
	} {
		e, ok := enforcement([]nodesv1alpha1.NodePolicy{tc.np}, map[string]nodesv1alpha1.NodePolicySpec{"n1": tc.desired})["n1"]
		if ok != tc.wantOnNode || e.identities[identity.Number(1000)] != tc.want1000 || e.identities[identity.Number(2000)] != tc.want2000 {
			t.Errorf("%s: %+v (reported %v), want 1000=%v 2000=%v", tc.name, e, ok, tc.want1000, tc.want2000)
		}
	}
}
