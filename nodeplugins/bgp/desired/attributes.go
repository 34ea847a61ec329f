package desired

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// wellKnownCommunities are the RFC 1997 (and later) communities the APIs
// accept by name.
var wellKnownCommunities = map[string]uint32{
	"internet":                   0x00000000,
	"planned-shut":               0xFFFF0000,
	"accept-own":                 0xFFFF0001,
	"route-filter-translated-v4": 0xFFFF0002,
	"route-filter-v4":            0xFFFF0003,
	"route-filter-translated-v6": 0xFFFF0004,
	"route-filter-v6":            0xFFFF0005,
	"llgr-stale":                 0xFFFF0006,
	"no-llgr":                    0xFFFF0007,
	"blackhole":                  0xFFFF029A,
	"no-export":                  0xFFFFFF01,
	"no-advertise":               0xFFFFFF02,
	"no-export-subconfed":        0xFFFFFF03,
	"no-peer":                    0xFFFFFF04,
}

// attrs are path attributes of routes, before merging.
type attrs struct {
	communities []uint32
	large       []LargeCommunity
	localPref   *uint32
}

// parseAttrs reads the attributes of the v2 and legacy APIs, which share
// their shape but not their Go types.
func parseAttrs[S, W, L ~string](standard []S, wellKnown []W, large []L, localPref *int64) (attrs, error) {
	var a attrs
	for _, s := range standard {
		c, err := parseStandardCommunity(string(s))
		if err != nil {
			return attrs{}, err
		}
		a.communities = append(a.communities, c)
	}
	for _, s := range wellKnown {
		c, ok := wellKnownCommunities[string(s)]
		if !ok {
			return attrs{}, fmt.Errorf("unknown well-known community %q", s)
		}
		a.communities = append(a.communities, c)
	}
	for _, s := range large {
		c, err := parseLargeCommunity(string(s))
		if err != nil {
			return attrs{}, err
		}
		a.large = append(a.large, c)
	}
	if localPref != nil {
		if *localPref < 0 || *localPref > 0xFFFFFFFF {
			return attrs{}, fmt.Errorf("localPreference %d is not a 32-bit number", *localPref)
		}
		lp := uint32(*localPref)
		a.localPref = &lp
	}
	return a, nil
}

// parseStandardCommunity reads "N" (32 bits) or "A:B" (16 bits each).
func parseStandardCommunity(s string) (uint32, error) {
	hi, lo, pair := strings.Cut(s, ":")
	if !pair {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("standard community %q is not a 32-bit number or AS:value", s)
		}
		return uint32(n), nil
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("standard community %q is not two 16-bit numbers AS:value", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}

// parseLargeCommunity reads "A:B:C" (32 bits each).
func parseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	var n [3]uint32
	if len(parts) != 3 {
		return LargeCommunity{}, fmt.Errorf("large community %q is not three 32-bit numbers A:B:C", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("large community %q is not three 32-bit numbers A:B:C", s)
		}
		n[i] = uint32(v)
	}
	return LargeCommunity{Global: n[0], Local1: n[1], Local2: n[2]}, nil
}

// merge combines two sets of attributes for one route: the union of the
// communities and the highest local preference (B43).
func (a attrs) merge(b attrs) attrs {
	out := attrs{
		communities: append(slices.Clone(a.communities), b.communities...),
		large:       append(slices.Clone(a.large), b.large...),
		localPref:   a.localPref,
	}
	if b.localPref != nil && (out.localPref == nil || *b.localPref > *out.localPref) {
		out.localPref = b.localPref
	}
	return out
}

// routeTable collects the routes for one peer: one entry per prefix, with
// the attributes of every source of the prefix merged.
type routeTable map[netip.Prefix]attrs

func (t routeTable) add(p netip.Prefix, a attrs) {
	if cur, ok := t[p]; ok {
		a = cur.merge(a)
	}
	t[p] = a
}

// routes lists the table sorted by prefix (IPv4 first), attributes sorted
// and without duplicates.
func (t routeTable) routes() []Route {
	if len(t) == 0 {
		return nil
	}
	prefixes := slices.SortedFunc(maps.Keys(t), comparePrefixes)
	out := make([]Route, 0, len(prefixes))
	for _, p := range prefixes {
		a := t[p]
		r := Route{Prefix: p}
		if len(a.communities) > 0 {
			r.Communities = slices.Compact(slices.Sorted(slices.Values(a.communities)))
		}
		if len(a.large) > 0 {
			r.LargeCommunities = slices.CompactFunc(slices.SortedFunc(slices.Values(a.large), compareLarge),
				func(x, y LargeCommunity) bool { return x == y })
		}
		if a.localPref != nil {
			lp := *a.localPref
			r.LocalPreference = &lp
		}
		out = append(out, r)
	}
	return out
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func compareLarge(a, b LargeCommunity) int {
	return cmp.Or(cmp.Compare(a.Global, b.Global), cmp.Compare(a.Local1, b.Local1), cmp.Compare(a.Local2, b.Local2))
}
