// Package passes runs controllers that decide over the whole cluster at
// once. Every Plexus feature does: addresses, CIDRs, gateways and
// announcements are shared between objects, so a decision about one object
// depends on all the others. Such a controller has one work item: every
// event maps to it, and each pass
//
//	paces   (waits while passes would take more than a fifth of a core),
//	lists   every kind it needs from the informer cache,
//	decides in a pure function of what it listed,
//	writes  only what differs, a few writes at a time, and
//	retains the status writer's memory of live objects only.
//
// A feature supplies the list-and-decide step (Runner.Decide); the Runner
// does the rest. Events that arrive during a pass collapse into one more
// pass. A failed write is classified (Classify) into an Outcome that says
// what the runner does about it, so no feature chooses inline which API
// errors to swallow.
package passes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/plexus-net/plexus/internal/statuswrite"
)

// Settings are a runner's knobs; every controller binary has them as
// --workers and --min-pass-interval (operator.Flags).
type Settings struct {
	// Workers is how many writes of a pass run at once (at least 1).
	Workers int
	// MinPassInterval is the least time between the starts of two passes
	// while events keep coming (see Pacer).
	MinPassInterval time.Duration
}

// Watch is a kind whose events start a pass, with optional predicates that
// filter them (e.g. Node heartbeats that change nothing the feature reads).
type Watch struct {
	Object     client.Object
	Predicates []predicate.Predicate
}

// For is a Watch of obj's kind.
func For(obj client.Object, preds ...predicate.Predicate) Watch {
	return Watch{Object: obj, Predicates: preds}
}

// Runner is a controller that decides over the whole cluster in each pass.
type Runner struct {
	// Name names the controller: its logs, its metrics and its work item.
	Name string
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	Settings
	// Decide lists what the feature needs through p, decides, and adds
	// the writes that make the world match (p.Write). It must not write
	// itself. An error (a failed list) retries the pass with backoff.
	Decide func(ctx context.Context, p *Pass) error
	// Kicks, if set, starts a pass on each event sent: for inputs outside
	// the API server (the node's interfaces, say).
	Kicks <-chan event.GenericEvent

	status   statuswrite.Writer
	pacer    Pacer
	repasses int // passes in a row that ended in Repass
}

// SetupWithManager registers the runner as the controller Name, started
// by events of the kinds watched.
func (r *Runner) SetupWithManager(mgr ctrl.Manager, watches ...Watch) error {
	if r.Name == "" || r.Client == nil || r.Decide == nil {
		return errors.New("passes: a Runner needs a Name, a Client and a Decide function")
	}
	r.Workers = max(r.Workers, 1)
	r.status.Client = r.Client
	r.pacer.MinInterval = r.MinPassInterval
	toWorld := ToWorld(r.Name)
	b := ctrl.NewControllerManagedBy(mgr).
		Named(r.Name).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			// One work item stands for the whole cluster: its retries must
			// not back off for the default quarter of an hour. Events still
			// start a pass at once.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxRetryDelay),
		})
	for _, w := range watches {
		b = b.Watches(w.Object, toWorld, builder.WithPredicates(w.Predicates...))
	}
	if r.Kicks != nil {
		b = b.WatchesRawSource(source.Channel(r.Kicks, toWorld))
	}
	return b.Complete(r)
}

// Reconcile runs one pass.
func (r *Runner) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	if wait := r.pacer.Start(start); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	p := &Pass{reader: r.Client, Status: &r.status, live: map[types.UID]bool{}}
	if err := r.Decide(ctx, p); err != nil {
		return reconcile.Result{}, fmt.Errorf("deciding: %w", err)
	}
	decided := time.Since(start)
	r.pacer.Cost(decided) // writes excluded: they wait on the API server, not on this process's CPU
	decideSeconds.WithLabelValues(r.Name).Observe(decided.Seconds())

	failed := runAll(ctx, r.Workers, p.writes)
	passSeconds.WithLabelValues(r.Name).Observe(time.Since(start).Seconds())
	log.FromContext(ctx).V(1).Info("pass", "decided", decided, "writes", len(p.writes), "failed", len(failed), "took", time.Since(start))
	r.status.Retain(func(uid types.UID) bool { return p.live[uid] })
	res, err := r.settle(ctx, failed, len(p.writes))
	if err == nil && p.after > 0 && (res.RequeueAfter == 0 || p.after < res.RequeueAfter) {
		res.RequeueAfter = p.after
	}
	return res, err
}

