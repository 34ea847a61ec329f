// Package reconciler is the IPAM controller's reconciler: it reads every
// Node, CiliumNode and CiliumPodIPPool from the cache, lets the allocator
// decide every node's CIDRs, and writes the CiliumNodes and pool statuses
// that changed.
//
// Like LB-IPAM it decides over the whole cluster in one pass (CIDRs must be
// unique across nodes), so every event maps to one key and a pass recomputes
// everything; events during a pass collapse into one more.
//
// New Nodes' CiliumNodes are created apart from the passes (startCreate),
// so a burst is not cut into batches that wait for their slowest create.
// A node's CIDRs are in the first write of its CiliumNode (the create); the
// status that says all is well follows once no CiliumNode waits for its
// CIDRs, so that a burst of new nodes costs the API server one write per node
// until every node has its CIDRs. Should a burst last longer than
// StatusDefer, the waiting statuses trickle out, a few hundred per pass, so
// that passes stay short and new nodes keep getting CIDRs. A status that
// reports trouble is written at once.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// What the IPAM controller reads and writes; nothing else.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnodes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumpodippools,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumpodippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ManagedByLabel marks the CiliumNodes this controller created, and so may
// delete when their Node is gone. CiliumNodes made by others are left alone.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "plexus-ipam"
)

// Reconciler keeps every node's CiliumNode holding its pod CIDRs.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Config   allocator.Config
	Passes   passes.Settings
	// StatusDefer is how long healthy nodes' status writes wait, all of
	// them, while other CiliumNodes wait for their CIDRs; after that they
	// trickle out. 0 never holds them back.
	StatusDefer time.Duration

	runner passes.Runner
	// deferringSince is when status writes began to wait (zero: they do
	// not); trickleAfter is where trickling resumes. Passes run one at a
	// time, so they need no lock.
	deferringSince time.Time
	trickleAfter   string
	// lastWaiting is when a pass last found a CiliumNode waiting.
	lastWaiting time.Time

	// kicks start a pass (after a failed create); createSlots bound the
	// creates in flight; creates counts them, for a clean stop.
	kicks       chan event.GenericEvent
	createSlots chan struct{}
	creates     sync.WaitGroup

	// created are the CiliumNodes this controller created that the cache
	// may not show yet, by name: the next pass must neither create them
	// again (the API server would refuse, and the pass would back off) nor
	// give their CIDRs to another node.
	createdMu sync.Mutex
	created   map[string]created
}

// created is a CiliumNode as this controller creates or created it, and
// when; inFlight while the create has not returned.
type created struct {
	at       time.Time
	node     *ciliumv2.CiliumNode
	inFlight bool
}

// cacheLagLimit is how long a created CiliumNode the cache does not show is
// trusted to exist; after that a pass creates it again (and learns).
const cacheLagLimit = 10 * time.Second

// awaitingCache returns the CiliumNode being created as name, or created
// recently, which the cache does not show yet; or nil.
func (r *Reconciler) awaitingCache(name string, now time.Time) *ciliumv2.CiliumNode {
	r.createdMu.Lock()
	defer r.createdMu.Unlock()
	if c, ok := r.created[name]; ok && (c.inFlight || now.Sub(c.at) < cacheLagLimit) {
		return c.node
	}
	return nil
}

// noteCreated records a create starting (inFlight), done, or failed
// (node nil: forgotten, so the next pass decides again).
func (r *Reconciler) noteCreated(name string, node *ciliumv2.CiliumNode, inFlight bool, now time.Time) {
	r.createdMu.Lock()
	defer r.createdMu.Unlock()
	if node == nil {
		delete(r.created, name)
		return
	}
	if r.created == nil {
		r.created = map[string]created{}
	}
	r.created[name] = created{at: now, node: node, inFlight: inFlight}
}

