package reconciler_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
	"github.com/plexus-net/plexus/controllers/lbipam/reconciler"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// harness is one test's view: its own namespace, a running controller, and
// a cluster emptied of pools and LoadBalancer Services before and after.
type harness struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
	ns  string
	// stop stops the controller started last.
	stop func()
}

var nsCounter atomic.Int32

func newHarness(t *testing.T, opts ...func(*reconciler.Reconciler)) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client, ns: fmt.Sprintf("lbipam-%d", nsCounter.Add(1))}
	h.emptyCluster()
	t.Cleanup(h.emptyCluster)
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})
	h.startController(opts...)
	return h
}

// startController runs the reconciler in a manager of its own, as the binary
// does; h.stop stops it (as does the end of the test).
func (h *harness) startController(opts ...func(*reconciler.Reconciler)) {
	h.t.Helper()
	h.stop = env.RunManager(h.t, func(mgr ctrl.Manager) error {
		r := &reconciler.Reconciler{
			Client:           mgr.GetClient(),
			Recorder:         mgr.GetEventRecorder("plexus-lbipam"),
			Families:         allocator.Config{IPv4Enabled: true, IPv6Enabled: true},
			ServeClassless:   true,
			Passes:           passes.Settings{Workers: 4},
			AllocationEvents: true,
		}
		for _, o := range opts {
			o(r)
		}
		return r.SetupWithManager(mgr)
	})
}

func (h *harness) emptyCluster() {
	ctx := context.Background()
	var svcs corev1.ServiceList
	if err := h.c.List(ctx, &svcs); err != nil {
		h.t.Fatal(err)
	}
	for i := range svcs.Items {
		if svcs.Items[i].Spec.Type == corev1.ServiceTypeLoadBalancer {
			_ = client.IgnoreNotFound(h.c.Delete(ctx, &svcs.Items[i]))
		}
	}
	if err := h.c.DeleteAllOf(ctx, &ciliumv2.CiliumLoadBalancerIPPool{}); err != nil {
		h.t.Fatal(err)
	}
	h.eventually("cluster emptied", func() error {
		var pools ciliumv2.CiliumLoadBalancerIPPoolList
		if err := h.c.List(ctx, &pools); err != nil || len(pools.Items) > 0 {
			return fmt.Errorf("%d pools left (%w)", len(pools.Items), err)
		}
		return nil
	})
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := h.c.Create(h.ctx, obj); err != nil {
		h.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// eventually waits until check passes (see testenv.Eventually).
func (h *harness) eventually(what string, check func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 30*time.Second, what, check)
}

// consistently checks that check keeps passing for a while; used only where
// the expected outcome is that nothing happens.
func (h *harness) consistently(what string, check func() error) {
	h.t.Helper()
	for range 15 {
		if err := check(); err != nil {
			h.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type poolOpt func(*ciliumv2.CiliumLoadBalancerIPPool)

func (h *harness) pool(name string, blocks []string, opts ...poolOpt) *ciliumv2.CiliumLoadBalancerIPPool {
	h.t.Helper()
	p := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{Blocks: toBlocks(blocks)}}
	for _, o := range opts {
		o(p)
	}
	h.create(p)
	return p
}

func toBlocks(blocks []string) []ciliumv2.CiliumLoadBalancerIPPoolIPBlock {
	var out []ciliumv2.CiliumLoadBalancerIPPoolIPBlock
	for _, b := range blocks {
		if start, stop, ok := strings.Cut(b, "-"); ok {
			out = append(out, ciliumv2.CiliumLoadBalancerIPPoolIPBlock{Start: start, Stop: stop})
		} else {
			out = append(out, ciliumv2.CiliumLoadBalancerIPPoolIPBlock{Cidr: b})
		}
	}
	return out
}

func selecting(sel *metav1.LabelSelector) poolOpt {
	return func(p *ciliumv2.CiliumLoadBalancerIPPool) { p.Spec.ServiceSelector = sel }
}

type svcOpt func(*corev1.Service)

func (h *harness) service(name string, opts ...svcOpt) *corev1.Service {
	h.t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "p", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	h.create(s)
	return s
}

func labelled(kv ...string) svcOpt {
	return func(s *corev1.Service) {
		s.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels[kv[i]] = kv[i+1]
		}
	}
}

func annotated(kv ...string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func ports(ps ...int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = nil
		for _, p := range ps {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p})
		}
	}
}

