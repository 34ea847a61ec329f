package rendezvous

import (
	"fmt"
	"slices"
	"testing"
)

// Rendezvous ranking spreads keys over nodes and moves only the
// keys of a removed node.
func TestRankSpreadsAndIsStable(t *testing.T) {
	all := []string{"n1", "n2", "n3", "n4"}
	first := map[string]int{}
	moved := 0
	for i := range 400 {
		key := fmt.Sprintf("198.51.%d.%d", i/250, i%250)
		c := slices.Clone(all)
		Rank(key, c)
		first[c[0]]++
		without := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == "n4" })
		Rank(key, without)
		if c[0] != "n4" && without[0] != c[0] {
			moved++
		}
	}
	for _, n := range all {
		if first[n] < 60 {
			t.Errorf("node %s is first for only %d of 400 keys: %v", n, first[n], first)
		}
	}
	if moved != 0 {
		t.Errorf("removing n4 moved %d keys it was not first for", moved)
	}
}
