// Package nftset holds what the Plexus node plugins share to program their
// own nftables tables (github.com/google/nftables): the atomic replacement of
// a whole table, IPv4 address sets, interval sets of CIDRs encoded the way
// nft(8) encodes them (after merging overlapping and adjacent prefixes, which
// the kernel refuses in one interval set), and the matches that use them.
package nftset

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// QueueReplace queues on c the deletion of table t if it exists and, when
// recreate is set, its creation, empty: with t's content queued after it, one
// Flush replaces the table in one transaction, so packets see the old rules
// or the new ones, never a mix. Conntrack entries (and their NAT bindings)
// are not the table's and stay.
func QueueReplace(c *nftables.Conn, t *nftables.Table, recreate bool) {
	// Adding without NLM_F_EXCL succeeds whether or not the table exists,
	// so the delete that follows cannot fail: delete-if-exists.
	c.AddTable(t)
	c.DelTable(t)
	if recreate {
		c.AddTable(t)
	}
}

// Range is an inclusive range of IPv4 addresses.
type Range struct {
	First, Last netip.Addr
}

// IPv4Ranges returns the addresses covered by the IPv4 prefixes (IPv6 ones
// are skipped) as sorted ranges, none overlapping or adjacent to another.
func IPv4Ranges(prefixes []netip.Prefix) []Range {
	var rs []Range
	for _, p := range prefixes {
		p, ok := ipv4Prefix(p)
		if !ok {
			continue
		}
		rs = append(rs, Range{First: p.Addr(), Last: lastOf(p)})
	}
	slices.SortFunc(rs, func(a, b Range) int { return a.First.Compare(b.First) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			// Overlapping, or adjacent: prev.Last+1 == r.First.
			if next := prev.Last.Next(); r.First.Compare(prev.Last) <= 0 || (next.IsValid() && next == r.First) {
				if r.Last.Compare(prev.Last) > 0 {
					prev.Last = r.Last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// ipv4Prefix returns p masked, as an IPv4 prefix (unmapping ::ffff:a.b.c.d/n
// with n >= 96), or false when p is not IPv4.
func ipv4Prefix(p netip.Prefix) (netip.Prefix, bool) {
	switch a := p.Addr(); {
	case !p.IsValid():
		return p, false
	case a.Is4():
		return p.Masked(), true
	case a.Is4In6() && p.Bits() >= 96:
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), true
	}
	return p, false
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// IntervalElements returns the elements of an interval set holding rs (as
// IPv4Ranges returns them): each range is a start key and, after its last
// address, an end key; like nft, a leading end key at 0.0.0.0 when the first
// range starts above it, and no end key after 255.255.255.255.
func IntervalElements(rs []Range) []nftables.SetElement {
	var els []nftables.SetElement
	if len(rs) > 0 && rs[0].First != netip.IPv4Unspecified() {
		els = append(els, nftables.SetElement{Key: make([]byte, 4), IntervalEnd: true})
	}
	for _, r := range rs {
		els = append(els, nftables.SetElement{Key: r.First.AsSlice()})
		if end := r.Last.Next(); end.IsValid() {
			els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

// IPv4Addrs returns the distinct IPv4 addresses of addrs, sorted (IPv6 ones
// are skipped).
func IPv4Addrs(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// AddrElements returns the elements of a plain set of IPv4 addresses.
func AddrElements(addrs []netip.Addr) []nftables.SetElement {
	els := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		els = append(els, nftables.SetElement{Key: a.AsSlice()})
	}
	return els
}

// NewIPv4Set returns the description of a named set of type ipv4_addr in t,
// with flags interval when interval is set; add it with Conn.AddSet.
func NewIPv4Set(t *nftables.Table, name string, interval bool) *nftables.Set {
	return &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIPAddr, Interval: interval}
}

// Field is an IPv4 header field, by its offset in the header.
type Field uint32

// The source and destination address fields.
const (
	Saddr Field = 12
	Daddr Field = 16
)

// Match returns the expressions of `ip saddr @set` or `ip daddr @set`
// (register 1 is overwritten).
func Match(f Field, s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: uint32(f), Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

// NotMatch returns the expressions of `ip saddr != @set` or
// `ip daddr != @set`.
func NotMatch(f Field, s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: uint32(f), Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: true},
	}
}

// MarkMatch returns the expressions of `meta mark & mask != 0` (nonzero) or
// `meta mark & mask == 0` (!nonzero).
func MarkMatch(mask uint32, nonzero bool) []expr.Any {
	op := expr.CmpOpEq
	if nonzero {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: HostU32(mask), Xor: HostU32(0)},
		&expr.Cmp{Op: op, Register: 1, Data: HostU32(0)},
	}
}

// HostU32 encodes a value compared with or combined into the packet mark,
// which the kernel keeps in host byte order.
func HostU32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }
