package allocator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

var (
	t0    = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	grace = 30 * time.Minute
	web   = identity.Labels{"k8s:app": "web"}
	db    = identity.Labels{"k8s:app": "db"}
	cache = identity.Labels{"k8s:app": "cache"}
)

func existing(r identity.Range, held map[identity.Number]identity.Labels) *identity.Index {
	var objs []ciliumv2.CiliumIdentity
	for n, l := range held {
		objs = append(objs, ciliumv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: n.String()}, SecurityLabels: l})
	}
	return identity.NewIndex(r, objs)
}

func wanted(sets ...identity.Labels) map[string]identity.Labels {
	out := map[string]identity.Labels{}
	for _, s := range sets {
		out[s.Key()] = s
	}
	return out
}

func first(int) int { return 0 }

func range0(t *testing.T) identity.Range {
	r, err := identity.RangeOf(0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Label sets in use keep the numbers they have; new ones get free numbers.
func TestNP27_ExistingNumbersAreKeptNewSetsGetFreeOnes(t *testing.T) {
	r := range0(t)
	d := Decide(Input{
		Existing: existing(r, map[identity.Number]identity.Labels{256: web, 257: db}),
		Range:    r, Wanted: wanted(web, db, cache), Now: t0, Grace: grace, Pick: first,
	})
	if len(d.Create) != 1 || d.Create[258].Key() != cache.Key() {
		t.Errorf("created %v, want cache at 258 (256 and 257 are held)", d.Create)
	}
	if len(d.Delete) != 0 || len(d.UnusedSince) != 0 || d.Used != 3 {
		t.Errorf("delete %v, unused %v, used %d", d.Delete, d.UnusedSince, d.Used)
	}
}

// An unused identity stays for the grace period, counted from when it was
// first seen unused, then goes; a restart (no clocks) starts the count over,
// which only delays.
func TestUnusedIdentityExpiresAfterGrace(t *testing.T) {
	r := range0(t)
	ix := existing(r, map[identity.Number]identity.Labels{256: web, 300: db})
	in := Input{Existing: ix, Range: r, Wanted: wanted(web), Now: t0, Grace: grace, Pick: first}

	d := Decide(in)
	if len(d.Delete) != 0 || d.UnusedSince[300] != t0 || d.NextExpiry != grace {
		t.Fatalf("first seen unused: delete %v, clocks %v, next %v", d.Delete, d.UnusedSince, d.NextExpiry)
	}
	in.UnusedSince, in.Now = d.UnusedSince, t0.Add(grace-time.Second)
	if d = Decide(in); len(d.Delete) != 0 || d.NextExpiry != time.Second {
		t.Fatalf("a second early: delete %v, next %v", d.Delete, d.NextExpiry)
	}
	in.UnusedSince, in.Now = d.UnusedSince, t0.Add(grace)
	if d = Decide(in); !slices.Equal(d.Delete, []identity.Number{300}) || d.NextExpiry != 0 {
		t.Fatalf("grace over: delete %v, next %v", d.Delete, d.NextExpiry)
	}
	in.UnusedSince = nil // restarted
	if d = Decide(in); len(d.Delete) != 0 || d.UnusedSince[300] != in.Now {
		t.Fatalf("after a restart: delete %v, clocks %v", d.Delete, d.UnusedSince)
	}
}

// A label set that comes back within the grace period gets its old number
// and its clock stops.
func TestReturningLabelSetKeepsItsNumber(t *testing.T) {
	r := range0(t)
	in := Input{Existing: existing(r, map[identity.Number]identity.Labels{4000: db}), Range: r, Wanted: wanted(db),
		UnusedSince: map[identity.Number]time.Time{4000: t0.Add(-grace + time.Second)}, Now: t0, Grace: grace, Pick: first}
	d := Decide(in)
	if len(d.Create) != 0 || len(d.Delete) != 0 || len(d.UnusedSince) != 0 {
		t.Errorf("create %v, delete %v, clocks %v; want db to keep 4000", d.Create, d.Delete, d.UnusedSince)
	}
}

// Of two identities with one label set, the lower serves it and the other
// expires like any unused one.
func TestDuplicateExpires(t *testing.T) {
	r := range0(t)
	in := Input{Existing: existing(r, map[identity.Number]identity.Labels{500: web, 400: web}), Range: r, Wanted: wanted(web),
		UnusedSince: map[identity.Number]time.Time{500: t0.Add(-grace)}, Now: t0, Grace: grace, Pick: first}
	d := Decide(in)
	if !slices.Equal(d.Delete, []identity.Number{500}) || len(d.Create) != 0 {
		t.Errorf("delete %v, create %v; want 500 deleted, 400 kept", d.Delete, d.Create)
	}
}

// A full range leaves the newest label sets without a number and says so;
// the numbers being deleted are not handed out in the same decision.
func TestFullRangeReportsExhausted(t *testing.T) {
	r := identity.Range{Min: 256, Max: 257}
	in := Input{Existing: existing(r, map[identity.Number]identity.Labels{256: web, 257: db}), Range: r, Wanted: wanted(web, cache),
		UnusedSince: map[identity.Number]time.Time{257: t0.Add(-grace)}, Now: t0, Grace: grace, Pick: first}
	d := Decide(in)
	if !slices.Equal(d.Exhausted, []string{cache.Key()}) || len(d.Create) != 0 || !slices.Equal(d.Delete, []identity.Number{257}) {
		t.Errorf("exhausted %v, create %v, delete %v", d.Exhausted, d.Create, d.Delete)
	}
	// The next decision, with 257 gone, gives cache a number.
	in.Existing = existing(r, map[identity.Number]identity.Labels{256: web})
	if d = Decide(in); len(d.Exhausted) != 0 || d.Create[257].Key() != cache.Key() {
		t.Errorf("after the delete: exhausted %v, create %v", d.Exhausted, d.Create)
	}
}

// The search for a free number starts where Pick says and wraps around.
func TestSearchStartsAtThePickAndWraps(t *testing.T) {
	r := identity.Range{Min: 256, Max: 259}
	d := Decide(Input{Existing: existing(r, map[identity.Number]identity.Labels{259: web}), Range: r,
		Wanted: wanted(web, db, cache), Now: t0, Grace: grace, Pick: func(int) int { return 3 }})
	got := map[string]identity.Number{}
	for n, l := range d.Create {
		got[l.Key()] = n
	}
	// Sorted keys: cache, then db; 259 is held, so the search wraps to 256.
	if got[cache.Key()] != 256 || got[db.Key()] != 257 {
		t.Errorf("created %v", got)
	}
}

// Invariants over random worlds: every label set in use has exactly one
// number, in the range, that no other set has; nothing in use is deleted;
// nothing is deleted before its grace period is over.
func TestDecideInvariants(t *testing.T) {
	r := identity.Range{Min: 256, Max: 256 + 63}
	rng := rand.New(rand.NewPCG(1, 2))
	sets := make([]identity.Labels, 80)
	for i := range sets {
		sets[i] = identity.Labels{"k8s:app": fmt.Sprint(i)}
	}
	for iter := range 2000 {
		held := map[identity.Number]identity.Labels{}
		for range rng.IntN(70) {
			held[r.Min+identity.Number(rng.IntN(r.Size()))] = sets[rng.IntN(len(sets))]
		}
		want := wanted()
		for range rng.IntN(70) {
			s := sets[rng.IntN(len(sets))]
			want[s.Key()] = s
		}
		clocks := map[identity.Number]time.Time{}
		for n := range held {
			if rng.IntN(2) == 0 {
				clocks[n] = t0.Add(-time.Duration(rng.IntN(60)) * time.Minute)
			}
		}
		ix := existing(r, held)
		d := Decide(Input{Existing: ix, Range: r, Wanted: want, UnusedSince: clocks, Now: t0, Grace: grace, Pick: rng.IntN})

		numberOf := map[string]identity.Number{}
		for n, l := range d.Create {
			if !r.Contains(n) || held[n] != nil {
				t.Fatalf("iter %d: created %d outside the range or over a held number", iter, n)
			}
			numberOf[l.Key()] = n
		}
		deleted := map[identity.Number]bool{}
		for _, n := range d.Delete {
			deleted[n] = true
			since, ok := clocks[n]
			if !ok || t0.Sub(since) < grace {
				t.Fatalf("iter %d: %d deleted before its grace period ended (clock %v, %v)", iter, n, since, ok)
			}
		}
		exhausted := map[string]bool{}
		for _, k := range d.Exhausted {
			exhausted[k] = true
		}
		for key := range want {
			n, had := ix.Lookup(key)
			if created, ok := numberOf[key]; ok {
				if had {
					t.Fatalf("iter %d: %s had %d and got %d", iter, key, n, created)
				}
				n = created
			} else if !had && !exhausted[key] {
				t.Fatalf("iter %d: %s has no number and is not reported exhausted", iter, key)
			}
			if deleted[n] {
				t.Fatalf("iter %d: %d deleted while %s uses it", iter, n, key)
			}
		}
		if len(d.Exhausted) > 0 && len(held)+len(d.Create) < r.Size() {
			t.Fatalf("iter %d: exhausted with free numbers left", iter)
		}
	}
}
