package reconciler

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/nodeobjects"
	"github.com/plexus-net/plexus/test/testenv"
)

// A pass that still reads a NodePolicy as it was before the controller's
// own update (its cache behind the watch) leaves it alone instead of
// sending the update again on a stale resourceVersion, which the API
// server would refuse as a conflict and which would cost a pass; once the
// cache shows the update, changes are written as usual.
func TestNodePoliciesNotRewrittenFromACacheBehindTheControllersWrite(t *testing.T) {
	testenv.Require(t, env)
	ctx, c := t.Context(), env.Client
	t.Cleanup(func() { _ = c.DeleteAllOf(ctx, &nodesv1alpha1.NodePolicy{}) })
	list := func() []*nodesv1alpha1.NodePolicy {
		var l nodesv1alpha1.NodePolicyList
		if err := c.List(ctx, &l); err != nil {
			t.Fatal(err)
		}
		return nodeobjects.Ptrs(l.Items)
	}
	spec := func(id int64) map[string]nodesv1alpha1.NodePolicySpec {
		return map[string]nodesv1alpha1.NodePolicySpec{"written-test": {Identities: []nodesv1alpha1.IdentityPolicy{{Identity: id}}}}
	}
	kind := nodePolicies
	kind.Written = &nodeobjects.Written{}
	write := func(existing []*nodesv1alpha1.NodePolicy, desired map[string]nodesv1alpha1.NodePolicySpec) int {
		t.Helper()
		ws := kind.Writes(c, existing, desired)
		for _, w := range ws {
			if err := w(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return len(ws)
	}
	write(nil, spec(1000))
	stale := list()
	if n := write(stale, spec(2000)); n != 1 {
		t.Fatalf("%d writes for a changed spec, want 1", n)
	}
	if n := write(stale, spec(2000)); n != 0 {
		t.Fatalf("%d writes from a view that predates the controller's own update", n)
	}
	if err := nodePolicies.Writes(c, stale, spec(2000))[0](ctx); !apierrors.IsConflict(err) {
		t.Fatalf("the same write without Written: %v, want a conflict", err)
	}
	fresh := list()
	if n := write(fresh, spec(2000)); n != 0 {
		t.Fatalf("%d writes for a NodePolicy that is right", n)
	}
	write(fresh, spec(3000))
	if got := list(); got[0].Spec.Identities[0].Identity != 3000 {
		t.Fatalf("a later change was not written: %+v", got[0].Spec)
	}
}
