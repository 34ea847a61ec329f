package reconciler

import (
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/internal/conditions"
)

// Healthy statuses wait, all of them, while a CiliumNode waits for its
// CIDRs (and statusQuiet after), for StatusDefer; then statusTrickle per
// pass; with nothing waiting, or StatusDefer 0, they do not wait.
func TestDeferStatus(t *testing.T) {
	r := &Reconciler{Config: clusterPool("10.0.0.0/8"), StatusDefer: 10 * time.Second}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	kube := map[string]*corev1.Node{"a": {ObjectMeta: metav1.ObjectMeta{Name: "a"}}, "b": {ObjectMeta: metav1.ObjectMeta{Name: "b"}}}
	res := allocator.Result{Nodes: map[string]*allocator.NodeResult{"a": {PodCIDRs: []string{"10.0.0.0/24"}}, "b": {PodCIDRs: []string{"10.0.1.0/24"}}}}
	done := map[string]*ciliumv2.CiliumNode{}
	for name, n := range kube {
		done[name] = &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: desiredSpec(ciliumv2.NodeSpec{}, n, r.Config.Mode, res.Nodes[name])}
	}
	waitingForB := map[string]*ciliumv2.CiliumNode{"a": done["a"]}

	for _, step := range []struct {
		what     string
		byName   map[string]*ciliumv2.CiliumNode
		at       time.Duration
		deferred bool
		budget   int
	}{
		{"b has no CiliumNode: hold all back", waitingForB, 0, true, 0},
		{"still within StatusDefer", waitingForB, 9 * time.Second, true, 0},
		{"StatusDefer up: trickle", waitingForB, 10 * time.Second, true, statusTrickle},
		{"and go on trickling", waitingForB, 11 * time.Second, true, statusTrickle},
		{"nothing waits, but only just: keep trickling", done, 12 * time.Second, true, statusTrickle},
		{"nothing waited for statusQuiet: write all", done, 11*time.Second + statusQuiet, false, 0},
		{"a burst again starts a new wait", waitingForB, 16 * time.Second, true, 0},
		{"...measured from its start", waitingForB, 25 * time.Second, true, 0},
		{"...until it is up", waitingForB, 26 * time.Second, true, statusTrickle},
	} {
		if deferred, budget := r.deferStatus(kube, step.byName, res, t0.Add(step.at)); deferred != step.deferred || budget != step.budget {
			t.Errorf("%s: deferStatus = %v, %d; want %v, %d", step.what, deferred, budget, step.deferred, step.budget)
		}
	}
	r.StatusDefer = 0
	if deferred, _ := r.deferStatus(kube, waitingForB, res, t0); deferred {
		t.Error("StatusDefer 0 deferred")
	}
}

// With a long StatusDefer, a node still gets its status: the pass that
// finds no CiliumNode waiting writes it.
func TestDeferredStatusIsWritten(t *testing.T) {
	h := newHarness(t)
	h.start(clusterPool("10.0.0.0/8"), func(r *Reconciler) { r.StatusDefer = time.Hour })
	for _, n := range []string{"d1", "d2", "d3"} {
		h.node(n)
	}
	h.eventually("every node Ready", func() error {
		for _, n := range []string{"d1", "d2", "d3"} {
			cn, err := h.ciliumNode(n)
			if err != nil {
				return err
			}
			if c := meta.FindStatusCondition(cn.Status.Conditions, conditions.TypeReady); c == nil || c.Status != metav1.ConditionTrue || len(cn.Spec.IPAM.PodCIDRs) != 1 {
				return fmt.Errorf("%s: CIDRs %v, Ready %+v", n, cn.Spec.IPAM.PodCIDRs, c)
			}
		}
		return nil
	})
}

// A burst of Nodes: every one gets a CiliumNode whose CIDR is its own and
// was never moved (generation 1: the spec was written once, by the create),
// while creates run apart from the passes and the cache lags behind them.
func TestBurstOfNodesGetsUniqueCIDRsOnce(t *testing.T) {
	h := newHarness(t)
	h.start(clusterPool("10.0.0.0/16"), func(r *Reconciler) { r.Passes.Workers = 32 })
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			must(t, h.c.Create(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("burst-%d", i)}}))
		}()
	}
	wg.Wait()
	h.eventually("every CiliumNode holds a CIDR", func() error {
		var list ciliumv2.CiliumNodeList
		if err := h.c.List(h.ctx, &list); err != nil {
			return err
		}
		owner := map[string]string{}
		for _, cn := range list.Items {
			if len(cn.Spec.IPAM.PodCIDRs) != 1 {
				return fmt.Errorf("%s holds %v", cn.Name, cn.Spec.IPAM.PodCIDRs)
			}
			if o, ok := owner[cn.Spec.IPAM.PodCIDRs[0]]; ok {
				t.Fatalf("%s and %s both hold %s", o, cn.Name, cn.Spec.IPAM.PodCIDRs[0])
			}
			owner[cn.Spec.IPAM.PodCIDRs[0]] = cn.Name
			if cn.Generation != 1 {
				t.Fatalf("%s's spec was written again (generation %d): its CIDR may have moved", cn.Name, cn.Generation)
			}
		}
		if len(list.Items) != n {
			return fmt.Errorf("%d of %d CiliumNodes", len(list.Items), n)
		}
		return nil
	})
}
