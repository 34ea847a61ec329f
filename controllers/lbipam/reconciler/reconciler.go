// Package reconciler is LB-IPAM's reconciler: it reads every pool and
// Service from the cache, lets the allocator decide, and writes the Service
// and pool statuses that changed.
//
// Allocation is one decision over the whole cluster (addresses are shared
// between Services, pools conflict with each other), so it runs as passes
// (internal/passes): each recomputes everything from the cache. Recomputing
// 10,000 Services takes about 15 ms, far below the cost of the writes.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// What LB-IPAM reads and writes; nothing else.
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumloadbalancerippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumloadbalancerippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler allocates LoadBalancer addresses from CiliumLoadBalancerIPPools.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Families enabled for LB-IPAM.
	Families allocator.Config
	// ServeClassless: Services without spec.loadBalancerClass are served
	// (the default). Off, only Plexus's classes are.
	ServeClassless bool
	// AllocationEvents: emit a Normal IPAllocated Event when a Service's
	// addresses change. Warnings are always emitted.
	AllocationEvents bool
	// Passes: writes in flight and pacing. Under a stream of events a burst
	// of new Services costs one pass per interval instead of one per event;
	// with very many Services the spacing grows so that deciding takes at
	// most a fifth of a core (passes.Pacer).
	Passes passes.Settings

	runner passes.Runner
	// decided holds, per Service, the addresses the last pass decided.
	// It is authoritative over the cache, which may not show a write yet, so
	// an address just handed out is never handed out twice. After a restart
	// it is empty and Service status is the record.
	decided map[types.UID][]netip.Addr
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("lbipam: Client and Recorder must be set")
	}
	r.decided = map[types.UID][]netip.Addr{}
	r.runner = passes.Runner{Name: "lbipam", Client: r.Client, Settings: r.Passes, Decide: r.decide}
	return r.runner.SetupWithManager(mgr, passes.For(&ciliumv2.CiliumLoadBalancerIPPool{}), passes.For(&corev1.Service{}))
}

// decide reads all pools and Services, allocates, and adds the writes of
// what changed.
func (r *Reconciler) decide(ctx context.Context, p *passes.Pass) error {
	var (
		pools    ciliumv2.CiliumLoadBalancerIPPoolList
		services corev1.ServiceList
	)
	if err := p.ListAll(ctx, &pools, &services); err != nil {
		return err
	}

	in := r.buildInput(pools.Items, services.Items)
	res := allocator.Allocate(r.Families, in.pools, in.services)

	satisfied := 0
	for i := range services.Items {
		svc := &services.Items[i]
		if in.served[svc.UID] {
			sr := res.Services[keyOf(svc)]
			r.decided[svc.UID] = addrsOf(sr.Addresses)
			if sr.Satisfied {
				satisfied++
			}
			if svc.DeletionTimestamp == nil && !serviceStatusCurrent(svc, sr) {
				p.Write(r.serviceWrite(p.Status, svc, sr))
			}
		} else if r.marked(svc) {
			p.Write(r.serviceRelease(p.Status, svc, in.ours))
		}
	}
	for uid := range r.decided {
		if !in.served[uid] {
			delete(r.decided, uid)
		}
	}
	for i := range pools.Items {
		pool := &pools.Items[i]
		p.Write(r.poolWrite(p.Status, pool, res.Pools[pool.Name], in.selectorErrs[pool.Name]))
	}
	servicesGauge.WithLabelValues("satisfied").Set(float64(satisfied))
	servicesGauge.WithLabelValues("unsatisfied").Set(float64(len(in.services) - satisfied))
	return nil
}

type input struct {
	pools        []allocator.Pool
	services     []allocator.Service
	served       map[types.UID]bool
	selectorErrs map[string]error
	// ours reports whether an address is inside any pool.
	ours func(netip.Addr) bool
}

