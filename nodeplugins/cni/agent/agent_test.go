package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	cniclient "github.com/plexus-net/plexus/nodeplugins/cni/client"
)

func multiPool(pre map[string]int) func(*Config) {
	return func(c *Config) { c.PreAllocate = pre }
}

func TestI17_PreAllocationDefaultRequestsOnlyDefaultPool(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{"default": 8}))
	h.pool("default", []string{"10.10.0.0/16"}, nil)
	h.pool("mars-17", []string{"10.20.0.0/16"}, nil)
	// A node with no pods asks for 8 addresses of default, nothing of mars.
	h.eventuallyEqual("requests of an empty node", "default:8/0", h.requested)
}

func TestI16_RequestWrittenAndADDWaitsForTheController(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{}))
	h.pool("mars-16", []string{"10.21.0.0/16"}, nil)
	p := h.pod(h.ns, "rover", map[string]string{PoolAnnotation: "mars-16"})

	type answer struct {
		al  *cniclient.Allocation
		err error
	}
	done := make(chan answer, 1)
	go func() { al, err := h.add(p); done <- answer{al, err} }()
	// The waiting pod is requested; then "the controller" hands out a CIDR.
	h.eventuallyEqual("request for the pending pod", "mars-16:1/0", h.requested)
	select {
	case a := <-done:
		t.Fatalf("ADD returned before the node had a CIDR: %+v %v", a.al, a.err)
	default:
	}
	h.setAllocated("mars-16", "10.21.3.0/28")
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.al.Pool != "mars-16" || len(a.al.IPs) != 1 || a.al.IPs[0].Gateway != "10.21.3.1" || !strings.HasSuffix(a.al.IPs[0].Address, "/28") {
		t.Errorf("allocation %+v", a.al)
	}
	inCIDR(t, a.al, "10.21.3.0/28")
	h.eventuallyEqual("request once the pod holds its address", "mars-16:1/0", h.requested)
}

func TestI18_RequestFormula(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{"default": 8}))
	h.pool("default", []string{"10.10.0.0/16"}, nil)
	h.setAllocated("default", "10.10.0.0/24")
	for i := range 9 {
		h.mustAdd(h.pod(h.ns, fmt.Sprintf("p%d", i), nil))
	}
	// 9 in use, 0 pending: roundUp(9+0+8, 8) = 24.
	h.eventuallyEqual("requests with 9 pods", "default:24/0", h.requested)
	// A tenth pod not yet through CNI is pending: roundUp(9+1+8, 8) = 24;
	// with 7 more it is roundUp(9+8+8, 8) = 32.
	for i := range 8 {
		h.pod(h.ns, fmt.Sprintf("pending%d", i), nil)
	}
	h.eventuallyEqual("requests with 8 pending pods", "default:32/0", h.requested)
}

func TestI19_DualStackPoolRequestsBothFamilies(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{"dual-19": 4}))
	h.pool("dual-19", []string{"10.22.0.0/16"}, []string{"fd00:22::/112"})
	h.eventuallyEqual("pre-allocation per family", "dual-19:4/4", h.requested)
	h.setAllocated("dual-19", "10.22.0.0/28", "fd00:22::/124")
	p := h.pod(h.ns, "p", map[string]string{PoolAnnotation: "dual-19"})
	al := h.mustAdd(p)
	if len(al.IPs) != 2 {
		t.Fatalf("dual-stack pod got %+v", al.IPs)
	}
	inCIDR(t, al, "10.22.0.0/28", "fd00:22::/124")
	h.eventuallyEqual("one in use per family", "dual-19:8/8", h.requested)
}

