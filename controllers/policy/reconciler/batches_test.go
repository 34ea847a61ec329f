package reconciler

import (
	"fmt"
	"testing"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/identity"
)

// A large identity's addresses are split into objects of at most
// MaxIdentityAddresses, sorted, none lost, none twice.
func TestBatchesSplitLargeIdentities(t *testing.T) {
	var as []string
	for i := 2500; i > 0; i-- {
		as = append(as, fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	as = append(as, "10.1.0.1") // a pod with two entries of one address
	out := batches(map[identity.Number][]string{7000: as, 7001: {"fd00::1", "10.2.0.1"}})
	if len(out) != 4 {
		t.Fatalf("%d objects, want 3 for 7000 and 1 for 7001: %v", len(out), keys(out))
	}
	seen := map[string]bool{}
	for _, name := range []string{"7000", "7000-1", "7000-2"} {
		b, ok := out[name]
		if !ok || len(b.Addresses) > nodesv1alpha1.MaxIdentityAddresses || b.Identity != 7000 {
			t.Fatalf("%s: %v", name, ok)
		}
		for _, a := range b.Addresses {
			if seen[a] {
				t.Errorf("%s twice", a)
			}
			seen[a] = true
		}
	}
	if len(seen) != 2500 {
		t.Errorf("%d addresses, want 2500", len(seen))
	}
	if got := out["7001"].Addresses; len(got) != 2 || got[0] != "10.2.0.1" {
		t.Errorf("7001: %v, want IPv4 before IPv6", got)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
