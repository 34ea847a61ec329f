// Package latest hands the newest value of something from one goroutine to
// another: a writer never blocks, a reader always gets the newest value, and
// a channel says (coalesced) that it changed. Node plugins use it for the
// spec they are given and the report they publish.
package latest

import "sync"

// Value is the newest T.
type Value[T any] struct {
	mu      sync.Mutex
	v       T
	set     bool
	equal   func(a, b T) bool
	changed chan struct{}
}

// New returns a Value holding initial (not counted as set); equal decides
// whether a Set changes anything.
func New[T any](initial T, equal func(a, b T) bool) *Value[T] {
	return &Value[T]{v: initial, equal: equal, changed: make(chan struct{}, 1)}
}

// Set stores v and signals Changes unless it equals the value held (a first
// Set always counts). It reports whether it changed anything.
func (l *Value[T]) Set(v T) bool {
	l.mu.Lock()
	same := l.set && l.equal(l.v, v)
	if !same {
		l.v, l.set = v, true
	}
	l.mu.Unlock()
	if !same {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
	return !same
}

// Get returns the value held and whether Set was ever called.
func (l *Value[T]) Get() (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.set
}

// Changes receives a value after Sets that changed something; several
// changes before a receive make one.
func (l *Value[T]) Changes() <-chan struct{} { return l.changed }