func TestI20_UnusedCIDRsGivenBack(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{}))
	h.pool("mars-20", []string{"10.23.0.0/16"}, nil)
	h.setAllocated("mars-20", "10.23.0.0/28", "10.23.0.16/28")
	var pods []*corev1.Pod
	for i := range 3 {
		p := h.pod(h.ns, fmt.Sprintf("p%d", i), map[string]string{PoolAnnotation: "mars-20"})
		inCIDR(t, h.mustAdd(p), "10.23.0.0/28") // the first CIDR fills first
		pods = append(pods, p)
	}
	// 3 needed, 13 left in the first CIDR: the second goes back.
	h.eventuallyEqual("second CIDR released", "mars-20=10.23.0.0/28", h.allocated)
	h.eventuallyEqual("requests", "mars-20:3/0", h.requested)
	// Pods drain: the last CIDR goes back too, and the request with it.
	for _, p := range pods {
		if err := h.c.Delete(h.ctx, p); err != nil {
			t.Fatal(err)
		}
		h.del(p)
	}
	h.eventuallyEqual("all CIDRs released", "", h.allocated)
	h.eventuallyEqual("no requests", "", h.requested)
}

func TestI11_I12_I13_PoolFromPodThenNamespaceThenDefault(t *testing.T) {
	// Pre-allocation keeps each pool's CIDR on the node before any pod uses it.
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{"default": 1, "mars-12": 1, "venus-13": 1}))
	h.pool("default", []string{"10.10.0.0/16"}, nil)
	h.pool("mars-12", []string{"10.24.0.0/16"}, nil)
	h.pool("venus-13", []string{"10.25.0.0/16"}, nil)
	h.setAllocated("default", "10.10.5.0/28")
	h.setAllocated("mars-12", "10.24.5.0/28")
	h.setAllocated("venus-13", "10.25.5.0/28")
	venusNS := h.ns + "-venus"
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: venusNS, Annotations: map[string]string{PoolAnnotation: "venus-13"}}})
	t.Cleanup(func() { _ = h.c.Delete(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: venusNS}}) })

	cases := []struct {
		name, ns string
		ann      map[string]string
		pool     string
		cidr     string
	}{
		{"TestI11_no_annotation", h.ns, nil, "default", "10.10.5.0/28"},
		{"TestI12_pod_annotation", h.ns, map[string]string{PoolAnnotation: "mars-12"}, "mars-12", "10.24.5.0/28"},
		{"TestI13_namespace_annotation", venusNS, nil, "venus-13", "10.25.5.0/28"},
		{"TestI13_pod_annotation_wins", venusNS, map[string]string{PoolAnnotation: "mars-12"}, "mars-12", "10.24.5.0/28"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			al := h.mustAdd(h.pod(c.ns, fmt.Sprintf("p%d", i), c.ann))
			if al.Pool != c.pool {
				t.Errorf("pool %q, want %q", al.Pool, c.pool)
			}
			inCIDR(t, al, c.cidr)
		})
	}
	// A pool that does not exist is named in the error.
	_, err := h.add(h.pod(h.ns, "lost", map[string]string{PoolAnnotation: "pluto"}))
	if err == nil || !strings.Contains(err.Error(), `"pluto"`) {
		t.Errorf("unknown pool: %v", err)
	}
}

