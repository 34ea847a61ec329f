package v1alpha1

import "slices"

// The policy controller compares every node's desired NodePolicy (and
// every IdentityAddresses object) with the current one on every pass;
// reflection-based comparison of these large specs was most of a pass's
// time. These comparisons are field by field; policy_equal_test.go fails
// when a field is added that they do not know. A nil and an empty list
// are equal, as they are on the wire.

// Equal says whether two NodePolicy specs hold the same policy.
func (s *NodePolicySpec) Equal(o *NodePolicySpec) bool {
	return slices.EqualFunc(s.Identities, o.Identities, func(a, b IdentityPolicy) bool { return a.Equal(&b) }) &&
		s.Host.Equal(o.Host) &&
		slices.EqualFunc(s.PeerSets, o.PeerSets, func(a, b PeerSet) bool {
			return a.Name == b.Name && slices.Equal(a.Identities, b.Identities) && slices.Equal(a.CIDRs, b.CIDRs)
		})
}

// Equal says whether two identities' policies are the same.
func (p *IdentityPolicy) Equal(o *IdentityPolicy) bool {
	return p.Identity == o.Identity && p.DirectionalPolicy.Equal(&o.DirectionalPolicy)
}

// Equal says whether two endpoints' policies are the same; nil (no host
// policy) equals only nil.
func (d *DirectionalPolicy) Equal(o *DirectionalPolicy) bool {
	if d == nil || o == nil {
		return d == o
	}
	return slices.Equal(d.Policies, o.Policies) && d.Ingress.Equal(&o.Ingress) && d.Egress.Equal(&o.Egress)
}

// Equal says whether two directions' policies are the same.
func (d *PolicyDirection) Equal(o *PolicyDirection) bool {
	return d.Enforced == o.Enforced && slices.Equal(d.Entries, o.Entries) // PolicyEntry is comparable
}

// Equal says whether two IdentityAddresses specs are the same.
func (s *IdentityAddressesSpec) Equal(o *IdentityAddressesSpec) bool {
	return s.Identity == o.Identity && slices.Equal(s.Addresses, o.Addresses)
}