// settle turns the pass's failed writes into what the work queue does
// next: retry with backoff, run the whole pass again, or nothing.
func (r *Runner) settle(ctx context.Context, failed []error, total int) (reconcile.Result, error) {
	var retry []error
	repass := false
	for _, err := range failed {
		o := Classify(err)
		writeFailures.WithLabelValues(r.Name, o.String()).Inc()
		switch o {
		case Retry:
			retry = append(retry, err)
		case Repass:
			repass = true
			log.FromContext(ctx).V(1).Info("write raced another change; deciding again", "error", err.Error())
		case Drop:
			log.FromContext(ctx).Error(err, "write refused; not retried until its inputs change")
		}
	}
	if !repass {
		r.repasses = 0
	}
	switch {
	case len(retry) > 0:
		return reconcile.Result{}, fmt.Errorf("%d of %d writes failed, first: %w", len(retry), total, retry[0])
	case repass:
		// The decision was made from a view the writes found stale. Run it
		// again soon, backing off while something keeps racing us.
		r.repasses++
		return reconcile.Result{RequeueAfter: repassDelay(r.MinPassInterval, r.repasses)}, nil
	}
	return reconcile.Result{}, nil
}

// maxRetryDelay caps the backoff of a pass retried after a failure.
const maxRetryDelay = 30 * time.Second

// repassDelay is the wait before the n-th pass in a row that re-runs
// because of a race: the pacing interval, doubling, at most ten seconds.
func repassDelay(minInterval time.Duration, n int) time.Duration {
	d := max(minInterval, 10*time.Millisecond)
	for i := 1; i < n && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// Pass is one pass of a Runner: what Decide lists goes through it, and the
// writes it decides on go back through it.
type Pass struct {
	// Status writes status subresources only when they change; it
	// remembers its own writes across passes (see statuswrite).
	Status *statuswrite.Writer

	reader client.Reader
	writes []func(context.Context) error
	live   map[types.UID]bool
	after  time.Duration
}

// After asks for another pass within d even if no event comes, for
// decisions that change with time alone (a grace period running out).
// The earliest of several requests wins; d <= 0 asks for nothing.
func (p *Pass) After(d time.Duration) {
	if d > 0 && (p.after == 0 || d < p.after) {
		p.after = d
	}
}

// List lists one kind from the cache, read-only (UnsafeDisableDeepCopy: the
// pass must not modify what it lists; writes copy first). The objects
// listed count as live for the status writer.
func (p *Pass) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := p.reader.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		return err
	}
	return meta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(client.Object); ok {
			p.live[obj.GetUID()] = true
		}
		return nil
	})
}

// ListAll lists several kinds (see List).
func (p *Pass) ListAll(ctx context.Context, lists ...client.ObjectList) error {
	for _, l := range lists {
		if err := p.List(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// Write adds writes to the pass. A write returns the API error as it is,
// wrapped with %w and what it wrote; the runner classifies it.
func (p *Pass) Write(writes ...func(context.Context) error) {
	p.writes = append(p.writes, writes...)
}

// Outcome is what the runner does about a failed write.
type Outcome int

const (
	// Retry is for a failure that may pass (the API server slow, unavailable,
	// throttling, or refusing for want of a permission an admin may
	// grant). The pass is retried with the work queue's backoff and the
	// error is logged.
	Retry Outcome = iota
	// Repass is for a write the world changed under (the object changed since
	// it was read, was deleted, or was made meanwhile). The decision was
	// made from a stale view, so the whole pass runs again soon.
	Repass
	// Drop is for a write the API server refused as invalid; the same write
	// would be refused again. It is logged as an error and counted, and
	// nothing is retried until an event changes the pass's inputs.
	Drop
)

func (o Outcome) String() string {
	switch o {
	case Retry:
		return "retry"
	case Repass:
		return "repass"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// outcomeError is an error whose write chose its outcome itself.
type outcomeError struct {
	err     error
	outcome Outcome
}

func (e outcomeError) Error() string { return e.err.Error() }
func (e outcomeError) Unwrap() error { return e.err }

// WithOutcome marks err with the outcome it asks for, for writes that know
// better than the API error (nil stays nil).
func WithOutcome(err error, o Outcome) error {
	if err == nil {
		return nil
	}
	return outcomeError{err: err, outcome: o}
}

// Classify names the outcome of a failed write: the one it was marked
// with (WithOutcome), else Repass for conflicts, objects gone and objects
// that already exist, Drop for requests the API server found invalid, and
// Retry for everything else.
func Classify(err error) Outcome {
	var oe outcomeError
	switch {
	case errors.As(err, &oe):
		return oe.outcome
	case apierrors.IsConflict(err), apierrors.IsNotFound(err), apierrors.IsAlreadyExists(err), apierrors.IsGone(err):
		return Repass
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return Drop
	}
	return Retry
}

// runAll runs writes with at most n at once and returns their errors.
// Errors after ctx ends are dropped: the manager is shutting down.
func runAll(ctx context.Context, n int, writes []func(context.Context) error) []error {
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
	return errs
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