// Cilium 1.19's pool selectors: without an annotation, the pool whose
// podSelector (which also matches io.kubernetes.pod.name and
// io.kubernetes.pod.namespace) and namespaceSelector select the pod; both
// must match when both are set; an annotation still wins; a pod that
// several pools select gets no address and the error names them.
func TestPoolSelectors(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{"default": 1, "gold": 1, "team-a": 1, "db-b": 1, "named": 1}))
	sel := func(kv ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{kv[0]: kv[1]}}
	}
	h.pool("default", []string{"10.30.0.0/16"}, nil)
	h.pool("gold", []string{"10.31.0.0/16"}, nil, func(s *ciliumv2alpha1.IPPoolSpec) { s.PodSelector = sel("tier", "gold") })
	h.pool("team-a", []string{"10.32.0.0/16"}, nil, func(s *ciliumv2alpha1.IPPoolSpec) { s.NamespaceSelector = sel("team", "a") })
	h.pool("db-b", []string{"10.33.0.0/16"}, nil, func(s *ciliumv2alpha1.IPPoolSpec) {
		s.PodSelector, s.NamespaceSelector = sel("app", "db"), sel("team", "b")
	})
	h.pool("named", []string{"10.34.0.0/16"}, nil, func(s *ciliumv2alpha1.IPPoolSpec) { s.PodSelector = sel("io.kubernetes.pod.name", "special") })
	for pool, cidr := range map[string]string{"default": "10.30.1.0/28", "gold": "10.31.1.0/28", "team-a": "10.32.1.0/28", "db-b": "10.33.1.0/28", "named": "10.34.1.0/28"} {
		h.setAllocated(pool, cidr)
	}
	nsA, nsB := h.ns+"-a", h.ns+"-b"
	for ns, team := range map[string]string{nsA: "a", nsB: "b"} {
		h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": team}}})
		t.Cleanup(func() { _ = h.c.Delete(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	}
	labelled := func(ns, name string, ann map[string]string, kv ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann, Labels: map[string]string{}},
			Spec: corev1.PodSpec{NodeName: h.node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}}}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
		h.create(p)
		return p
	}
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
		pool string
	}{
		{"no selector matches", labelled(h.ns, "plain", nil), "default"},
		{"podSelector", labelled(h.ns, "gold-pod", nil, "tier", "gold"), "gold"},
		{"namespaceSelector", labelled(nsA, "in-a", nil), "team-a"},
		{"both selectors", labelled(nsB, "db", nil, "app", "db"), "db-b"},
		{"podSelector without its namespaceSelector", labelled(h.ns, "db-elsewhere", nil, "app", "db"), "default"},
		{"synthetic pod name label", labelled(h.ns, "special", nil), "named"},
		{"annotation wins", labelled(nsA, "annotated", map[string]string{PoolAnnotation: "gold"}, "tier", "gold"), "gold"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if al := h.mustAdd(c.pod); al.Pool != c.pool {
				t.Errorf("pool %q, want %q", al.Pool, c.pool)
			}
		})
	}
	_, err := h.add(labelled(nsA, "ambiguous", nil, "tier", "gold"))
	if err == nil || !strings.Contains(err.Error(), "several CiliumPodIPPools (gold, team-a)") {
		t.Errorf("a pod two pools select: %v, want an error naming gold and team-a", err)
	}
	// require-pool-match: a pod no pool selects waits instead of taking the
	// default pool; one a pool selects is served.
	strict := map[string]string{RequirePoolMatchAnnotation: "true"}
	if _, err := h.add(labelled(h.ns, "strict-plain", strict)); err == nil || !strings.Contains(err.Error(), "forbids the default pool") {
		t.Errorf("require-pool-match without a match: %v, want a refusal", err)
	}
	if al := h.mustAdd(labelled(h.ns, "strict-gold", strict, "tier", "gold")); al.Pool != "gold" {
		t.Errorf("require-pool-match with a match: pool %q, want gold", al.Pool)
	}
}

