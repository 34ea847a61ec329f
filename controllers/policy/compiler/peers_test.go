package compiler

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// subtract's prefixes hold exactly the addresses of p outside every
// exception, for random prefixes and exceptions, checked address by
// address inside a /20 (small enough to walk, large enough to split).
func TestSubtractHoldsExactlyTheRest(t *testing.T) {
	base := netip.MustParsePrefix("10.16.0.0/20")
	rng := rand.New(rand.NewPCG(1, 2))
	randomPrefix := func(minBits int) netip.Prefix {
		a := base.Addr().As4()
		off := rng.Uint32N(1 << 12)
		a[2] |= byte(off >> 8)
		a[3] = byte(off)
		return netip.PrefixFrom(netip.AddrFrom4(a), minBits+rng.IntN(33-minBits)).Masked()
	}
	for range 200 {
		p := randomPrefix(20)
		var excepts []netip.Prefix
		for range rng.IntN(4) {
			excepts = append(excepts, randomPrefix(20))
		}
		got := subtract(p, excepts)
		for i := range 1 << 12 {
			a := base.Addr().As4()
			a[2] |= byte(i >> 8)
			a[3] = byte(i)
			addr := netip.AddrFrom4(a)
			want := p.Contains(addr)
			for _, e := range excepts {
				if e.Contains(addr) {
					want = false
				}
			}
			held := 0
			for _, q := range got {
				if q.Contains(addr) {
					held++
				}
			}
			if (held == 1) != want || held > 1 {
				t.Fatalf("%s minus %v = %v: %s held %d times, want in=%v", p, excepts, got, addr, held, want)
			}
		}
	}
}

func TestSubtractIPv6AndMixedFamilies(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8::/32")
	got := subtract(p, []netip.Prefix{netip.MustParsePrefix("2001:db8::/34"), netip.MustParsePrefix("10.0.0.0/8")})
	want := []netip.Prefix{netip.MustParsePrefix("2001:db8:4000::/34"), netip.MustParsePrefix("2001:db8:8000::/33")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}
