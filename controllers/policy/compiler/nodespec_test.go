package compiler

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/identity"
)

// A node's spec holds only its own identities (and its host's policy),
// every entry names a peer set the spec holds, and equal inputs give
// equal specs, so the controller writes only changes.
func TestNodeSpecHoldsOnlyLocalIdentities(t *testing.T) {
	in := loadCase(t, "testdata/np09-kubernetes-networkpolicy.yaml")
	out := Compile(in)
	spec := out.NodeSpec("n1", []identity.Number{1001, 1001, 1002})
	if len(spec.Identities) != 1 || spec.Identities[0].Identity != 1001 {
		t.Fatalf("identities %+v, want only 1001 (1002 enforces nothing)", spec.Identities)
	}
	names := map[string]bool{nodesv1alpha1.AnyPeer: true}
	for _, ps := range spec.PeerSets {
		names[ps.Name] = true
	}
	for _, e := range spec.Identities[0].Ingress.Entries {
		if !names[e.Peers] {
			t.Errorf("entry %+v names a peer set the spec lacks", e)
		}
	}
	if len(spec.PeerSets) < 2 || !slices.IsSortedFunc(spec.PeerSets, func(a, b nodesv1alpha1.PeerSet) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	}) {
		t.Errorf("peer sets %+v: want several, sorted by name", spec.PeerSets)
	}
	again := Compile(in).NodeSpec("n1", []identity.Number{1002, 1001})
	if !equality.Semantic.DeepEqual(spec, again) {
		t.Errorf("two compilations differ:\n%+v\n%+v", spec, again)
	}
	if empty := out.NodeSpec("n2", []identity.Number{1000}); len(empty.Identities) != 0 || empty.Host != nil || len(empty.PeerSets) != 0 {
		t.Errorf("a node with no enforcing identity: %+v", empty)
	}
}

// Two different sets whose names collide both keep their content.
func TestPeerSetNameCollisionKeepsBothSets(t *testing.T) {
	sets := map[string]nodesv1alpha1.PeerSet{}
	a := Peers{Identities: []identity.Number{1}}
	name := peerSetName(a, sets)
	// Plant a different set under the name the next set would get.
	b := Peers{Identities: []identity.Number{2}}
	bName := peerSetName(b, map[string]nodesv1alpha1.PeerSet{})
	sets[bName] = nodesv1alpha1.PeerSet{Name: bName, Identities: []int64{99}}
	got := peerSetName(b, sets)
	if got == bName || got == name || !slices.Equal(sets[got].Identities, []int64{2}) || !slices.Equal(sets[bName].Identities, []int64{99}) {
		t.Errorf("collision: got %s %+v, planted %+v", got, sets[got], sets[bName])
	}
}
