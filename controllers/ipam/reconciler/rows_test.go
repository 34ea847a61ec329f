package reconciler

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/internal/conditions"
)

// I1, I2: with the defaults every node gets a /24 from 10.0.0.0/8 on a
// CiliumNode the controller creates, with its addresses and a Ready status.
func TestI1_I2_DefaultClusterPool(t *testing.T) {
	h := newHarness(t)
	h.start(clusterPool("10.0.0.0/8"))
	n := h.node("n1", withAddress("198.18.0.11"))
	cidrs := h.waitCIDRs("n1")
	p := netip.MustParsePrefix(cidrs[0])
	if len(cidrs) != 1 || p.Bits() != 24 || !netip.MustParsePrefix("10.0.0.0/8").Contains(p.Addr()) {
		t.Fatalf("podCIDRs = %v", cidrs)
	}
	h.eventually("status", func() error {
		cn, err := h.ciliumNode("n1")
		if err != nil {
			return err
		}
		if len(cn.Spec.Addresses) != 1 || cn.Spec.Addresses[0] != (ciliumv2.NodeAddress{Type: "InternalIP", IP: "198.18.0.11"}) {
			return fmt.Errorf("addresses %v", cn.Spec.Addresses)
		}
		if cn.Labels[ManagedByLabel] != ManagedByValue || len(cn.OwnerReferences) != 1 || cn.OwnerReferences[0].UID != n.UID {
			return fmt.Errorf("ownership: labels %v owners %v", cn.Labels, cn.OwnerReferences)
		}
		ready := meta.FindStatusCondition(cn.Status.Conditions, conditions.TypeReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || !strings.Contains(ready.Message, cidrs[0]) {
			return fmt.Errorf("Ready = %+v", ready)
		}
		return nil
	})
}

// I3: dual stack gives one CIDR per family.
func TestI3_DualStack(t *testing.T) {
	h := newHarness(t)
	cfg := clusterPool("10.0.0.0/8")
	cfg.IPv6 = true
	cfg.ClusterPoolIPv6 = allocator.Family{CIDRs: []netip.Prefix{netip.MustParsePrefix("fd00::/104")}, MaskSize: 120}
	h.start(cfg)
	h.node("n1")
	if got := h.waitCIDRs("n1"); len(got) != 2 || got[1] != "fd00::/120" {
		t.Fatalf("podCIDRs = %v", got)
	}
}

// I5, I6: an exhausted cluster pool says so on the node that got nothing;
// appending a CIDR (a controller restart with the new flag) serves it and
// moves no one else.
func TestI5_I6_ExhaustionAndAppend(t *testing.T) {
	h := newHarness(t)
	stop := h.start(clusterPool("10.0.0.0/23"))
	h.node("n1")
	h.node("n2")
	first := map[string][]string{"n1": h.waitCIDRs("n1"), "n2": h.waitCIDRs("n2")}
	h.node("n3")
	h.eventually("n3 reports exhaustion", func() error {
		cn, err := h.ciliumNode("n3")
		if err != nil {
			return err
		}
		msg := cn.Status.IPAM.OperatorStatus.Error
		c := meta.FindStatusCondition(cn.Status.Conditions, ciliumv2.NodeConditionPodCIDRsAllocated)
		if !strings.Contains(msg, "cluster pool exhausted") || c == nil || c.Status != metav1.ConditionFalse || len(cn.Spec.IPAM.PodCIDRs) != 0 {
			return fmt.Errorf("error %q, condition %+v, cidrs %v", msg, c, cn.Spec.IPAM.PodCIDRs)
		}
		return nil
	})
	stop()
	h.start(clusterPool("10.0.0.0/23", "10.7.0.0/16"))
	if got := h.waitCIDRs("n3"); !slices.Equal(got, []string{"10.7.0.0/24"}) {
		t.Fatalf("n3 after append = %v", got)
	}
	for name, cidrs := range first {
		if got := h.waitCIDRs(name); !slices.Equal(got, cidrs) {
			t.Fatalf("%s moved from %v to %v", name, cidrs, got)
		}
	}
	h.eventually("n3 error cleared", func() error {
		cn, err := h.ciliumNode("n3")
		if err != nil {
			return err
		}
		if cn.Status.IPAM.OperatorStatus.Error != "" {
			return fmt.Errorf("error still %q", cn.Status.IPAM.OperatorStatus.Error)
		}
		return nil
	})
}

// A restarted controller restores every holding before it allocates, even
// when the node that joined while it was down is older than the holders'
// CiliumNodes would suggest; and a steady state causes no writes.
func TestRestartRestoresAndWritesNothing(t *testing.T) {
	h := newHarness(t)
	stop := h.start(clusterPool("10.0.0.0/16"))
	for i := range 5 {
		h.node(fmt.Sprintf("n%d", i))
	}
	held := map[string][]string{}
	for i := range 5 {
		name := fmt.Sprintf("n%d", i)
		held[name] = h.waitCIDRs(name)
	}
	versions := h.versions()
	stop()
	stop = h.start(clusterPool("10.0.0.0/16"))
	h.node("late")
	late := h.waitCIDRs("late")
	for name, cidrs := range held {
		if slices.Equal(cidrs, late) {
			t.Fatalf("late node got %s's CIDR %v", name, cidrs)
		}
	}
	after := h.versions()
	for name, rv := range versions {
		if after[name] != rv {
			t.Errorf("CiliumNode %s was written on restart (resourceVersion %s -> %s)", name, rv, after[name])
		}
	}
	stop()
}

func (h *harness) versions() map[string]string {
	var l ciliumv2.CiliumNodeList
	must(h.t, h.c.List(h.ctx, &l))
	out := map[string]string{}
	for _, cn := range l.Items {
		out[cn.Name] = cn.ResourceVersion
	}
	return out
}

// I31: deleting a Node deletes its CiliumNode and frees its CIDR for the next
// node; a CiliumNode someone else made is left alone and keeps its CIDR.
func TestI31_NodeDeletionReleasesCIDR(t *testing.T) {
	h := newHarness(t)
	h.start(clusterPool("10.0.0.0/16"))
	foreign := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: "external-vm"}, Spec: ciliumv2.NodeSpec{IPAM: ciliumv2.IPAMSpec{PodCIDRs: []string{"10.0.0.0/24"}}}}
	must(t, h.c.Create(h.ctx, foreign))
	n1 := h.node("n1")
	got := h.waitCIDRs("n1")
	if slices.Equal(got, []string{"10.0.0.0/24"}) {
		t.Fatal("n1 got the CIDR of a CiliumNode without a Node")
	}
	must(t, h.c.Delete(h.ctx, n1))
	h.eventually("CiliumNode n1 deleted", func() error { _, err := h.ciliumNode("n1"); return isNotFound(err) })
	h.node("n2")
	if again := h.waitCIDRs("n2"); !slices.Equal(again, got) {
		t.Fatalf("n2 got %v, want the freed %v", again, got)
	}
	if _, err := h.ciliumNode("external-vm"); err != nil {
		t.Fatalf("foreign CiliumNode: %v", err)
	}
}

