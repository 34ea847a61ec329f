package flows

import (
	"sync"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// Store keeps the last flows in a ring of fixed capacity (memory stays
// bounded whatever the traffic) and wakes followers on every new one.
type Store struct {
	mu   sync.Mutex
	ring []*flowpb.Flow
	// seen counts every flow ever added: flow number seen-1 is the
	// newest, and it sits at ring[(seen-1) % cap].
	seen uint64
	// added is closed (and replaced) when flows are added.
	added chan struct{}
}

// NewStore makes a store of the given capacity (at least 1).
func NewStore(capacity int) *Store {
	return &Store{ring: make([]*flowpb.Flow, max(capacity, 1)), added: make(chan struct{})}
}

// Add appends a flow, overwriting the oldest when full.
func (s *Store) Add(f *flowpb.Flow) {
	s.mu.Lock()
	s.ring[s.seen%uint64(len(s.ring))] = f
	s.seen++
	close(s.added)
	s.added = make(chan struct{})
	s.mu.Unlock()
}

// From returns the flows from number next on that are still held (older
// ones were overwritten), the number after the last returned, and a
// channel closed when more arrive.
func (s *Store) From(next uint64) ([]*flowpb.Flow, uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldest := uint64(0)
	if s.seen > uint64(len(s.ring)) {
		oldest = s.seen - uint64(len(s.ring))
	}
	next = max(next, oldest)
	out := make([]*flowpb.Flow, 0, s.seen-min(next, s.seen))
	for n := next; n < s.seen; n++ {
		out = append(out, s.ring[n%uint64(len(s.ring))])
	}
	return out, max(next, s.seen), s.added
}

// Stats are the number of flows held, the capacity, and every flow seen.
func (s *Store) Stats() (held, capacity, seen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return min(s.seen, uint64(len(s.ring))), uint64(len(s.ring)), s.seen
}
