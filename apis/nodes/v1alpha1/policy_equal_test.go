package v1alpha1

import (
	"reflect"
	"testing"
)

// The Equal methods compare field by field: a field they do not know
// would be ignored, and a changed NodePolicy never written. This fails
// first, naming the type to extend.
func TestEqualKnowsEveryField(t *testing.T) {
	for typ, fields := range map[reflect.Type]int{
		reflect.TypeFor[NodePolicySpec]():        3,
		reflect.TypeFor[IdentityPolicy]():        2,
		reflect.TypeFor[DirectionalPolicy]():     3,
		reflect.TypeFor[PolicyDirection]():       2,
		reflect.TypeFor[PolicyEntry]():           7,
		reflect.TypeFor[PeerSet]():               3,
		reflect.TypeFor[IdentityAddressesSpec](): 2,
	} {
		if typ.NumField() != fields {
			t.Errorf("%s has %d fields, its Equal compares %d: extend it (policy_equal.go) and this count", typ, typ.NumField(), fields)
		}
	}
}

// Every field makes a difference; nil and empty lists do not.
func TestNodePolicySpecEqual(t *testing.T) {
	base := func() NodePolicySpec {
		return NodePolicySpec{
			Identities: []IdentityPolicy{{Identity: 1000, DirectionalPolicy: DirectionalPolicy{Policies: []string{"a"},
				Ingress: PolicyDirection{Enforced: true, Entries: []PolicyEntry{{Peers: "p", Protocol: 6, Port: 80, EndPort: 80, Source: 1}}}}}},
			Host:     &DirectionalPolicy{Egress: PolicyDirection{Enforced: true}},
			PeerSets: []PeerSet{{Name: "p", Identities: []int64{7}, CIDRs: []string{"10.0.0.0/8"}}},
		}
	}
	a, b := base(), base()
	if !a.Equal(&b) {
		t.Fatal("equal specs differ")
	}
	for name, change := range map[string]func(*NodePolicySpec){
		"identity":       func(s *NodePolicySpec) { s.Identities[0].Identity = 1001 },
		"policies":       func(s *NodePolicySpec) { s.Identities[0].Policies = nil },
		"ingress":        func(s *NodePolicySpec) { s.Identities[0].Ingress.Enforced = false },
		"entry port":     func(s *NodePolicySpec) { s.Identities[0].Ingress.Entries[0].Port = 81 },
		"entry source":   func(s *NodePolicySpec) { s.Identities[0].Ingress.Entries[0].Source = 2 },
		"egress":         func(s *NodePolicySpec) { s.Identities[0].Egress.Entries = []PolicyEntry{{Peers: "any"}} },
		"host gone":      func(s *NodePolicySpec) { s.Host = nil },
		"host egress":    func(s *NodePolicySpec) { s.Host.Egress.Enforced = false },
		"peer set":       func(s *NodePolicySpec) { s.PeerSets[0].Identities = append(s.PeerSets[0].Identities, 8) },
		"peer set cidrs": func(s *NodePolicySpec) { s.PeerSets[0].CIDRs[0] = "10.0.0.0/9" },
	} {
		c := base()
		change(&c)
		if a.Equal(&c) || c.Equal(&a) {
			t.Errorf("a change of %s is not seen", name)
		}
	}
	empty, nilLists := NodePolicySpec{Identities: []IdentityPolicy{}, PeerSets: []PeerSet{}}, NodePolicySpec{}
	if !empty.Equal(&nilLists) {
		t.Error("empty and nil lists differ")
	}
}