// I15: a CiliumNodeConfig selecting the node by its labels sets the pool of
// pods that name none (ipam-default-ip-pool); of several, the last by name
// wins; an annotation or a pool selector still comes first; configs in
// other namespaces do not count.
func TestI15_PerNodeDefaultPool(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, func(c *Config) {
		c.PreAllocate = map[string]int{"default": 1, "dc1-pool": 1, "dc1-late": 1}
		c.NodeConfigNamespace = "kube-system"
	})
	h.pool("default", []string{"10.40.0.0/16"}, nil)
	h.pool("dc1-pool", []string{"10.41.0.0/16"}, nil)
	h.pool("dc1-late", []string{"10.42.0.0/16"}, nil)
	h.setAllocated("default", "10.40.1.0/28")
	h.setAllocated("dc1-pool", "10.41.1.0/28")
	h.setAllocated("dc1-late", "10.42.1.0/28")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.node, Labels: map[string]string{"topology.kubernetes.io/zone": "dc1"}}}
	h.create(node)
	t.Cleanup(func() { _ = h.c.Delete(context.Background(), node) })
	config := func(ns, name, zone, pool string) {
		c := &ciliumv2.CiliumNodeConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: ciliumv2.CiliumNodeConfigSpec{
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"topology.kubernetes.io/zone": zone}},
			Defaults:     map[string]string{ciliumv2.NodeConfigDefaultIPPool: pool, "bpf-lb-acceleration": "native"},
		}}
		h.create(c)
		t.Cleanup(func() { _ = h.c.Delete(context.Background(), c) })
	}
	config("kube-system", "ip-pool-dc1", "dc1", "dc1-pool")
	config("kube-system", "ip-pool-dc2", "dc2", "default")
	config("default", "zz-elsewhere", "dc1", "default")
	i := 0
	newPodPool := func(ann map[string]string) string {
		i++
		return h.mustAdd(h.pod(h.ns, fmt.Sprintf("i15-%d", i), ann)).Pool
	}
	// The agent's cache sees the config and the Node shortly after.
	h.eventually("pods without annotation use dc1-pool", func() error {
		if p := newPodPool(nil); p != "dc1-pool" {
			return fmt.Errorf("pool %q", p)
		}
		return nil
	})
	if p := newPodPool(map[string]string{PoolAnnotation: "default"}); p != "default" {
		t.Errorf("annotated pod got %q, want default", p)
	}
	config("kube-system", "ip-pool-dc1-late", "dc1", "dc1-late")
	h.eventually("the last config by name wins", func() error {
		if p := newPodPool(nil); p != "dc1-late" {
			return fmt.Errorf("pool %q", p)
		}
		return nil
	})
}

func TestI14_AnnotationChangeAfterCreationChangesNothing(t *testing.T) {
	h := newHarness(t, ModeMultiPool, nil, multiPool(map[string]int{"mars-14": 1, "venus-14": 1}))
	h.pool("mars-14", []string{"10.26.0.0/16"}, nil)
	h.pool("venus-14", []string{"10.27.0.0/16"}, nil)
	h.setAllocated("mars-14", "10.26.0.0/28")
	h.setAllocated("venus-14", "10.27.0.0/28")
	p := h.pod(h.ns, "p", map[string]string{PoolAnnotation: "mars-14"})
	first := h.mustAdd(p)
	p.Annotations[PoolAnnotation] = "venus-14"
	if err := h.c.Update(h.ctx, p); err != nil {
		t.Fatal(err)
	}
	// Wait until the agent's cache holds the new annotation.
	h.eventually("cache sees the new annotation", func() error {
		var got corev1.Pod
		if err := h.agent.client.Get(h.ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, &got); err != nil {
			return err
		}
		if got.Annotations[PoolAnnotation] != "venus-14" {
			return errors.New("old annotation")
		}
		return nil
	})
	again := h.mustAdd(p)
	if again.Pool != "mars-14" || fmt.Sprint(again.IPs) != fmt.Sprint(first.IPs) {
		t.Errorf("after the annotation changed: %+v, want %+v", again, first)
	}
	h.eventuallyEqual("still counted in mars", "mars-14:2/0 venus-14:1/0", h.requested)
}

func TestI4_NotReadyUntilCIDRThenExhaustionNamesPool(t *testing.T) {
	h := newHarness(t, ModeClusterPool, nil, func(c *Config) { c.CIDRWait = time.Second })
	h.eventually("status without CIDR", func() error {
		st, err := h.cni.Status(h.ctx)
		if err == nil && (st.Ready || !strings.Contains(st.Reason, "no pod CIDR")) {
			err = fmt.Errorf("%+v", st)
		}
		return err
	})
	// Without a CIDR an ADD waits, then fails.
	if _, err := h.add(h.pod(h.ns, "early", nil)); err == nil || !strings.Contains(err.Error(), "has no IPv4 CIDR") {
		t.Errorf("ADD without CIDR: %v", err)
	}
	h.setPodCIDRs("10.30.0.0/30") // one address for pods
	h.eventually("ready", func() error {
		st, err := h.cni.Status(h.ctx)
		if err == nil && !st.Ready {
			err = errors.New(st.Reason)
		}
		return err
	})
	al := h.mustAdd(h.pod(h.ns, "one", nil))
	if al.IPs[0].Address != "10.30.0.2/30" || al.IPs[0].Gateway != "10.30.0.1" {
		t.Errorf("got %+v", al.IPs)
	}
	_, err := h.add(h.pod(h.ns, "two", nil))
	var ce *cniclient.Error
	want := fmt.Sprintf(`pool "default" has no free IPv4 address on node %s (1 CIDR, 1 addresses, all in use)`, h.node)
	if !errors.As(err, &ce) || ce.Code != 11 || ce.Message != want {
		t.Errorf("exhausted: %v, want code 11 %q", err, want)
	}
}

