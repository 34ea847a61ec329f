package agent

import (
	"math/big"
	"net/netip"
	"slices"
	"sort"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

// demand is what the node needs of one pool right now.
type demand struct {
	inUse   map[ipam.Family]int
	pending int
}

// poolFamilies returns the families a CiliumPodIPPool serves.
func poolFamilies(p *ciliumv2alpha1.CiliumPodIPPool) []ipam.Family {
	var fs []ipam.Family
	if p.Spec.IPv4 != nil {
		fs = append(fs, ipam.IPv4)
	}
	if p.Spec.IPv6 != nil {
		fs = append(fs, ipam.IPv6)
	}
	return fs
}

// poolLayout says which addresses of a pool's node CIDRs pods may not
// have: the first and last address of every CIDR of the pool (I22), except
// for CIDRs too small to spare them, and those of every node CIDR; with
// allowFirstIP or allowLastIP (Cilium 1.20) the first or last ones are
// given out after all.
func poolLayout(p *ciliumv2alpha1.CiliumPodIPPool) ipam.Layout {
	l := ipam.Layout{AllowFirst: p.Spec.AllowFirstIP, AllowLast: p.Spec.AllowLastIP}
	for _, fam := range []*ciliumv2alpha1.IPPoolFamily{p.Spec.IPv4, p.Spec.IPv6} {
		if fam == nil {
			continue
		}
		for _, s := range fam.CIDRs {
			c, err := netip.ParsePrefix(s)
			if err != nil || c.Addr().BitLen()-c.Bits() < 2 {
				continue
			}
			c = c.Masked()
			if !l.AllowFirst {
				l.Reserved = append(l.Reserved, c.Addr())
			}
			if !l.AllowLast {
				l.Reserved = append(l.Reserved, lastAddr(c))
			}
		}
	}
	return l
}

func lastAddr(c netip.Prefix) netip.Addr {
	b := c.Addr().AsSlice()
	for i := c.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// needed is the request formula (I18): roundUp(inUse+pending+preAlloc,
// preAlloc), or inUse+pending without pre-allocation.
func needed(inUse, pending, preAlloc int) int {
	n := inUse + pending
	if preAlloc <= 0 {
		return n
	}
	n += preAlloc
	return (n + preAlloc - 1) / preAlloc * preAlloc
}

// planRequests returns spec.ipam.pools.requested: an entry for every pool the
// node uses, waits for or pre-allocates, each family the pool serves counted
// separately (I19). Pools without a CiliumPodIPPool cannot be asked for.
func planRequests(pools map[string]*ciliumv2alpha1.CiliumPodIPPool, preAlloc map[string]int, demands map[string]demand) []ciliumv2.IPAMPoolRequest {
	names := map[string]bool{}
	for n := range demands {
		names[n] = true
	}
	for n, pre := range preAlloc {
		if pre > 0 {
			names[n] = true
		}
	}
	var out []ciliumv2.IPAMPoolRequest
	for name := range names {
		p, ok := pools[name]
		if !ok {
			continue
		}
		d := demands[name]
		r := ciliumv2.IPAMPoolRequest{Pool: name}
		for _, f := range poolFamilies(p) {
			n := needed(d.inUse[f], d.pending, preAlloc[name])
			if f == ipam.IPv4 {
				r.Needed.IPv4Addrs = n
			} else {
				r.Needed.IPv6Addrs = n
			}
		}
		if r.Needed.IPv4Addrs > 0 || r.Needed.IPv6Addrs > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pool < out[j].Pool })
	return out
}

// planReleases returns, per pool, the allocated CIDRs the node can give back
// (I20): CIDRs no allocation uses, as long as the CIDRs left still cover the
// need of their family. Later CIDRs go first, so the node keeps its oldest.
func planReleases(allocated []ciliumv2.IPAMPoolAllocation, requests []ciliumv2.IPAMPoolRequest, layouts map[string]ipam.Layout, used func(netip.Prefix) bool) map[string][]netip.Prefix {
	need := map[string]ciliumv2.IPAMPoolDemand{}
	for _, r := range requests {
		need[r.Pool] = r.Needed
	}
	out := map[string][]netip.Prefix{}
	for _, a := range allocated {
		for _, f := range []ipam.Family{ipam.IPv4, ipam.IPv6} {
			want := need[a.Pool].IPv4Addrs
			if f == ipam.IPv6 {
				want = need[a.Pool].IPv6Addrs
			}
			var cidrs []netip.Prefix
			capacity := new(big.Int)
			for _, s := range a.CIDRs {
				c, err := netip.ParsePrefix(s)
				if err != nil || ipam.FamilyOf(c.Addr()) != f {
					continue
				}
				cidrs = append(cidrs, c)
				capacity.Add(capacity, ipam.Capacity(c, layouts[a.Pool]))
			}
			for _, c := range slices.Backward(cidrs) {
				if used(c) {
					continue
				}
				left := new(big.Int).Sub(capacity, ipam.Capacity(c, layouts[a.Pool]))
				if left.Cmp(big.NewInt(int64(want))) < 0 {
					continue
				}
				capacity = left
				out[a.Pool] = append(out[a.Pool], c)
			}
		}
	}
	return out
}
