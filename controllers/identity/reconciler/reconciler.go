// Package reconciler is the identity controller's reconciler: from the pods
// and namespaces of the cluster it computes each pod's security label set,
// makes sure a CiliumIdentity exists for every set in use, and deletes the
// identities no pod has carried for the grace period.
//
// The CiliumIdentity objects are the only state: a label set's number is
// found in them (identity.Index), so a restarted controller, or another
// component resolving identities, reaches the same numbers.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/identity/allocator"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/passes"
)

// +kubebuilder:rbac:groups=cilium.io,resources=ciliumidentities,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler keeps one CiliumIdentity per label set in use.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Passes   passes.Settings
	identity.Settings
	// Grace is how long an identity outlives its last pod.
	Grace time.Duration
	// Now and Pick replace the clock and the random start of the search for
	// a free number in tests (nil: the real ones).
	Now  func() time.Time
	Pick func(n int) int

	runner      passes.Runner
	unusedSince map[identity.Number]time.Time
	exhausted   map[string]bool
	// created are the identities this controller made that its cache may
	// not show yet, by label set key: a pass right after the create would
	// otherwise find the label set without a number and make a second.
	createdMu sync.Mutex
	created   map[string]createdIdentity
}

type createdIdentity struct {
	number identity.Number
	at     time.Time
}

// createdVisibleWithin bounds how long a created identity is awaited in
// the cache; past it (the object was deleted before the cache saw it) the
// label set is allocated again.
const createdVisibleWithin = 30 * time.Second

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil || !r.Settings.Valid() {
		return errors.New("identity: Client, Recorder and Settings must be set")
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Pick == nil {
		r.Pick = rand.IntN
	}
	r.runner = passes.Runner{Name: "identity", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr,
		passes.For(&corev1.Pod{}, podChanges), passes.For(&corev1.Namespace{}, labelChanges),
		passes.For(&ciliumv2.CiliumIdentity{}))
}

// decide reads pods, namespaces and identities, decides, and adds the
// creates and deletes.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		pods       corev1.PodList
		namespaces corev1.NamespaceList
		existing   ciliumv2.CiliumIdentityList
	)
	if err := p.ListAll(ctx, &pods, &namespaces, &existing); err != nil {
		return err
	}
	wanted, firstPod := r.labelSets(pods.Items, namespaces.Items)
	index := identity.NewIndex(r.Range, existing.Items)
	r.awaitCreated(index, wanted)
	d := allocator.Decide(allocator.Input{
		Existing: index, Range: r.Range, Wanted: wanted,
		UnusedSince: r.unusedSince, Now: r.Now(), Grace: r.Grace, Pick: r.Pick,
	})
	r.unusedSince = d.UnusedSince
	p.After(d.NextExpiry)
	observe(d, len(index.Numbers()))

	for _, n := range sortedNumbers(d.Create) {
		p.Write(r.create(n, d.Create[n]))
	}
	byName := map[string]*ciliumv2.CiliumIdentity{}
	for i := range existing.Items {
		byName[existing.Items[i].Name] = &existing.Items[i]
	}
	for _, n := range d.Delete {
		p.Write(r.delete(byName[n.String()]))
	}
	r.warnExhausted(d.Exhausted, firstPod)
	return nil
}

// awaitCreated takes out of wanted the label sets whose identity this
// controller created and the cache does not show yet, so that they get no
// second number, and forgets the creates the cache has caught up with.
func (r *Reconciler) awaitCreated(index *identity.Index, wanted map[string]identity.Labels) {
	r.createdMu.Lock()
	defer r.createdMu.Unlock()
	if r.created == nil {
		r.created = map[string]createdIdentity{}
	}
	now := r.Now()
	for key, c := range r.created {
		if _, seen := index.Labels(c.number); seen || now.Sub(c.at) > createdVisibleWithin {
			delete(r.created, key)
			continue
		}
		delete(wanted, key)
	}
}