// forgetCreated forgets the creates the cache shows, and those done that it
// has not shown for cacheLagLimit.
func (r *Reconciler) forgetCreated(cached map[string]*ciliumv2.CiliumNode, now time.Time) {
	r.createdMu.Lock()
	defer r.createdMu.Unlock()
	for name, c := range r.created {
		if cached[name] != nil || !c.inFlight && now.Sub(c.at) >= cacheLagLimit {
			delete(r.created, name)
		}
	}
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("ipam: Client and Recorder must be set")
	}
	r.kicks = make(chan event.GenericEvent, 1)
	r.createSlots = make(chan struct{}, max(r.Passes.Workers, 1))
	r.runner = passes.Runner{Name: "ipam", Client: r.Client, Settings: r.Passes, Decide: r.decide, Kicks: r.kicks}
	// Creates in flight finish before the manager returns.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.creates.Wait()
		return nil
	})); err != nil {
		return err
	}
	watches := []passes.Watch{passes.For(&corev1.Node{}, nodeChanged), passes.For(&ciliumv2.CiliumNode{})}
	if r.Config.Mode == allocator.ModeMultiPool {
		watches = append(watches, passes.For(&ciliumv2alpha1.CiliumPodIPPool{}))
	}
	return r.runner.SetupWithManager(mgr, watches...)
}

// nodeChanged passes Node events that matter to IPAM: not the heartbeats.
var nodeChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
		return !reflect.DeepEqual(kubePodCIDRs(o), kubePodCIDRs(n)) ||
			!reflect.DeepEqual(nodeAddresses(o), nodeAddresses(n)) ||
			!reflect.DeepEqual(o.DeletionTimestamp, n.DeletionTimestamp)
	},
}

// decide reads everything, allocates, and adds the writes of what changed.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		nodes       corev1.NodeList
		ciliumNodes ciliumv2.CiliumNodeList
		pools       ciliumv2alpha1.CiliumPodIPPoolList
	)
	if err := p.ListAll(ctx, &nodes, &ciliumNodes); err != nil {
		return err
	}
	if r.Config.Mode == allocator.ModeMultiPool {
		if err := p.List(ctx, &pools); err != nil {
			return err
		}
	}

	byName := map[string]*ciliumv2.CiliumNode{}
	for i := range ciliumNodes.Items {
		byName[ciliumNodes.Items[i].Name] = &ciliumNodes.Items[i]
	}
	now := time.Now()
	r.forgetCreated(byName, now)
	var in []allocator.Node
	kube := map[string]*corev1.Node{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		kube[n.Name] = n
		cn := byName[n.Name]
		if cn == nil {
			cn = r.awaitingCache(n.Name, now) // what it holds is taken
		}
		in = append(in, toAllocatorNode(n, cn))
	}
	// CiliumNodes without a Node that this controller did not create (made by
	// hand or by another tool) keep their CIDRs: nothing is handed out twice.
	var orphans []*ciliumv2.CiliumNode
	for name, cn := range byName {
		if kube[name] != nil {
			continue
		}
		if cn.Labels[ManagedByLabel] == ManagedByValue {
			orphans = append(orphans, cn)
			continue
		}
		in = append(in, toAllocatorNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, cn))
	}
	var poolIn []allocator.Pool
	for i := range pools.Items {
		poolIn = append(poolIn, toAllocatorPool(&pools.Items[i]))
	}

	res := allocator.Allocate(r.Config, poolIn, in)

	deferring, budget := r.deferStatus(kube, byName, res, now)
	if deferring {
		p.After(time.Second) // the deferred statuses, should no event come
	}
	names := slices.Sorted(maps.Keys(kube))
	// Trickling goes round the nodes from where the last pass stopped, so
	// that every node's status is looked at within a few passes, whatever
	// kept it from being written.
	start, _ := slices.BinarySearch(names, r.trickleAfter)
	for i := range names {
		name := names[(start+i)%len(names)]
		n, cn, nr := kube[name], byName[name], res.Nodes[name]
		writeStatus := !deferring || nr != nil && len(nr.Errors) > 0
		if !writeStatus && budget > 0 && cn != nil {
			writeStatus = true
			budget--
			r.trickleAfter = name + "\x00"
		}
		switch {
		case cn != nil:
			// Only what may write: thousands of no-op writes would make a
			// pass over a large cluster slow.
			if writeStatus || !specCurrent(cn.Spec, n, r.Config.Mode, nr) {
				p.Write(r.updateNode(p.Status, n, cn, nr, writeStatus))
			}
		case n.DeletionTimestamp == nil && r.awaitingCache(name, now) == nil:
			r.startCreate(ctx, p.Status, n, nr, writeStatus)
		}
	}
	for _, cn := range orphans {
		p.Write(r.deleteNode(cn))
	}
	for i := range pools.Items {
		pool := &pools.Items[i]
		p.Write(r.poolWrite(p.Status, pool, res.Pools[pool.Name]))
	}
	recordNodes(res)
	return nil
}

