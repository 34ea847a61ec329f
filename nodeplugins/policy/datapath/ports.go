package datapath

import "slices"

// portRange is an inclusive range of ports (or ICMP types).
type portRange struct{ first, last uint16 }

// portPrefix is a port prefix: the ports whose top bits equal value's.
type portPrefix struct {
	value uint16
	bits  uint8 // 0 (every port) to 16 (one port)
}

// prefixes is the smallest set of prefixes covering r exactly: at each
// step the largest aligned block that starts at first and ends by last.
func (r portRange) prefixes() []portPrefix {
	var out []portPrefix
	first := uint32(r.first)
	last := uint32(r.last)
	for first <= last {
		bits := uint8(16)
		for bits > 0 {
			size := uint32(1) << (16 - (bits - 1))
			if first%size != 0 || first+size-1 > last {
				break
			}
			bits--
		}
		out = append(out, portPrefix{value: uint16(first), bits: bits})
		first += uint32(1) << (16 - bits)
	}
	return out
}

// normalize sorts ranges and merges the overlapping and adjacent ones.
func normalize(rs []portRange) []portRange {
	slices.SortFunc(rs, func(a, b portRange) int { return int(a.first) - int(b.first) })
	var out []portRange
	for _, r := range rs {
		if n := len(out); n > 0 && uint32(r.first) <= uint32(out[n-1].last)+1 {
			if r.last > out[n-1].last {
				out[n-1].last = r.last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// minus is rs without the ports of cut; both normalized.
func minus(rs, cut []portRange) []portRange {
	var out []portRange
	for _, r := range rs {
		first := uint32(r.first)
		last := uint32(r.last)
		for _, c := range cut {
			if uint32(c.last) < first || uint32(c.first) > last {
				continue
			}
			if uint32(c.first) > first {
				out = append(out, portRange{uint16(first), c.first - 1})
			}
			first = uint32(c.last) + 1
		}
		if first <= last {
			out = append(out, portRange{uint16(first), uint16(last)})
		}
	}
	return out
}
