// Package allocator decides, in one pure function, which security identities
// a cluster needs: a number for every label set that pods carry, the
// existing one where there is one, and which identities no pod has carried
// for long enough to delete.
package allocator

import (
	"slices"
	"time"

	"github.com/plexus-net/plexus/internal/identity"
)

// Input is everything a decision reads.
type Input struct {
	// Existing are the CiliumIdentity objects of the cluster's range.
	Existing *identity.Index
	// Range is where new numbers come from.
	Range identity.Range
	// Wanted are the label sets pods carry now, by Labels.Key.
	Wanted map[string]identity.Labels
	// UnusedSince is when each unused identity was first seen unused (the
	// previous decision's UnusedSince; empty after a restart, which only
	// ever delays a deletion).
	UnusedSince map[identity.Number]time.Time
	Now         time.Time
	// Grace is how long an identity stays after its last pod is gone, so
	// that a pod recreated with the same labels (a rollout, a restart)
	// keeps its number, and nodes that still see old pods can resolve it.
	Grace time.Duration
	// Pick returns a number in [0, n); new numbers start their search for
	// a free one there. Random in the controller (as Cilium picks), so that
	// a number deleted a moment ago is unlikely to come back at once with
	// other labels; fixed in tests.
	Pick func(n int) int
}

// Decision is what to write, and what to remember until the next one.
type Decision struct {
	// Create are new identities: number to labels.
	Create map[identity.Number]identity.Labels
	// Delete are identities unused for at least the grace period, in order.
	Delete []identity.Number
	// UnusedSince is the unused identities' clocks, for the next decision.
	UnusedSince map[identity.Number]time.Time
	// Exhausted are the keys of label sets that got no number: the range
	// is full. Sorted.
	Exhausted []string
	// NextExpiry is how long until the next unused identity's grace period
	// ends (0: none is waiting).
	NextExpiry time.Duration
	// Used counts the identities that pods carry.
	Used int
}

// Decide gives every wanted label set a number and expires unused ones.
func Decide(in Input) Decision {
	d := Decision{Create: map[identity.Number]identity.Labels{}, UnusedSince: map[identity.Number]time.Time{}}
	used := map[identity.Number]bool{}
	free := newFreeList(in.Range, in.Existing.Numbers(), in.Pick)
	keys := make([]string, 0, len(in.Wanted))
	for k := range in.Wanted {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same inputs give the same numbers
	for _, key := range keys {
		if n, ok := in.Existing.Lookup(key); ok {
			used[n] = true
			continue
		}
		n, ok := free.take()
		if !ok {
			d.Exhausted = append(d.Exhausted, key)
			continue
		}
		d.Create[n] = in.Wanted[key]
		used[n] = true
	}
	d.Used = len(used)
	d.expire(in, used)
	return d
}

// expire starts the clock of every identity no pod carries (duplicates
// included: the lower number serves their labels) and deletes those whose
// grace period is over.
func (d *Decision) expire(in Input, used map[identity.Number]bool) {
	for n := range in.Existing.Numbers() {
		if used[n] {
			continue
		}
		since, ok := in.UnusedSince[n]
		if !ok || since.After(in.Now) {
			since = in.Now
		}
		left := since.Add(in.Grace).Sub(in.Now)
		if left <= 0 {
			d.Delete = append(d.Delete, n)
			continue
		}
		d.UnusedSince[n] = since
		if d.NextExpiry == 0 || left < d.NextExpiry {
			d.NextExpiry = left
		}
	}
	slices.Sort(d.Delete)
}

// freeList hands out the numbers of a range that nothing holds, each search
// starting at a picked offset and wrapping around.
type freeList struct {
	r     identity.Range
	taken map[identity.Number]bool
	pick  func(int) int
	full  bool
}

func newFreeList(r identity.Range, held map[identity.Number]identity.Labels, pick func(int) int) *freeList {
	taken := make(map[identity.Number]bool, len(held))
	for n := range held {
		taken[n] = true
	}
	return &freeList{r: r, taken: taken, pick: pick}
}

func (f *freeList) take() (identity.Number, bool) {
	if f.full {
		return 0, false
	}
	size := f.r.Size()
	start := f.pick(size)
	for i := range size {
		n := f.r.Min + identity.Number((start+i)%size)
		if !f.taken[n] {
			f.taken[n] = true
			return n, true
		}
	}
	f.full = true
	return 0, false
}