// statusTrickle is how many waiting statuses a pass writes once they have
// waited StatusDefer and CiliumNodes still wait for their CIDRs.
const statusTrickle = 256

// statusQuiet is how long after the last waiting CiliumNode the held-back
// statuses still wait: a controller that keeps up with a burst of new
// Nodes finds none waiting between two of them, and writing thousands of
// statuses then would hold up the next creates.
const statusQuiet = 2 * time.Second

// deferStatus says whether this pass holds back the status writes of
// healthy nodes, and how many it writes nonetheless: all are held back while
// some CiliumNode waits for its CIDRs (to be created, or its spec written)
// or did within statusQuiet, up to StatusDefer; after that, statusTrickle
// per pass.
func (r *Reconciler) deferStatus(kube map[string]*corev1.Node, byName map[string]*ciliumv2.CiliumNode, res allocator.Result, now time.Time) (bool, int) {
	waiting := false
	for name, n := range kube {
		cn := byName[name]
		if cn == nil && n.DeletionTimestamp == nil ||
			cn != nil && !specCurrent(cn.Spec, n, r.Config.Mode, res.Nodes[name]) {
			waiting = true
			break
		}
	}
	if waiting {
		r.lastWaiting = now
	}
	quiet := !r.lastWaiting.IsZero() && now.Sub(r.lastWaiting) < statusQuiet
	switch {
	case !waiting && !quiet || r.StatusDefer <= 0:
		r.deferringSince = time.Time{}
		return false, 0
	case r.deferringSince.IsZero():
		r.deferringSince = now
	case now.Sub(r.deferringSince) >= r.StatusDefer:
		return true, statusTrickle
	}
	return true, 0
}

// startCreate creates n's CiliumNode apart from the pass, at most
// Passes.Workers at once: the pass goes on, and the next one hands out the
// Nodes that arrived meanwhile, so that a burst of new Nodes is not cut into
// batches that each wait for their slowest create. Until the cache shows
// it, the CiliumNode counts as existing (its CIDRs are taken); a failed
// create is forgotten and a pass decides again.
func (r *Reconciler) startCreate(ctx context.Context, status *statuswrite.Writer, n *corev1.Node, res *allocator.NodeResult, writeStatus bool) {
	cn := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{
		Name:   n.Name,
		Labels: map[string]string{ManagedByLabel: ManagedByValue},
		// The garbage collector deletes it with its Node even while this
		// controller is down.
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID, BlockOwnerDeletion: ptr.To(false)}},
		// Allocation orders nodes by age; until the create returns, this
		// one is as old as its Node.
		CreationTimestamp: n.CreationTimestamp,
	}}
	cn.Spec = desiredSpec(cn.Spec, n, r.Config.Mode, res)
	want := cn.DeepCopy() // what a pass sees until the cache shows it
	r.noteCreated(n.Name, want, true, time.Now())
	r.creates.Add(1)
	go func() {
		defer r.creates.Done()
		r.createSlots <- struct{}{}
		defer func() { <-r.createSlots }()
		cn.CreationTimestamp = metav1.Time{}
		if err := r.Client.Create(ctx, cn); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Made meanwhile (by this controller before a restart, or by
				// hand): the cache shows it soon, and a pass takes it as it is.
				r.noteCreated(n.Name, want, false, time.Now())
				return
			}
			r.noteCreated(n.Name, nil, false, time.Now())
			log.FromContext(ctx).Error(err, "creating CiliumNode", "node", n.Name)
			r.kick()
			return
		}
		r.noteCreated(n.Name, cn.DeepCopy(), false, time.Now())
		if writeStatus {
			if err := r.nodeStatus(ctx, status, cn, res); err != nil {
				log.FromContext(ctx).Error(err, "writing the status of a new CiliumNode", "node", n.Name)
				r.kick()
			}
		}
	}()
}

