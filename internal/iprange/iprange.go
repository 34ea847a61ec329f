// Package iprange is arithmetic on inclusive ranges of IP addresses: building
// them from prefixes and start/stop pairs, overlap tests, merging and sizes.
// Allocators for Service and pod addresses build on it.
package iprange

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
)

// Range is the inclusive span [First, Last] of one IP family.
type Range struct {
	First, Last netip.Addr
}

// FromPrefix returns the addresses of p. With reserveEnds it leaves out the
// first (network) and last (broadcast) address, except for prefixes too small to
// have them: IPv4 /31 and /32, IPv6 /127 and /128.
func FromPrefix(p netip.Prefix, reserveEnds bool) (Range, bool) {
	p = p.Masked()
	r := Range{First: p.Addr(), Last: lastOf(p)}
	if reserveEnds && p.Addr().BitLen()-p.Bits() >= 2 {
		r.First = r.First.Next()
		r.Last = r.Last.Prev()
	}
	return r, r.First.IsValid() && r.Last.IsValid()
}

// Parse builds a range from start and an optional stop ("" means start alone).
func Parse(start, stop string) (Range, error) {
	first, err := netip.ParseAddr(start)
	if err != nil {
		return Range{}, fmt.Errorf("start %q is not an IP address", start)
	}
	last := first
	if stop != "" {
		if last, err = netip.ParseAddr(stop); err != nil {
			return Range{}, fmt.Errorf("stop %q is not an IP address", stop)
		}
	}
	first, last = first.Unmap(), last.Unmap()
	if first.Is4() != last.Is4() {
		return Range{}, fmt.Errorf("start %s and stop %s are of different IP families", first, last)
	}
	if last.Less(first) {
		return Range{}, fmt.Errorf("start %s is after stop %s", first, last)
	}
	return Range{First: first.WithZone(""), Last: last.WithZone("")}, nil
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	hostBits := p.Addr().BitLen() - p.Bits()
	for i := len(b) - 1; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether a lies in r.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() == r.First.Is4() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.First.Is4() == o.First.Is4() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Size is the number of addresses in r (2^64 and more for large IPv6 ranges).
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(toInt(r.Last), toInt(r.First))
	return n.Add(n, big.NewInt(1))
}

// String prints a single address, or first-last.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

func toInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

// Merge sorts ranges and joins those that overlap or touch, so that the result
// covers the same addresses with no address counted twice.
func Merge(rs []Range) []Range {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b Range) int { return a.First.Compare(b.First) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 {
			prev := &merged[n-1]
			if prev.First.Is4() == r.First.Is4() && (prev.Last.Compare(r.First) >= 0 || prev.Last.Next() == r.First) {
				if prev.Last.Less(r.Last) {
					prev.Last = r.Last
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	return merged
}

// TotalSize is the number of addresses covered by rs, which must not overlap.
func TotalSize(rs []Range) *big.Int {
	total := new(big.Int)
	for _, r := range rs {
		total.Add(total, r.Size())
	}
	return total
}
