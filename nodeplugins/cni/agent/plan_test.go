package agent

import (
	"fmt"
	"net/netip"
	"testing"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

func TestI18_NeededFormula(t *testing.T) {
	cases := []struct{ inUse, pending, pre, want int }{
		{0, 0, 8, 8},   // I17: an empty node holds 8
		{9, 0, 8, 24},  // I18: roundUp(17, 8)
		{8, 0, 8, 16},  // roundUp(16, 8)
		{3, 2, 0, 5},   // no pre-allocation: exactly what is used and waited for
		{0, 0, 0, 0},   // nothing
		{1, 16, 8, 32}, // roundUp(25, 8)
	}
	for _, c := range cases {
		if got := needed(c.inUse, c.pending, c.pre); got != c.want {
			t.Errorf("needed(%d, %d, %d) = %d, want %d", c.inUse, c.pending, c.pre, got, c.want)
		}
	}
}

func TestI19_PlanRequestsPerFamily(t *testing.T) {
	pools := map[string]*ciliumv2alpha1.CiliumPodIPPool{
		"default": {Spec: ciliumv2alpha1.IPPoolSpec{IPv4: &ciliumv2alpha1.IPPoolFamily{}}},
		"dual":    {Spec: ciliumv2alpha1.IPPoolSpec{IPv4: &ciliumv2alpha1.IPPoolFamily{}, IPv6: &ciliumv2alpha1.IPPoolFamily{}}},
		"idle":    {Spec: ciliumv2alpha1.IPPoolSpec{IPv6: &ciliumv2alpha1.IPPoolFamily{}}},
	}
	got := planRequests(pools, map[string]int{"default": 8, "dual": 4, "ghost": 8}, map[string]demand{
		"dual": {inUse: map[ipam.Family]int{ipam.IPv4: 2, ipam.IPv6: 2}, pending: 1},
	})
	// dual: roundUp(2+1+4, 4) = 8 per family. ghost has no CiliumPodIPPool;
	// idle is neither used nor pre-allocated.
	if fmt.Sprint(got) != "[{default {8 0}} {dual {8 8}}]" {
		t.Errorf("requests %v", got)
	}
}

func TestI20_PlanReleasesKeepsEnoughAndUsed(t *testing.T) {
	allocated := []ciliumv2.IPAMPoolAllocation{
		{Pool: "a", CIDRs: []string{"10.0.0.0/28", "10.0.0.16/28", "10.0.0.32/28"}},
		{Pool: "b", CIDRs: []string{"10.1.0.0/28", "fd00::/124"}},
	}
	used := func(c netip.Prefix) bool { return c.String() == "10.0.0.16/28" }
	requests := []ciliumv2.IPAMPoolRequest{{Pool: "a", Needed: ciliumv2.IPAMPoolDemand{IPv4Addrs: 20}}}
	got := planReleases(allocated, requests, nil, used)
	// a: 3×13 addresses, 20 needed: one unused CIDR goes (the last), the used
	// one stays, and the first is needed. b: nothing needed, all goes.
	if fmt.Sprint(got["a"]) != "[10.0.0.32/28]" || fmt.Sprint(got["b"]) != "[10.1.0.0/28 fd00::/124]" {
		t.Errorf("releases %v", got)
	}
}

func TestI22_PoolReservedAddresses(t *testing.T) {
	p := &ciliumv2alpha1.CiliumPodIPPool{Spec: ciliumv2alpha1.IPPoolSpec{
		IPv4: &ciliumv2alpha1.IPPoolFamily{CIDRs: []string{"10.9.0.0/16", "10.8.0.0/31"}},
		IPv6: &ciliumv2alpha1.IPPoolFamily{CIDRs: []string{"fd00:9::/112"}},
	}}
	if got := fmt.Sprint(poolLayout(p).Reserved); got != "[10.9.0.0 10.9.255.255 fd00:9:: fd00:9::ffff]" {
		t.Errorf("reserved %s", got)
	}
	p.Spec.AllowFirstIP = true
	if l := poolLayout(p); fmt.Sprint(l.Reserved) != "[10.9.255.255 fd00:9::ffff]" || !l.AllowFirst || l.AllowLast {
		t.Errorf("allowFirstIP: layout %+v", l)
	}
	p.Spec.AllowLastIP = true
	if l := poolLayout(p); len(l.Reserved) != 0 || !l.AllowLast {
		t.Errorf("allowFirstIP and allowLastIP: layout %+v", l)
	}
}
