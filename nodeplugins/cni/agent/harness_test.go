package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	cniclient "github.com/plexus-net/plexus/nodeplugins/cni/client"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

var counter atomic.Int32

// harness is one test's node: its CiliumNode, a namespace for its pods, and
// the agent (restartable) with its socket and state directory.
type harness struct {
	t        *testing.T
	ctx      context.Context
	c        client.Client
	node     string
	ns       string
	cfg      Config
	agent    *Agent
	cni      *cniclient.Client
	stop     func()
	poolsOut []string
}

// newHarness creates the node (with podCIDRs, for cluster-pool tests) and
// starts an agent for it; edit adjusts the agent's Config first.
func newHarness(t *testing.T, mode Mode, podCIDRs []string, edit func(*Config)) *harness {
	testenv.Require(t, env)
	n := counter.Add(1)
	// Unix socket paths are short (108 bytes): no t.TempDir here.
	dir, err := os.MkdirTemp("", "cniag")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &harness{t: t, ctx: t.Context(), c: env.Client, node: fmt.Sprintf("node-%d", n), ns: fmt.Sprintf("cni-%d", n)}
	h.cfg = Config{
		NodeName: h.node, Mode: mode, PreAllocate: map[string]int{},
		SocketPath: filepath.Join(dir, "cni.sock"), StateDir: filepath.Join(dir, "state"),
		GCInterval: time.Hour, GCGrace: time.Hour, CIDRWait: 10 * time.Second, BootID: "test-boot",
	}
	if edit != nil {
		edit(&h.cfg)
	}
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})
	node := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: h.node}}
	node.Spec.IPAM.PodCIDRs = podCIDRs
	h.create(node)
	t.Cleanup(func() {
		_ = h.c.Delete(context.Background(), node)
		_ = h.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})
		for _, p := range h.poolsOut {
			_ = h.c.Delete(context.Background(), &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: p}})
		}
	})
	h.start()
	h.cni = cniclient.New(h.cfg.SocketPath, 30*time.Second)
	return h
}

// start runs an agent in a manager of its own, as the binary does.
func (h *harness) start() {
	h.t.Helper()
	mgr, err := NewManager(env.Config, h.node, ManagerOptions{Scheme: env.Client.Scheme(), MetricsAddr: "0", NodeConfigNamespace: h.cfg.NodeConfigNamespace})
	if err != nil {
		h.t.Fatal(err)
	}
	if h.agent, err = New(mgr, h.cfg); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("agent stopped with %v", err)
		}
		h.stop = func() {}
	}
	h.t.Cleanup(func() { h.stop() })
	h.eventually("the agent serves its socket", func() error {
		_, err := cniclient.New(h.cfg.SocketPath, time.Second).Status(h.ctx)
		return err
	})
}

func (h *harness) restart() {
	h.stop()
	h.start()
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := h.c.Create(h.ctx, obj); err != nil {
		h.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// pool creates a CiliumPodIPPool (removed at the end of the test).
func (h *harness) pool(name string, v4, v6 []string, opts ...func(*ciliumv2alpha1.IPPoolSpec)) {
	h.t.Helper()
	p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if v4 != nil {
		p.Spec.IPv4 = &ciliumv2alpha1.IPPoolFamily{CIDRs: v4, MaskSize: 28}
	}
	if v6 != nil {
		p.Spec.IPv6 = &ciliumv2alpha1.IPPoolFamily{CIDRs: v6, MaskSize: 124}
	}
	for _, o := range opts {
		o(&p.Spec)
	}
	h.create(p)
	h.poolsOut = append(h.poolsOut, name)
}

// pod creates a pod scheduled to the node (envtest has no scheduler or
// kubelet: a pod is only an object).
func (h *harness) pod(ns, name string, annotations map[string]string) *corev1.Pod {
	h.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: h.node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}},
	}
	h.create(p)
	return p
}