func inNamespace(ns string) svcOpt { return func(s *corev1.Service) { s.Namespace = ns } }

func class(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }

func dualStack(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) svcOpt {
	return func(s *corev1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &p, fams }
}

func (h *harness) get(name string) *corev1.Service {
	h.t.Helper()
	return h.getIn(h.ns, name)
}

func (h *harness) getIn(ns, name string) *corev1.Service {
	h.t.Helper()
	var s corev1.Service
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		h.t.Fatal(err)
	}
	return &s
}

func ingressOf(s *corev1.Service) string {
	var ips []string
	for _, i := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, i.IP)
	}
	return strings.Join(ips, ",")
}

func reasonOf(s *corev1.Service) string {
	if c := meta.FindStatusCondition(s.Status.Conditions, reconciler.ServiceConditionType); c != nil {
		return c.Reason
	}
	return ""
}

// expect waits until Service name (in the harness namespace, or "ns/name")
// shows exactly the ingress addresses ips ("*": any one address) and
// condition reason.
func (h *harness) expect(name, ips, reason string) *corev1.Service {
	h.t.Helper()
	ns := h.ns
	if n, rest, ok := strings.Cut(name, "/"); ok {
		ns, name = n, rest
	}
	var s *corev1.Service
	h.eventually(fmt.Sprintf("Service %s/%s with [%s] %s", ns, name, ips, reason), func() error {
		s = h.getIn(ns, name)
		got, gotReason := ingressOf(s), reasonOf(s)
		switch n := strings.Count(got, ","); {
		case ips == "*" && got != "" && n == 0:
			got = "*" // any single address
		case ips == "*,*" && n == 1:
			got = "*,*" // any two
		}
		if got != ips || gotReason != reason {
			return fmt.Errorf("has [%s] %q", got, gotReason)
		}
		return nil
	})
	return s
}

func (h *harness) getPool(name string) *ciliumv2.CiliumLoadBalancerIPPool {
	h.t.Helper()
	var p ciliumv2.CiliumLoadBalancerIPPool
	if err := h.c.Get(h.ctx, client.ObjectKey{Name: name}, &p); err != nil {
		h.t.Fatal(err)
	}
	return &p
}

// expectPool waits until pool name's conditions match want (type -> "status/reason/message",
// with "*" for any part).
func (h *harness) expectPool(name string, want map[string]string) {
	h.t.Helper()
	h.eventually("pool "+name+" conditions", func() error {
		p := h.getPool(name)
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
		}
		for t, w := range want {
			c := meta.FindStatusCondition(p.Status.Conditions, t)
			if c == nil {
				return fmt.Errorf("no condition %s", t)
			}
			parts := strings.SplitN(w, "/", 3)
			got := []string{string(c.Status), c.Reason, c.Message}
			for i, part := range parts {
				if part != "*" && part != got[i] {
					return fmt.Errorf("condition %s is %s, want %s", t, strings.Join(got, "/"), w)
				}
			}
		}
		return nil
	})
}

func (h *harness) update(obj client.Object, mutate func()) {
	h.t.Helper()
	h.eventually("update "+obj.GetName(), func() error {
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return h.c.Update(h.ctx, obj)
	})
}

func (h *harness) delete(obj client.Object) {
	h.t.Helper()
	if err := h.c.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
		h.t.Fatal(err)
	}
}

// events lists the Events about the object named name with reason.
func (h *harness) expectEvent(name, reason, noteContains string) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("Event %s about %s", reason, name), func() error {
		var evs eventsv1.EventList
		if err := h.c.List(h.ctx, &evs); err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name == name {
				seen = append(seen, e.Reason+": "+e.Note)
				if e.Reason == reason && strings.Contains(e.Note, noteContains) {
					return nil
				}
			}
		}
		slices.Sort(seen)
		return fmt.Errorf("events seen: %v", seen)
	})
}