func TestGCReleasesAddressesOfGonePodsOnly(t *testing.T) {
	h := newHarness(t, ModeKubernetes, []string{"10.31.0.0/24"}, func(c *Config) {
		c.GCInterval = 100 * time.Millisecond
		c.GCGrace = 3 * time.Second
	})
	keep := h.mustAdd(h.pod(h.ns, "keep", nil))
	gone := h.pod(h.ns, "gone", nil)
	goneAl := h.mustAdd(gone)
	// A pod the API server never heard of (its ADD came first) stays while young.
	ghost, err := h.cni.Allocate(h.ctx, cniclient.AllocateRequest{Key: cniclient.Key{ContainerID: "ghost", IfName: "eth0"}, PodNamespace: h.ns, PodName: "ghost", PodUID: "ghost-uid"})
	if err != nil {
		t.Fatal(err)
	}
	// No kubelet confirms a graceful deletion here: delete at once.
	if err := h.c.Delete(h.ctx, gone, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // several GC passes, all within the grace
	if _, err := h.cni.Check(h.ctx, ghost.Key); err != nil {
		t.Errorf("young allocation collected: %v", err)
	}
	h.eventually("allocation of the deleted pod collected", func() error {
		if _, err := h.cni.Check(h.ctx, goneAl.Key); !cniclient.IsNotFound(err) {
			return fmt.Errorf("still there (%w)", err)
		}
		if _, err := h.cni.Check(h.ctx, ghost.Key); !cniclient.IsNotFound(err) {
			return fmt.Errorf("ghost still there (%w)", err)
		}
		return nil
	})
	if _, err := h.cni.Check(h.ctx, keep.Key); err != nil {
		t.Errorf("allocation of a live pod collected: %v", err)
	}
}

func TestRestartKeepsAllocations(t *testing.T) {
	h := newHarness(t, ModeClusterPool, []string{"10.32.0.0/28"}, nil)
	var pods []*corev1.Pod
	before := map[string]string{}
	for i := range 4 {
		p := h.pod(h.ns, fmt.Sprintf("p%d", i), nil)
		pods = append(pods, p)
		before[p.Name] = h.mustAdd(p).IPs[0].Address
	}
	h.restart()
	h.eventually("ready after restart", func() error {
		st, err := h.cni.Status(h.ctx)
		if err == nil && !st.Ready {
			err = errors.New(st.Reason)
		}
		return err
	})
	for _, p := range pods {
		al, err := h.cni.Check(h.ctx, cniclient.Key{ContainerID: "ctr-" + string(p.UID), IfName: "eth0"})
		if err != nil || al.IPs[0].Address != before[p.Name] {
			t.Errorf("%s after restart: %+v %v, want %s", p.Name, al, err, before[p.Name])
		}
	}
	taken := map[string]bool{}
	for _, a := range before {
		taken[a] = true
	}
	for i := range 9 { // the rest of the /28's 13 addresses
		al := h.mustAdd(h.pod(h.ns, fmt.Sprintf("new%d", i), nil))
		if taken[al.IPs[0].Address] {
			t.Errorf("%s handed out twice", al.IPs[0].Address)
		}
		taken[al.IPs[0].Address] = true
	}
	if _, err := h.add(h.pod(h.ns, "one-too-many", nil)); err == nil {
		t.Error("a 14th address from a /28")
	}
}