// add is the CNI ADD of a pod's eth0, as the plugin sends it.
func (h *harness) add(p *corev1.Pod) (*cniclient.Allocation, error) {
	return h.cni.Allocate(h.ctx, cniclient.AllocateRequest{
		Key:          cniclient.Key{ContainerID: "ctr-" + string(p.UID), IfName: "eth0"},
		PodNamespace: p.Namespace, PodName: p.Name, PodUID: string(p.UID),
	})
}

func (h *harness) mustAdd(p *corev1.Pod) *cniclient.Allocation {
	h.t.Helper()
	al, err := h.add(p)
	if err != nil {
		h.t.Fatalf("ADD %s/%s: %v", p.Namespace, p.Name, err)
	}
	return al
}

func (h *harness) del(p *corev1.Pod) {
	h.t.Helper()
	if err := h.cni.Release(h.ctx, cniclient.Key{ContainerID: "ctr-" + string(p.UID), IfName: "eth0"}); err != nil {
		h.t.Fatalf("DEL %s: %v", p.Name, err)
	}
}

// setAllocated plays the IPAM controller: it sets the CIDRs the node holds
// of pool (none removes the entry).
func (h *harness) setAllocated(pool string, cidrs ...string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n ciliumv2.CiliumNode
		if err := h.c.Get(h.ctx, types.NamespacedName{Name: h.node}, &n); err != nil {
			return err
		}
		al := slices.DeleteFunc(n.Spec.IPAM.Pools.Allocated, func(a ciliumv2.IPAMPoolAllocation) bool { return a.Pool == pool })
		if len(cidrs) > 0 {
			al = append(al, ciliumv2.IPAMPoolAllocation{Pool: pool, CIDRs: cidrs})
		}
		n.Spec.IPAM.Pools.Allocated = al
		return h.c.Update(h.ctx, &n)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) setPodCIDRs(cidrs ...string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n ciliumv2.CiliumNode
		if err := h.c.Get(h.ctx, types.NamespacedName{Name: h.node}, &n); err != nil {
			return err
		}
		n.Spec.IPAM.PodCIDRs = cidrs
		return h.c.Update(h.ctx, &n)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) ciliumNode() *ciliumv2.CiliumNode {
	h.t.Helper()
	var n ciliumv2.CiliumNode
	if err := h.c.Get(h.ctx, types.NamespacedName{Name: h.node}, &n); err != nil {
		h.t.Fatal(err)
	}
	return &n
}

// requested renders spec.ipam.pools.requested as "pool:v4/v6 …".
func (h *harness) requested() string {
	var parts []string
	for _, r := range h.ciliumNode().Spec.IPAM.Pools.Requested {
		parts = append(parts, fmt.Sprintf("%s:%d/%d", r.Pool, r.Needed.IPv4Addrs, r.Needed.IPv6Addrs))
	}
	return strings.Join(parts, " ")
}

// allocated renders spec.ipam.pools.allocated as "pool=cidr,cidr …".
func (h *harness) allocated() string {
	var parts []string
	for _, a := range h.ciliumNode().Spec.IPAM.Pools.Allocated {
		parts = append(parts, a.Pool+"="+strings.Join(a.CIDRs, ","))
	}
	return strings.Join(parts, " ")
}

// eventually waits until f passes (see testenv.Eventually).
func (h *harness) eventually(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, f)
}

// eventuallyEqual waits until get() returns want.
func (h *harness) eventuallyEqual(what string, want string, get func() string) {
	h.t.Helper()
	h.eventually(what, func() error {
		if got := get(); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

// inCIDR fails unless every address of al lies in one of cidrs.
func inCIDR(t *testing.T, al *cniclient.Allocation, cidrs ...string) {
	t.Helper()
	for _, ip := range al.IPs {
		a := netip.MustParsePrefix(ip.Address).Addr()
		ok := false
		for _, c := range cidrs {
			ok = ok || netip.MustParsePrefix(c).Contains(a)
		}
		if !ok {
			t.Errorf("%s is not in %v", ip.Address, cidrs)
		}
	}
}