func (r *Reconciler) buildInput(pools []ciliumv2.CiliumLoadBalancerIPPool, services []corev1.Service) input {
	in := input{served: map[types.UID]bool{}, selectorErrs: map[string]error{}}
	for i := range pools {
		p := toAllocatorPool(&pools[i])
		in.pools = append(in.pools, p)
		if p.SelectorErr != nil {
			in.selectorErrs[p.Name] = p.SelectorErr
		}
	}
	in.ours = func(a netip.Addr) bool {
		for _, p := range in.pools {
			if allocator.PoolCovers(p, a) {
				return true
			}
		}
		return false
	}
	for i := range services {
		svc := &services[i]
		if !responsible(svc, r.ServeClassless) || (svc.DeletionTimestamp != nil && !r.marked(svc)) {
			continue
		}
		// Dormant without pools: Services LB-IPAM never touched stay
		// untouched; those it served learn that no pool is left.
		if len(pools) == 0 && !r.marked(svc) {
			continue
		}
		held, decided := r.decided[svc.UID]
		in.services = append(in.services, toAllocatorService(svc, held, decided))
		in.served[svc.UID] = true
	}
	return in
}

// marked says whether LB-IPAM has left its marks on svc.
func (r *Reconciler) marked(svc *corev1.Service) bool {
	_, decided := r.decided[svc.UID]
	return decided || meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType) != nil
}

func (r *Reconciler) serviceWrite(status *statuswrite.Writer, svc *corev1.Service, res allocator.ServiceResult) func(context.Context) error {
	return func(ctx context.Context) error {
		before := meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType)
		beforeAddrs := ingressAddrs(svc)
		wrote, err := status.Patch(ctx, svc, func(o client.Object) { setServiceStatus(o.(*corev1.Service), res) })
		if err != nil {
			return fmt.Errorf("status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if !wrote {
			return nil
		}
		// One Event per change the user can see, none on resyncs.
		addrs := addrsOf(res.Addresses)
		switch {
		case res.Satisfied && r.AllocationEvents && !slices.Equal(addrs, beforeAddrs):
			r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, eventReasonAllocated, eventActionAllocate, "Allocated %s", joinAddrs(addrs))
		case !res.Satisfied && (before == nil || before.Reason != res.Reason || before.Message != res.Message):
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, res.Reason, eventActionAllocate, "%s", res.Message)
		}
		return nil
	}
}

func (r *Reconciler) serviceRelease(status *statuswrite.Writer, svc *corev1.Service, inPools func(netip.Addr) bool) func(context.Context) error {
	decided := r.decided[svc.UID]
	ours := func(a netip.Addr) bool { return slices.Contains(decided, a) || inPools(a) }
	return func(ctx context.Context) error {
		wrote, err := status.Patch(ctx, svc, func(o client.Object) { clearServiceStatus(o.(*corev1.Service), ours) })
		if err != nil {
			return fmt.Errorf("releasing Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if wrote {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, eventReasonReleased, eventActionRelease, "LB-IPAM no longer serves this Service (type %s, class %s); its addresses are released", svc.Spec.Type, classOf(svc))
		}
		return nil
	}
}

func (r *Reconciler) poolWrite(status *statuswrite.Writer, pool *ciliumv2.CiliumLoadBalancerIPPool, res allocator.PoolResult, selectorErr error) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := status.PatchReady(ctx, pool, poolConditions, func(o client.Object) {
			setPoolStatus(o.(*ciliumv2.CiliumLoadBalancerIPPool), res, selectorErr)
		}, r.Recorder, eventActionValidate)
		if err != nil {
			return fmt.Errorf("status of CiliumLoadBalancerIPPool %s: %w", pool.Name, err)
		}
		return nil
	}
}

func poolConditions(o client.Object) []metav1.Condition {
	return o.(*ciliumv2.CiliumLoadBalancerIPPool).Status.Conditions
}

func keyOf(svc *corev1.Service) types.NamespacedName {
	return types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
}

func addrsOf(as []allocator.Assignment) []netip.Addr {
	out := make([]netip.Addr, len(as))
	for i, a := range as {
		out[i] = a.Addr
	}
	return out
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func classOf(svc *corev1.Service) string {
	if svc.Spec.LoadBalancerClass == nil {
		return "unset"
	}
	return *svc.Spec.LoadBalancerClass
}
