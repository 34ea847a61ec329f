// Package nodeobjects writes a controller's per-node desired-state objects
// (one cluster-scoped object per node, named after it): it creates the
// missing, patches those whose spec differs, with optimistic locking, and
// deletes those it manages that no node needs any more. Objects whose spec
// is already right cost no API call, so a resync or a restart writes
// nothing.
package nodeobjects

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ManagedByLabel marks the objects a controller writes; the value names the
// controller.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// Kind describes one per-node kind. T is the object type, S its spec.
type Kind[T any, S any] struct {
	// Name is the kind's name, for error messages.
	Name string
	// ManagedBy is the value of ManagedByLabel on the objects written.
	ManagedBy string
	// New returns an empty object.
	New func() *T
	// Spec returns a pointer to the object's spec.
	Spec func(*T) *S
	// Object views *T as a client.Object.
	Object func(*T) client.Object
	// Equal compares two specs; nil compares them by reflection
	// (equality.Semantic), which large specs compared every pass make
	// slow.
	Equal func(a, b *S) bool
	// Written, if set, remembers this controller's own updates, so that a
	// pass whose cache has not caught up with them yet does not send them
	// again (each such write fails on its stale resourceVersion and costs
	// a pass). Give each controller its own.
	Written *Written
}

// Written remembers the generation of each object as this controller's
// last update left it. An object whose cached generation is below that is
// a cache still behind the controller's own write: the watch will bring
// the object, and with it another pass.
type Written struct {
	mu  sync.Mutex
	gen map[types.UID]int64
}

// behind says whether the cached o predates this controller's last update.
func (w *Written) behind(o client.Object) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return o.GetGeneration() < w.gen[o.GetUID()]
}

// record notes an update's result.
func (w *Written) record(o client.Object) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == nil {
		w.gen = map[types.UID]int64{}
	}
	w.gen[o.GetUID()] = o.GetGeneration()
}

// retain forgets the objects not in live.
func (w *Written) retain(live map[types.UID]bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid := range w.gen {
		if !live[uid] {
			delete(w.gen, uid)
		}
	}
}

// Writes returns the writes that make the objects match desired (node name →
// spec). existing are the current objects (from the cache). A write returns
// the API error as it is (a conflict, an object gone or made meanwhile), for
// the pass runner to classify. Owner references are left as they are.
func (k Kind[T, S]) Writes(c client.Client, existing []*T, desired map[string]S) []func(context.Context) error {
	owned := make(map[string]Owned[S], len(desired))
	for name, spec := range desired {
		owned[name] = Owned[S]{Spec: spec}
	}
	return k.writes(c, existing, owned, false)
}

// Owned is an object's desired spec and owner references.
type Owned[S any] struct {
	Spec   S
	Owners []metav1.OwnerReference
}

// WritesOwned is Writes for objects that have owners (e.g. a controller
// reference to the object they are made from, for the garbage collector):
// an object whose spec, owner references or managed-by label differ from
// desired is patched, so an object that changes owner, or that this
// controller takes over, is corrected too.
func (k Kind[T, S]) WritesOwned(c client.Client, existing []*T, desired map[string]Owned[S]) []func(context.Context) error {
	return k.writes(c, existing, desired, true)
}

func (k Kind[T, S]) writes(c client.Client, existing []*T, desired map[string]Owned[S], owned bool) []func(context.Context) error {
	var writes []func(context.Context) error
	byName := map[string]*T{}
	live := make(map[types.UID]bool, len(existing))
	for _, cur := range existing {
		o := k.Object(cur)
		byName[o.GetName()] = cur
		live[o.GetUID()] = true
		if _, ok := desired[o.GetName()]; !ok && o.GetLabels()[ManagedByLabel] == k.ManagedBy {
			writes = append(writes, k.delete(c, o))
		}
	}
	for name, want := range desired {
		cur := byName[name]
		switch {
		case cur == nil:
			writes = append(writes, k.create(c, name, want, owned))
		case k.Written.behind(k.Object(cur)):
		case !k.equal(k.Spec(cur), &want.Spec) || owned && !k.metaMatches(cur, want.Owners):
			writes = append(writes, k.update(c, cur, want, owned))
		}
	}
	k.Written.retain(live)
	return writes
}

func (k Kind[T, S]) equal(a, b *S) bool {
	if k.Equal != nil {
		return k.Equal(a, b)
	}
	return equality.Semantic.DeepEqual(*a, *b)
}

func (k Kind[T, S]) metaMatches(cur *T, owners []metav1.OwnerReference) bool {
	o := k.Object(cur)
	return o.GetLabels()[ManagedByLabel] == k.ManagedBy && equality.Semantic.DeepEqual(o.GetOwnerReferences(), owners)
}

func (k Kind[T, S]) create(c client.Client, name string, want Owned[S], owned bool) func(context.Context) error {
	return func(ctx context.Context) error {
		obj := k.New()
		o := k.Object(obj)
		o.SetName(name)
		o.SetLabels(map[string]string{ManagedByLabel: k.ManagedBy})
		if owned {
			o.SetOwnerReferences(want.Owners)
		}
		*k.Spec(obj) = want.Spec
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %s %s: %w", k.Name, name, err)
		}
		return nil
	}
}

func (k Kind[T, S]) update(c client.Client, cur *T, want Owned[S], owned bool) func(context.Context) error {
	return func(ctx context.Context) error {
		old := k.Object(cur)
		updated := old.DeepCopyObject().(client.Object)
		*k.Spec(any(updated).(*T)) = want.Spec
		if owned {
			updated.SetOwnerReferences(want.Owners)
			labels := maps.Clone(updated.GetLabels())
			if labels == nil {
				labels = map[string]string{}
			}
			labels[ManagedByLabel] = k.ManagedBy
			updated.SetLabels(labels)
		}
		if err := c.Patch(ctx, updated, client.MergeFromWithOptions(old, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("updating %s %s: %w", k.Name, old.GetName(), err)
		}
		k.Written.record(updated)
		return nil
	}
}

func (k Kind[T, S]) delete(c client.Client, o client.Object) func(context.Context) error {
	uid := o.GetUID()
	return func(ctx context.Context) error {
		if err := c.Delete(ctx, o, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s %s: %w", k.Name, o.GetName(), err)
		}
		return nil
	}
}

// Ptrs points at the elements of items (a List's Items).
func Ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