// I8, I10, and the I9 condition: kubernetes mode mirrors the Node's CIDRs
// (spec or annotation) and says which family is missing.
func TestI8_I9_I10_KubernetesMode(t *testing.T) {
	h := newHarness(t)
	h.start(allocator.Config{Mode: allocator.ModeKubernetes, IPv4: true})
	h.node("spec", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.3.0/24"}; n.Spec.PodCIDR = "10.244.3.0/24" })
	h.node("annotated", func(n *corev1.Node) { n.Annotations = map[string]string{AnnotationIPv4PodCIDR: "10.244.9.0/24"} })
	h.node("bare")
	if got := h.waitCIDRs("spec"); !slices.Equal(got, []string{"10.244.3.0/24"}) {
		t.Fatalf("spec = %v", got)
	}
	if got := h.waitCIDRs("annotated"); !slices.Equal(got, []string{"10.244.9.0/24"}) {
		t.Fatalf("annotated = %v", got)
	}
	h.eventually("bare reports the missing CIDR", func() error {
		cn, err := h.ciliumNode("bare")
		if err != nil {
			return err
		}
		if !strings.Contains(cn.Status.IPAM.OperatorStatus.Error, "no IPv4 pod CIDR") {
			return fmt.Errorf("error %q", cn.Status.IPAM.OperatorStatus.Error)
		}
		return nil
	})
}

func (h *harness) pool(name string, mask int32, cidrs ...string) *ciliumv2alpha1.CiliumPodIPPool {
	h.t.Helper()
	p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: ciliumv2alpha1.IPPoolSpec{IPv4: &ciliumv2alpha1.IPPoolFamily{CIDRs: cidrs, MaskSize: mask}}}
	must(h.t, h.c.Create(h.ctx, p))
	return p
}

