package datapath

import (
	"math/rand/v2"
	"testing"
)

// The prefixes of a range cover exactly its ports, each once, for
// random ranges and the edges.
func TestRangePrefixesCoverExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []portRange{{0, 65535}, {0, 0}, {65535, 65535}, {80, 80}, {8000, 8100}, {1, 65534}, {1024, 65535}}
	for range 200 {
		a, b := uint16(rng.IntN(65536)), uint16(rng.IntN(65536))
		if a > b {
			a, b = b, a
		}
		cases = append(cases, portRange{a, b})
	}
	for _, r := range cases {
		ps := r.prefixes()
		if len(ps) > 32 {
			t.Errorf("%v: %d prefixes, want at most 32", r, len(ps))
		}
		covered := 0
		for _, p := range ps {
			size := 1 << (16 - int(p.bits))
			if int(p.value)%size != 0 {
				t.Fatalf("%v: unaligned prefix %+v", r, p)
			}
			if int(p.value) < int(r.first) || int(p.value)+size-1 > int(r.last) {
				t.Fatalf("%v: prefix %+v leaves the range", r, p)
			}
			covered += size
		}
		if covered != int(r.last)-int(r.first)+1 {
			t.Errorf("%v: prefixes cover %d ports, want %d", r, covered, int(r.last)-int(r.first)+1)
		}
	}
}

func TestMinusAndNormalize(t *testing.T) {
	got := minus(normalize([]portRange{{0, 65535}}), normalize([]portRange{{80, 80}, {443, 443}, {79, 79}}))
	want := []portRange{{0, 78}, {81, 442}, {444, 65535}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if n := normalize([]portRange{{10, 20}, {21, 30}, {5, 12}}); len(n) != 1 || n[0] != (portRange{5, 30}) {
		t.Errorf("normalize: %v", n)
	}
}