// labelSets are the security label sets of the pods that need an identity,
// by key, and the first pod (by namespace/name) carrying each. Pods on the
// host network have the host's identity; pods that finished need none.
func (r *Reconciler) labelSets(pods []corev1.Pod, namespaces []corev1.Namespace) (map[string]identity.Labels, map[string]*corev1.Pod) {
	nsLabels := make(map[string]map[string]string, len(namespaces))
	for i := range namespaces {
		nsLabels[namespaces[i].Name] = namespaces[i].Labels
	}
	wanted := map[string]identity.Labels{}
	first := map[string]*corev1.Pod{}
	for i := range pods {
		pod := &pods[i]
		if !identity.HasOwnIdentity(pod) {
			continue
		}
		nl, ok := nsLabels[pod.Namespace]
		if !ok {
			continue // the namespace's event is on its way and brings another pass
		}
		set := r.PodSet(pod, nl)
		key := set.Key()
		wanted[key] = set
		if f, ok := first[key]; !ok || podBefore(pod, f) {
			first[key] = pod
		}
	}
	return wanted, first
}

func podBefore(a, b *corev1.Pod) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// create makes the CiliumIdentity of number n. If the number was taken
// meanwhile (another allocator), the create fails with AlreadyExists and
// the pass runs again from the new view.
func (r *Reconciler) create(n identity.Number, set identity.Labels) func(context.Context) error {
	return func(ctx context.Context) error {
		obj := &ciliumv2.CiliumIdentity{
			ObjectMeta:     metav1.ObjectMeta{Name: n.String(), Labels: set.ObjectLabels()},
			SecurityLabels: set,
		}
		if err := r.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating CiliumIdentity %s: %w", n, err)
		}
		r.createdMu.Lock()
		r.created[set.Key()] = createdIdentity{number: n, at: r.Now()}
		r.createdMu.Unlock()
		createdTotal.Inc()
		logf.FromContext(ctx).Info("identity created", "identity", n.String(), "labels", set.Key())
		return nil
	}
}

// delete removes an expired identity, on the condition that it is still
// the object that was decided on (uid and resourceVersion).
func (r *Reconciler) delete(obj *ciliumv2.CiliumIdentity) func(context.Context) error {
	uid, rv := obj.UID, obj.ResourceVersion
	return func(ctx context.Context) error {
		err := r.Client.Delete(ctx, obj.DeepCopy(), client.Preconditions{UID: &uid, ResourceVersion: &rv})
		if err != nil {
			return fmt.Errorf("deleting unused CiliumIdentity %s: %w", obj.Name, err)
		}
		deletedTotal.Inc()
		logf.FromContext(ctx).Info("unused identity deleted", "identity", obj.Name, "labels", identity.Labels(obj.SecurityLabels).Key())
		return nil
	}
}

// warnExhausted emits a Warning Event on the first pod of each label set
// that newly found the range full; the metric counts them while they wait.
func (r *Reconciler) warnExhausted(keys []string, firstPod map[string]*corev1.Pod) {
	now := make(map[string]bool, len(keys))
	for _, k := range keys {
		now[k] = true
		if r.exhausted[k] {
			continue
		}
		if pod := firstPod[k]; pod != nil {
			r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, "IdentityExhausted", "AllocateIdentity",
				"no security identity is free in %d–%d for this pod's labels; pods with them get one when an unused identity expires", r.Range.Min, r.Range.Max)
		}
	}
	r.exhausted = now
	exhaustedSets.Set(float64(len(keys)))
}

func sortedNumbers(m map[identity.Number]identity.Labels) []identity.Number {
	out := make([]identity.Number, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// podChanges passes the pod events that can change which label sets are
// in use: a pod added or gone, its labels, ServiceAccount (set at
// creation) or phase changed. Status-only updates (conditions, IPs) are
// dropped.
var podChanges = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.Pod)
		n, ok2 := e.ObjectNew.(*corev1.Pod)
		if !ok1 || !ok2 {
			return true
		}
		return !maps.Equal(o.Labels, n.Labels) || o.Status.Phase != n.Status.Phase || o.Spec.HostNetwork != n.Spec.HostNetwork
	},
}

// labelChanges passes object events other than updates that leave the
// labels as they were.
var labelChanges = predicate.LabelChangedPredicate{}