// request plays the node's CNI agent: it asks for n IPv4 addresses of pool.
func (h *harness) request(node, pool string, n int) {
	h.t.Helper()
	h.eventually("request written", func() error {
		cn, err := h.ciliumNode(node)
		if err != nil {
			return err
		}
		orig := cn.DeepCopy()
		cn.Spec.IPAM.Pools.Requested = slices.DeleteFunc(cn.Spec.IPAM.Pools.Requested, func(r ciliumv2.IPAMPoolRequest) bool { return r.Pool == pool })
		cn.Spec.IPAM.Pools.Requested = append(cn.Spec.IPAM.Pools.Requested, ciliumv2.IPAMPoolRequest{Pool: pool, Needed: ciliumv2.IPAMPoolDemand{IPv4Addrs: n}})
		return h.c.Patch(h.ctx, cn, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
}

// release plays the agent giving back every CIDR of pool.
func (h *harness) release(node, pool string) {
	h.t.Helper()
	h.eventually("release written", func() error {
		cn, err := h.ciliumNode(node)
		if err != nil {
			return err
		}
		orig := cn.DeepCopy()
		cn.Spec.IPAM.Pools.Requested = slices.DeleteFunc(cn.Spec.IPAM.Pools.Requested, func(r ciliumv2.IPAMPoolRequest) bool { return r.Pool == pool })
		cn.Spec.IPAM.Pools.Allocated = slices.DeleteFunc(cn.Spec.IPAM.Pools.Allocated, func(a ciliumv2.IPAMPoolAllocation) bool { return a.Pool == pool })
		return h.c.Patch(h.ctx, cn, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
}

func (h *harness) allocated(node, pool string) []string {
	cn, err := h.ciliumNode(node)
	if err != nil {
		return nil
	}
	for _, a := range cn.Spec.IPAM.Pools.Allocated {
		if a.Pool == pool {
			return a.CIDRs
		}
	}
	return nil
}

func (h *harness) poolReady(name, reason string, contains ...string) {
	h.t.Helper()
	h.eventually("pool "+name+" Ready reason "+reason, func() error {
		p := &ciliumv2alpha1.CiliumPodIPPool{}
		if err := h.c.Get(h.ctx, client.ObjectKey{Name: name}, p); err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, conditions.TypeReady)
		if c == nil || c.Reason != reason || c.ObservedGeneration != p.Generation {
			return fmt.Errorf("Ready = %+v (generation %d)", c, p.Generation)
		}
		for _, s := range contains {
			if !strings.Contains(c.Message, s) {
				return fmt.Errorf("Ready message %q lacks %q", c.Message, s)
			}
		}
		return nil
	})
}

// A pool whose podSelector does not parse says so in Ready: it selects no
// pod by label.
func TestPoolInvalidSelector(t *testing.T) {
	h := newHarness(t)
	h.start(allocator.Config{Mode: allocator.ModeMultiPool})
	p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: "badsel"}, Spec: ciliumv2alpha1.IPPoolSpec{
		IPv4:        &ciliumv2alpha1.IPPoolFamily{CIDRs: []string{"10.60.0.0/24"}, MaskSize: 28},
		PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Bogus"}}},
	}}
	must(t, h.c.Create(h.ctx, p))
	h.poolReady("badsel", ciliumv2alpha1.PodPoolReasonInvalidSelector, "spec.podSelector", "selects no pod by label")
}

// I16, I21: a node's request is met with CIDRs of the pool's mask size; a
// pool grown at runtime serves a node the full pool could not.
func TestI16_I21_MultiPoolRequestsAndGrowth(t *testing.T) {
	h := newHarness(t)
	h.start(allocator.Config{Mode: allocator.ModeMultiPool})
	mars := h.pool("mars", 25, "10.20.0.0/25")
	h.node("n1")
	h.node("n2")
	h.request("n1", "mars", 100)
	h.eventually("n1 allocated", func() error {
		if got := h.allocated("n1", "mars"); !slices.Equal(got, []string{"10.20.0.0/25"}) {
			return fmt.Errorf("allocated %v", got)
		}
		return nil
	})
	h.poolReady("mars", ReasonReady, "1 nodes hold 1 CIDRs")
	h.request("n2", "mars", 10)
	h.poolReady("mars", ciliumv2alpha1.PodPoolReasonExhausted, "n2")
	must(t, h.c.Get(h.ctx, client.ObjectKeyFromObject(mars), mars))
	mars.Spec.IPv4.CIDRs = append(mars.Spec.IPv4.CIDRs, "10.21.0.0/24")
	must(t, h.c.Update(h.ctx, mars))
	h.eventually("n2 allocated from the new CIDR", func() error {
		if got := h.allocated("n2", "mars"); !slices.Equal(got, []string{"10.21.0.0/25"}) {
			return fmt.Errorf("allocated %v", got)
		}
		return nil
	})
	h.poolReady("mars", ReasonReady, "2 nodes hold 2 CIDRs")
}

// A pool in use cannot disappear: deletion waits, naming the nodes, until
// they release; a CIDR removed from a pool stays with its node and the pool
// says so.
func TestPoolInUseRefusals(t *testing.T) {
	h := newHarness(t)
	h.start(allocator.Config{Mode: allocator.ModeMultiPool})
	p := h.pool("venus", 24, "10.30.0.0/16", "10.31.0.0/16")
	h.node("n1")
	h.request("n1", "venus", 10)
	h.eventually("allocated", func() error {
		if got := h.allocated("n1", "venus"); len(got) != 1 {
			return fmt.Errorf("allocated %v", got)
		}
		return nil
	})
	held := h.allocated("n1", "venus")[0]

	must(t, h.c.Get(h.ctx, client.ObjectKeyFromObject(p), p))
	p.Spec.IPv4.CIDRs = []string{"10.31.0.0/16"}
	must(t, h.c.Update(h.ctx, p))
	h.poolReady("venus", ciliumv2alpha1.PodPoolReasonRemovedCIDRInUse, "n1 ("+held+")")
	if got := h.allocated("n1", "venus"); !slices.Equal(got, []string{held}) {
		t.Fatalf("node lost its CIDR: %v", got)
	}

	must(t, h.c.Delete(h.ctx, p))
	h.poolReady("venus", ciliumv2alpha1.PodPoolReasonDeletionBlocked, "n1")
	h.release("n1", "venus")
	h.eventually("pool gone after release", func() error {
		return isNotFound(h.c.Get(h.ctx, client.ObjectKey{Name: "venus"}, &ciliumv2alpha1.CiliumPodIPPool{}))
	})
}

// I23: pools given to --auto-create-pool exist after start with those
// values; an existing pool is not touched; a bad one is refused by the API
// server with the field named.
func TestI23_AutoCreatePools(t *testing.T) {
	h := newHarness(t)
	p, err := ParseAutoCreatePool("default=ipv4-cidrs:10.10.0.0/16;ipv4-mask-size:27")
	must(t, err)
	must(t, EnsurePools(h.ctx, h.c, []*ciliumv2alpha1.CiliumPodIPPool{p}))
	got := &ciliumv2alpha1.CiliumPodIPPool{}
	must(t, h.c.Get(h.ctx, client.ObjectKey{Name: "default"}, got))
	if got.Spec.IPv4 == nil || !slices.Equal(got.Spec.IPv4.CIDRs, []string{"10.10.0.0/16"}) || got.Spec.IPv4.MaskSize != 27 {
		t.Fatalf("created %+v", got.Spec)
	}
	again, _ := ParseAutoCreatePool("default=ipv4-cidrs:10.99.0.0/16;ipv4-mask-size:24")
	must(t, EnsurePools(h.ctx, h.c, []*ciliumv2alpha1.CiliumPodIPPool{again}))
	must(t, h.c.Get(h.ctx, client.ObjectKey{Name: "default"}, got))
	if got.Spec.IPv4.CIDRs[0] != "10.10.0.0/16" {
		t.Fatal("an existing pool was overwritten")
	}
	bad, _ := ParseAutoCreatePool("bad=ipv4-cidrs:10.10.0.1/16;ipv4-mask-size:27")
	if err := EnsurePools(h.ctx, h.c, []*ciliumv2alpha1.CiliumPodIPPool{bad}); err == nil || !strings.Contains(err.Error(), "spec.ipv4.cidrs") {
		t.Fatalf("bad pool: %v", err)
	}
	if _, err := ParseAutoCreatePool("x=ipv4-cidr:10.0.0.0/8"); err == nil || !strings.Contains(err.Error(), `unknown key "ipv4-cidr"`) {
		t.Fatalf("typo: %v", err)
	}
}
