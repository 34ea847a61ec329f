package nodeobjects

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

var kind = Kind[ciliumv2.CiliumBGPNodeConfig, ciliumv2.CiliumBGPNodeSpec]{
	Name: "CiliumBGPNodeConfig", ManagedBy: "test",
	New:    func() *ciliumv2.CiliumBGPNodeConfig { return &ciliumv2.CiliumBGPNodeConfig{} },
	Spec:   func(c *ciliumv2.CiliumBGPNodeConfig) *ciliumv2.CiliumBGPNodeSpec { return &c.Spec },
	Object: func(c *ciliumv2.CiliumBGPNodeConfig) client.Object { return c },
}

func owner(name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "cilium.io/v2", Kind: "CiliumBGPClusterConfig", Name: name,
		UID: types.UID("uid-" + name), Controller: ptr.To(true)}}
}

func run(t *testing.T, writes []func(context.Context) error) {
	t.Helper()
	for _, w := range writes {
		if err := w(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// WritesOwned creates with owners and label, patches an object whose owner
// (only) differs, and then has nothing left to write; Writes ignores owners.
func TestWritesOwnedKeepsOwners(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := ciliumv2.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	spec := ciliumv2.CiliumBGPNodeSpec{BGPInstances: []ciliumv2.CiliumBGPNodeInstance{{Name: "i"}}}
	list := func() []*ciliumv2.CiliumBGPNodeConfig {
		var l ciliumv2.CiliumBGPNodeConfigList
		if err := c.List(t.Context(), &l); err != nil {
			t.Fatal(err)
		}
		return Ptrs(l.Items)
	}
	run(t, kind.WritesOwned(c, nil, map[string]Owned[ciliumv2.CiliumBGPNodeSpec]{"n1": {Spec: spec, Owners: owner("a")}}))
	got := list()
	if len(got) != 1 || got[0].Labels[ManagedByLabel] != "test" || got[0].OwnerReferences[0].Name != "a" {
		t.Fatalf("created %+v", got)
	}
	if w := kind.WritesOwned(c, got, map[string]Owned[ciliumv2.CiliumBGPNodeSpec]{"n1": {Spec: spec, Owners: owner("a")}}); len(w) != 0 {
		t.Fatalf("%d writes for an object that is right", len(w))
	}
	if w := kind.Writes(c, got, map[string]ciliumv2.CiliumBGPNodeSpec{"n1": spec}); len(w) != 0 {
		t.Fatalf("Writes wants to change owners: %d writes", len(w))
	}
	run(t, kind.WritesOwned(c, got, map[string]Owned[ciliumv2.CiliumBGPNodeSpec]{"n1": {Spec: spec, Owners: owner("b")}}))
	if got = list(); got[0].OwnerReferences[0].Name != "b" || len(got[0].OwnerReferences) != 1 {
		t.Fatalf("owner not moved: %+v", got[0].OwnerReferences)
	}
	run(t, kind.WritesOwned(c, got, nil))
	if got = list(); len(got) != 0 {
		t.Fatalf("not deleted: %+v", got)
	}
}
