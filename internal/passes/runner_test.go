package passes_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

var runs atomic.Int32

// world is a runner over ConfigMaps in one namespace that labels each
// ConfigMap done=true, with optimistic locking. It watches only Namespaces,
// so after the namespace is created nothing but the runner's own outcomes
// brings another pass.
type world struct {
	t      *testing.T
	c      client.Client
	ns     string
	name   string
	passes atomic.Int32
	// before runs inside each write, before it patches (to race it).
	before func(ctx context.Context, cm *corev1.ConfigMap) error
	// after, if set, is what the first pass asks for with Pass.After; askedAt and askedIn record when and in which pass.
	after   time.Duration
	askedAt atomic.Int64
	askedIn atomic.Int32
	nextAt  atomic.Int64 // when the pass after askedIn began
}

func startWorld(t *testing.T, before func(ctx context.Context, cm *corev1.ConfigMap) error, maps ...string) *world {
	t.Helper()
	return startWorldAfter(t, 0, before, maps...)
}

func startWorldAfter(t *testing.T, after time.Duration, before func(ctx context.Context, cm *corev1.ConfigMap) error, maps ...string) *world {
	t.Helper()
	testenv.Require(t, env)
	// Each run its own namespace and controller name (go test -count).
	name := fmt.Sprintf("%s-%d", strings.ToLower(t.Name()), runs.Add(1))
	w := &world{t: t, c: env.Client, ns: name, name: name, before: before, after: after}
	ctx := context.Background()
	if err := w.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range maps {
		if err := w.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	env.RunManager(t, func(mgr ctrl.Manager) error {
		r := &passes.Runner{Name: w.name, Client: mgr.GetClient(), Settings: passes.Settings{Workers: 2, MinPassInterval: 20 * time.Millisecond}, Decide: w.decide}
		return r.SetupWithManager(mgr, passes.For(&corev1.Namespace{}))
	})
	return w
}

func (w *world) decide(ctx context.Context, p *passes.Pass) error {
	n := w.passes.Add(1)
	if asked := w.askedIn.Load(); asked != 0 && n == asked+1 {
		w.nextAt.Store(time.Now().UnixNano())
	}
	var cms corev1.ConfigMapList
	if err := p.List(ctx, &cms, client.InNamespace(w.ns)); err != nil {
		return err
	}
	if w.after > 0 && w.askedIn.CompareAndSwap(0, n) {
		w.askedAt.Store(time.Now().UnixNano())
		p.After(w.after)
	}
	for i := range cms.Items {
		cm := &cms.Items[i]
		if cm.Labels["done"] == "true" {
			continue
		}
		p.Write(func(ctx context.Context) error {
			if err := w.before(ctx, cm); err != nil {
				return err
			}
			updated := cm.DeepCopy()
			if updated.Labels == nil {
				updated.Labels = map[string]string{}
			}
			updated.Labels["done"] = "true"
			return w.c.Patch(ctx, updated, client.MergeFromWithOptions(cm, client.MergeFromWithOptimisticLock{}))
		})
	}
	return nil
}

func (w *world) done(name string) error {
	var cm corev1.ConfigMap
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: w.ns, Name: name}, &cm); err != nil {
		return err
	}
	if cm.Labels["done"] != "true" {
		return fmt.Errorf("%s not labelled yet (labels %v)", name, cm.Labels)
	}
	return nil
}

func (w *world) failures(outcome passes.Outcome) float64 {
	return passes.WriteFailures(w.name, outcome)
}

// A write that raced another writer fails on its resourceVersion; the
// runner decides again from the cache, with no event to prompt it, and the
// next pass succeeds.
func TestRaceRunsThePassAgain(t *testing.T) {
	var raced atomic.Bool
	w := startWorld(t, func(ctx context.Context, cm *corev1.ConfigMap) error {
		if raced.Swap(true) {
			return nil
		}
		// Another writer changes the object after the pass read it.
		other := cm.DeepCopy()
		other.Data = map[string]string{"other": "writer"}
		return env.Client.Update(ctx, other)
	}, "a")
	testenv.Eventually(t, 10*time.Second, "a labelled after the race", func() error { return w.done("a") })
	if got := w.failures(passes.Repass); got < 1 {
		t.Errorf("repass failures %v, want the race counted", got)
	}
	if got := w.passes.Load(); got < 2 {
		t.Errorf("%d passes, want a second one after the race", got)
	}
}

// A write that fails for a while (the API server unavailable) is retried
// with backoff until it succeeds.
func TestTransientFailureRetries(t *testing.T) {
	var failures atomic.Int32
	w := startWorld(t, func(context.Context, *corev1.ConfigMap) error {
		if failures.Add(1) <= 3 {
			return fmt.Errorf("patching: %w", apierrors.NewServiceUnavailable("etcd is slow"))
		}
		return nil
	}, "a")
	testenv.Eventually(t, 10*time.Second, "a labelled after three failures", func() error { return w.done("a") })
	if got := w.failures(passes.Retry); got != 3 {
		t.Errorf("retry failures %v, want 3", got)
	}
}

// A write the API server refuses as invalid is not retried: it would be
// refused again until the inputs change. The other writes of the pass go
// through.
func TestInvalidWriteIsDroppedNotRetried(t *testing.T) {
	w := startWorld(t, func(_ context.Context, cm *corev1.ConfigMap) error {
		if cm.Name == "bad" {
			return fmt.Errorf("patching: %w", apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, cm.Name, nil))
		}
		return nil
	}, "good", "bad")
	testenv.Eventually(t, 10*time.Second, "good labelled", func() error { return w.done("good") })
	testenv.Eventually(t, 10*time.Second, "the invalid write counted", func() error {
		if w.failures(passes.Drop) != 1 {
			return fmt.Errorf("drop failures %v", w.failures(passes.Drop))
		}
		return nil
	})
	passes := w.passes.Load()
	// Nothing changes and nothing is retried: no more passes come (a
	// retry would come within the first backoff steps, milliseconds).
	time.Sleep(time.Second)
	if got := w.passes.Load(); got != passes {
		t.Errorf("%d passes after the drop, want %d: an invalid write was retried", got, passes)
	}
	if err := w.done("bad"); err == nil {
		t.Error("bad was labelled")
	}
}

// A pass that asks for another one after a while (a grace period running
// out) gets it when the time is up, with no event; the pass after asks for
// nothing and nothing more runs.
func TestAfterRunsAPassWithoutEvents(t *testing.T) {
	const after = 300 * time.Millisecond
	w := startWorldAfter(t, after, func(context.Context, *corev1.ConfigMap) error { return nil }, "a")
	testenv.Eventually(t, 10*time.Second, "a pass after the one that asked", func() error {
		if asked := w.askedIn.Load(); asked == 0 || w.passes.Load() <= asked {
			return fmt.Errorf("asked in pass %d, %d passes", asked, w.passes.Load())
		}
		return nil
	})
	if waited := time.Duration(w.nextAt.Load() - w.askedAt.Load()); waited < after {
		t.Errorf("the next pass came %v after the request, before the %v asked for", waited, after)
	}
	n := w.passes.Load()
	time.Sleep(time.Second)
	if got := w.passes.Load(); got != n {
		t.Errorf("%d passes a second later, want %d: only the first pass asked for another", got, n)
	}
}
