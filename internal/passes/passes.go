// Package passes holds what controllers that decide over the whole cluster in
// one pass share: pacing passes under a stream of events, and running the
// resulting writes a few at a time.
package passes

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Pacer spaces passes. A pass may start MinInterval after the previous one
// started, or four times the previous pass's cost, whichever is later, so that
// deciding takes at most a fifth of a core however large the cluster and the
// API server keeps the rest. An event after a quiet spell is handled at once.
type Pacer struct {
	MinInterval time.Duration

	last     time.Time
	lastCost time.Duration
}

// Start reports how long to wait before a pass may run; zero means run now,
// and the pass is then recorded as started at now.
func (p *Pacer) Start(now time.Time) time.Duration {
	if wait := p.last.Add(max(p.MinInterval, 4*p.lastCost)).Sub(now); wait > 0 {
		return wait
	}
	p.last = now
	return 0
}

// Cost records how long the pass's reading and deciding took (its writes
// excluded: they wait on the API server, not on this process's CPU).
func (p *Pacer) Cost(d time.Duration) { p.lastCost = d }

// RunAll runs writes with at most n at once and joins their errors. Errors
// after ctx ends are dropped: the manager is shutting down.
func RunAll(ctx context.Context, n int, writes []func(context.Context) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan func(context.Context) error)
	)
	for range min(max(n, 1), len(writes)) {
		wg.Go(func() {
			for w := range next {
				if err := w(ctx); err != nil && ctx.Err() == nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, w := range writes {
		next <- w
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d writes failed, first: %w", len(errs), len(writes), errs[0])
	}
	return nil
}

// ToWorld maps every event to the one request of a controller that decides
// over the whole cluster in each pass (named name): events that arrive
// during a pass collapse into one more pass.
func ToWorld(name string) handler.EventHandler {
	key := reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
	return handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{key}
	})
}
