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

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
}

// Writes returns the writes that make the objects match desired (node name →
// spec). existing are the current objects (from the cache); conflicts and
// objects gone in the meantime are left to the next pass, which their watch
// events bring.
func (k Kind[T, S]) Writes(c client.Client, existing []*T, desired map[string]S) []func(context.Context) error {
	var writes []func(context.Context) error
	byName := map[string]*T{}
	for _, cur := range existing {
		o := k.Object(cur)
		byName[o.GetName()] = cur
		if _, ok := desired[o.GetName()]; !ok && o.GetLabels()[ManagedByLabel] == k.ManagedBy {
			writes = append(writes, k.delete(c, o))
		}
	}
	for name, spec := range desired {
		cur := byName[name]
		switch {
		case cur == nil:
			writes = append(writes, k.create(c, name, spec))
		case !equality.Semantic.DeepEqual(*k.Spec(cur), spec):
			writes = append(writes, k.update(c, cur, spec))
		}
	}
	return writes
}

func (k Kind[T, S]) create(c client.Client, name string, spec S) func(context.Context) error {
	return func(ctx context.Context) error {
		obj := k.New()
		o := k.Object(obj)
		o.SetName(name)
		o.SetLabels(map[string]string{ManagedByLabel: k.ManagedBy})
		*k.Spec(obj) = spec
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", k.Name, name, err)
		}
		return nil
	}
}

func (k Kind[T, S]) update(c client.Client, cur *T, spec S) func(context.Context) error {
	return func(ctx context.Context) error {
		old := k.Object(cur)
		updated := old.DeepCopyObject().(client.Object)
		*k.Spec(any(updated).(*T)) = spec
		if err := c.Patch(ctx, updated, client.MergeFromWithOptions(old, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("updating %s %s: %w", k.Name, old.GetName(), err)
		}
		return nil
	}
}

func (k Kind[T, S]) delete(c client.Client, o client.Object) func(context.Context) error {
	uid := o.GetUID()
	return func(ctx context.Context) error {
		if err := c.Delete(ctx, o, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
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
