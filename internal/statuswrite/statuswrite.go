// Package statuswrite writes an object's status only when it changed.
//
// Controllers compare what they want with what the informer cache shows. Right
// after a write the cache can still show the old object; comparing against it
// would write the same status again (or fail on a conflict). The Writer
// remembers the resourceVersion each of its writes started from, and while the
// cache still shows that version it skips the object: the watch event of its
// own write is on its way and will trigger the next look.
package statuswrite

import (
	"context"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plexus-net/plexus/internal/conditions"
)

// Writer patches status subresources. It is safe for concurrent use.
type Writer struct {
	Client client.Client

	mu sync.Mutex
	// inFlight maps an object to the resourceVersion its last write replaced,
	// until the cache shows a newer one.
	inFlight map[types.UID]string
}

// Patch applies mutate to a copy of cached (an object from the cache) and, if
// the copy differs, writes its status with a merge patch that fails on a
// concurrent change. It reports whether it wrote.
func (w *Writer) Patch(ctx context.Context, cached client.Object, mutate func(client.Object)) (bool, error) {
	uid := cached.GetUID()
	w.mu.Lock()
	if w.inFlight == nil {
		w.inFlight = map[types.UID]string{}
	}
	replaced, pending := w.inFlight[uid]
	if pending && replaced != cached.GetResourceVersion() {
		delete(w.inFlight, uid) // the cache has caught up
		pending = false
	}
	w.mu.Unlock()
	if pending {
		return false, nil
	}

	desired := cached.DeepCopyObject().(client.Object)
	mutate(desired)
	if equality.Semantic.DeepEqual(cached, desired) {
		return false, nil
	}
	patch := client.MergeFromWithOptions(cached, client.MergeFromWithOptimisticLock{})
	if err := w.Client.Status().Patch(ctx, desired, patch); err != nil {
		return false, err
	}
	// A write the server found to change nothing keeps the resourceVersion
	// and brings no watch event: then there is nothing to wait for.
	if desired.GetResourceVersion() != cached.GetResourceVersion() {
		w.mu.Lock()
		w.inFlight[uid] = cached.GetResourceVersion()
		w.mu.Unlock()
	}
	return true, nil
}

// Retain forgets objects that are not in live (deleted ones), so the Writer's
// memory stays bounded by the objects that exist.
func (w *Writer) Retain(live func(types.UID) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid := range w.inFlight {
		if !live(uid) {
			delete(w.inFlight, uid)
		}
	}
}

// PatchReady patches like Patch, for objects whose status has a kstatus
// Ready condition (read by conds). When the write leaves Ready not True with
// a reason or message it did not have before, it records a Warning Event
// with them, so users see each new problem once and resyncs stay silent.
// action names what the controller was doing (Validate, Allocate, ...).
// Ready False with one of the progress reasons (waiting for nodes to
// program a change) is no problem: it records no Event.
func (w *Writer) PatchReady(ctx context.Context, cached client.Object, conds func(client.Object) []metav1.Condition,
	mutate func(client.Object), rec events.EventRecorder, action string, progress ...string) (bool, error) {
	before := meta.FindStatusCondition(conds(cached), conditions.TypeReady)
	var after client.Object
	wrote, err := w.Patch(ctx, cached, func(o client.Object) {
		after = o
		mutate(o)
	})
	if err != nil || !wrote {
		return wrote, err
	}
	ready := meta.FindStatusCondition(conds(after), conditions.TypeReady)
	if ready != nil && ready.Status != metav1.ConditionTrue && !slices.Contains(progress, ready.Reason) &&
		(before == nil || before.Reason != ready.Reason || before.Message != ready.Message) {
		rec.Eventf(cached, nil, corev1.EventTypeWarning, ready.Reason, action, "%s", ready.Message)
	}
	return true, nil
}
