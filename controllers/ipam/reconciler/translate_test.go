package reconciler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
)

// specCurrent answers what comparing desiredSpec with the spec answers, in
// every mode, for specs that differ in each field it looks at or in none.
func TestSpecCurrentAgreesWithDesiredSpec(t *testing.T) {
	node := &corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "198.18.0.11"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
	}}}
	addrs := []ciliumv2.NodeAddress{{Type: ciliumv2.NodeAddressInternalIP, IP: "198.18.0.11"}, {Type: ciliumv2.NodeAddressExternalIP, IP: "203.0.113.1"}}
	res := &allocator.NodeResult{PodCIDRs: []string{"10.0.1.0/24"}, Allocated: []allocator.PoolCIDRs{{Pool: "default", CIDRs: []string{"10.1.0.0/26"}}}}
	spec := func(edit func(*ciliumv2.NodeSpec)) ciliumv2.NodeSpec {
		s := ciliumv2.NodeSpec{Addresses: append([]ciliumv2.NodeAddress(nil), addrs...)}
		s.IPAM.PodCIDRs = []string{"10.0.1.0/24"}
		s.IPAM.Pools.Allocated = []ciliumv2.IPAMPoolAllocation{{Pool: "default", CIDRs: []string{"10.1.0.0/26"}}}
		s.IPAM.Pool = ciliumv2.AllocationMap{"10.2.0.1": {}}
		if edit != nil {
			edit(&s)
		}
		return s
	}
	cases := map[string]ciliumv2.NodeSpec{
		"current":             spec(nil),
		"address missing":     spec(func(s *ciliumv2.NodeSpec) { s.Addresses = s.Addresses[:1] }),
		"address extra":       spec(func(s *ciliumv2.NodeSpec) { s.Addresses = append(s.Addresses, addrs[0]) }),
		"addresses reordered": spec(func(s *ciliumv2.NodeSpec) { s.Addresses[0], s.Addresses[1] = s.Addresses[1], s.Addresses[0] }),
		"no addresses":        spec(func(s *ciliumv2.NodeSpec) { s.Addresses = nil }),
		"other pod CIDR":      spec(func(s *ciliumv2.NodeSpec) { s.IPAM.PodCIDRs = []string{"10.0.2.0/24"} }),
		"no pod CIDR":         spec(func(s *ciliumv2.NodeSpec) { s.IPAM.PodCIDRs = nil }),
		"other pool CIDR":     spec(func(s *ciliumv2.NodeSpec) { s.IPAM.Pools.Allocated[0].CIDRs = []string{"10.1.0.64/26"} }),
		"other pool":          spec(func(s *ciliumv2.NodeSpec) { s.IPAM.Pools.Allocated[0].Pool = "blue" }),
		"no pools":            spec(func(s *ciliumv2.NodeSpec) { s.IPAM.Pools.Allocated = nil }),
		"other crd list":      spec(func(s *ciliumv2.NodeSpec) { s.IPAM.Pool = nil }),
	}
	for _, mode := range []allocator.Mode{allocator.ModeClusterPool, allocator.ModeKubernetes, allocator.ModeMultiPool, allocator.ModeCRD} {
		for name, cur := range cases {
			want := equality.Semantic.DeepEqual(desiredSpec(cur, node, mode, res), cur)
			if got := specCurrent(cur, node, mode, res); got != want {
				t.Errorf("%s, %s: specCurrent = %v, desiredSpec comparison says %v", mode, name, got, want)
			}
		}
	}
}