// kick asks for a pass without blocking.
func (r *Reconciler) kick() {
	select {
	case r.kicks <- event.GenericEvent{Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ipam"}}}:
	default: // a pass is queued already
	}
}

func (r *Reconciler) updateNode(status *statuswrite.Writer, n *corev1.Node, cn *ciliumv2.CiliumNode, res *allocator.NodeResult, writeStatus bool) func(context.Context) error {
	return func(ctx context.Context) error {
		spec := desiredSpec(cn.Spec, n, r.Config.Mode, res)
		if !equality.Semantic.DeepEqual(spec, cn.Spec) {
			// The node plugins write spec too (multi-pool requests and
			// releases): the lock makes a concurrent change fail this write
			// instead of being overwritten, and the pass starts over.
			updated := cn.DeepCopy()
			updated.Spec = spec
			if err := r.Client.Patch(ctx, updated, client.MergeFromWithOptions(cn, client.MergeFromWithOptimisticLock{})); err != nil {
				return fmt.Errorf("updating CiliumNode %s: %w", cn.Name, err)
			}
			cn = updated
		}
		if !writeStatus {
			return nil
		}
		return r.nodeStatus(ctx, status, cn, res)
	}
}

func (r *Reconciler) nodeStatus(ctx context.Context, status *statuswrite.Writer, cn *ciliumv2.CiliumNode, res *allocator.NodeResult) error {
	before := cn.Status.IPAM.OperatorStatus.Error
	wrote, err := status.Patch(ctx, cn, func(o client.Object) { setNodeStatus(o.(*ciliumv2.CiliumNode), r.Config.Mode, res) })
	if err != nil {
		return fmt.Errorf("status of CiliumNode %s: %w", cn.Name, err)
	}
	if after := strings.Join(res.Errors, "; "); wrote && after != "" && after != before {
		r.Recorder.Eventf(cn, nil, corev1.EventTypeWarning, ReasonAllocationFailed, "Allocate", "%s", after)
	}
	return nil
}

func (r *Reconciler) deleteNode(cn *ciliumv2.CiliumNode) func(context.Context) error {
	uid := cn.UID
	return func(ctx context.Context) error {
		err := r.Client.Delete(ctx, cn, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting CiliumNode %s of a deleted Node: %w", cn.Name, err)
		}
		return nil
	}
}

// poolWrite keeps the pool's finalizer (a pool that nodes hold CIDRs of
// stays until they release them) and writes its status.
func (r *Reconciler) poolWrite(status *statuswrite.Writer, p *ciliumv2alpha1.CiliumPodIPPool, res *allocator.PoolResult) func(context.Context) error {
	return func(ctx context.Context) error {
		held := res != nil && len(res.Holders) > 0
		has := controllerutil.ContainsFinalizer(p, ciliumv2alpha1.PoolFinalizer)
		want := p.DeletionTimestamp == nil || held
		if has != want {
			updated := p.DeepCopy()
			if want {
				controllerutil.AddFinalizer(updated, ciliumv2alpha1.PoolFinalizer)
			} else {
				controllerutil.RemoveFinalizer(updated, ciliumv2alpha1.PoolFinalizer)
			}
			if err := r.Client.Patch(ctx, updated, client.MergeFromWithOptions(p, client.MergeFromWithOptimisticLock{})); err != nil {
				return fmt.Errorf("finalizer of CiliumPodIPPool %s: %w", p.Name, err)
			}
			if !want {
				return nil // released: the pool is gone now
			}
			p = updated
		}
		_, err := status.PatchReady(ctx, p, func(o client.Object) []metav1.Condition {
			return o.(*ciliumv2alpha1.CiliumPodIPPool).Status.Conditions
		}, func(o client.Object) { setPoolStatus(o.(*ciliumv2alpha1.CiliumPodIPPool), res) }, r.Recorder, "Allocate")
		if err != nil {
			return fmt.Errorf("status of CiliumPodIPPool %s: %w", p.Name, err)
		}
		return nil
	}
}
