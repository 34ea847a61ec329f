// Package rendezvous orders candidates by rendezvous (highest random weight)
// hashing: each candidate's rank for a key depends only on the candidate and
// the key, so adding or removing one candidate moves only the keys it ranks
// first for, and every process computes the same order with no coordination.
package rendezvous

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"
)

// Score is candidate's weight for key.
func Score(key, candidate string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(candidate))
	h.Write([]byte{0})
	h.Write([]byte(key))
	// FNV alone ranks names that differ in one late byte almost the same way
	// for every key; a finaliser (splitmix64's) spreads them.
	x := h.Sum64()
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Rank sorts candidates in place, most preferred for key first; ties (which
// need a hash collision) go by name.
func Rank(key string, candidates []string) {
	slices.SortFunc(candidates, func(a, b string) int {
		return cmp.Or(cmp.Compare(Score(key, b), Score(key, a)), strings.Compare(a, b))
	})
}
