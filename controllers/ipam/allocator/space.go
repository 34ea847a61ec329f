package allocator

import (
	"math/bits"
	"net/netip"
)

// Space hands out subnets of one prefix length carved from a list of parent
// prefixes of one family, lowest address first. It only remembers what is
// taken, so an IPv6 /64 carved into /120s costs nothing until used.
type Space struct {
	mask    int
	parents []parent
	// blocked are prefixes held outside any space (CIDRs removed from the
	// configuration that nodes still use); Next never hands out a subnet
	// overlapping one. Shared by all spaces of a pass.
	blocked *[]netip.Prefix
}

type parent struct {
	prefix netip.Prefix
	count  uint64 // subnets in the parent, capped at 2^63
	used   map[uint64]bool
	next   uint64 // no free subnet below this index
}

// NewSpace builds a space; parents whose prefix is longer than mask, or of
// another family than the first, are skipped (validation reports them).
func NewSpace(parents []netip.Prefix, mask int, blocked *[]netip.Prefix) *Space {
	s := &Space{mask: mask, blocked: blocked}
	for _, p := range parents {
		p = p.Masked()
		if p.Bits() > mask || mask > p.Addr().BitLen() || (len(s.parents) > 0 && p.Addr().Is4() != s.parents[0].prefix.Addr().Is4()) {
			continue
		}
		shift := mask - p.Bits()
		count := uint64(1) << min(shift, 63)
		s.parents = append(s.parents, parent{prefix: p, count: count, used: map[uint64]bool{}})
	}
	return s
}

// Mask is the prefix length of the subnets handed out.
func (s *Space) Mask() int { return s.mask }

// Contains reports whether sub is a subnet this space hands out: inside a
// parent and of the space's mask.
func (s *Space) Contains(sub netip.Prefix) bool {
	_, _, ok := s.locate(sub)
	return ok
}

// Overlaps reports whether sub overlaps any parent.
func (s *Space) Overlaps(sub netip.Prefix) bool {
	for _, p := range s.parents {
		if p.prefix.Overlaps(sub) {
			return true
		}
	}
	return false
}

// Take marks sub as used. It reports false when sub is not a subnet of this
// space or is already taken.
func (s *Space) Take(sub netip.Prefix) bool {
	p, i, ok := s.locate(sub)
	if !ok || p.used[i] {
		return false
	}
	p.used[i] = true
	return true
}

// Next takes and returns the lowest free subnet, or false when the space is
// full.
func (s *Space) Next() (netip.Prefix, bool) {
	for pi := range s.parents {
		p := &s.parents[pi]
		for ; p.next < p.count; p.next++ {
			if p.used[p.next] {
				continue
			}
			p.used[p.next] = true
			sub := subnetAt(p.prefix, s.mask, p.next)
			if !s.isBlocked(sub) {
				return sub, true
			}
		}
	}
	return netip.Prefix{}, false
}

// Free counts the free subnets, saturating at 2^63.
func (s *Space) Free() uint64 {
	var n uint64
	for _, p := range s.parents {
		free := p.count - uint64(len(p.used))
		if n+free < n || n+free > 1<<63 {
			return 1 << 63
		}
		n += free
	}
	return n
}

func (s *Space) isBlocked(sub netip.Prefix) bool {
	if s.blocked == nil {
		return false
	}
	for _, b := range *s.blocked {
		if b.Overlaps(sub) {
			return true
		}
	}
	return false
}

func (s *Space) locate(sub netip.Prefix) (*parent, uint64, bool) {
	if sub.Bits() != s.mask || sub != sub.Masked() {
		return nil, 0, false
	}
	for pi := range s.parents {
		p := &s.parents[pi]
		if p.prefix.Contains(sub.Addr()) {
			i := offset(p.prefix.Addr(), sub.Addr()).shr(sub.Addr().BitLen() - s.mask)
			if i.hi != 0 || i.lo >= p.count {
				return nil, 0, false
			}
			return p, i.lo, true
		}
	}
	return nil, 0, false
}

// u128 is enough arithmetic on addresses for carving subnets.
type u128 struct{ hi, lo uint64 }

func (a u128) shl(n int) u128 {
	switch {
	case n == 0:
		return a
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{hi: a.lo << (n - 64)}
	default:
		return u128{hi: a.hi<<n | a.lo>>(64-n), lo: a.lo << n}
	}
}

func (a u128) shr(n int) u128 {
	switch {
	case n == 0:
		return a
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{lo: a.hi >> (n - 64)}
	default:
		return u128{hi: a.hi >> n, lo: a.lo>>n | a.hi<<(64-n)}
	}
}

func toU128(a netip.Addr) u128 {
	b := a.As16()
	var v u128
	for i := range 8 {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

func fromU128(v u128, is4 bool) netip.Addr {
	var b [16]byte
	for i := range 8 {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// offset is b - a for b >= a.
func offset(a, b netip.Addr) u128 {
	x, y := toU128(a), toU128(b)
	lo, borrow := bits.Sub64(y.lo, x.lo, 0)
	hi, _ := bits.Sub64(y.hi, x.hi, borrow)
	return u128{hi, lo}
}

func subnetAt(parent netip.Prefix, mask int, i uint64) netip.Prefix {
	base := toU128(parent.Addr())
	off := u128{lo: i}.shl(parent.Addr().BitLen() - mask)
	lo, carry := bits.Add64(base.lo, off.lo, 0)
	hi, _ := bits.Add64(base.hi, off.hi, carry)
	return netip.PrefixFrom(fromU128(u128{hi, lo}, parent.Addr().Is4()), mask)
}
