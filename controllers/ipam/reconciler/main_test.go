package reconciler

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// harness is one test's cluster: emptied of Nodes, CiliumNodes and pools
// before and after, with the controller running in a manager of its own.
type harness struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
}

func newHarness(t *testing.T) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client}
	h.emptyCluster()
	t.Cleanup(h.emptyCluster)
	return h
}

func clusterPool(v4 ...string) allocator.Config {
	cfg := allocator.Config{Mode: allocator.ModeClusterPool, IPv4: true, ClusterPoolIPv4: allocator.Family{MaskSize: 24}}
	for _, c := range v4 {
		cfg.ClusterPoolIPv4.CIDRs = append(cfg.ClusterPoolIPv4.CIDRs, netip.MustParsePrefix(c))
	}
	return cfg
}

// start runs the controller; the returned func stops it.
func (h *harness) start(cfg allocator.Config, opts ...func(*Reconciler)) (stop func()) {
	h.t.Helper()
	return env.RunManager(h.t, func(mgr ctrl.Manager) error {
		r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-ipam"), Config: cfg, Passes: passes.Settings{Workers: 4}}
		for _, o := range opts {
			o(r)
		}
		return r.SetupWithManager(mgr)
	})
}

func (h *harness) emptyCluster() {
	ctx := context.Background()
	var pools ciliumv2alpha1.CiliumPodIPPoolList
	must(h.t, h.c.List(ctx, &pools))
	for i := range pools.Items {
		p := &pools.Items[i]
		if len(p.Finalizers) > 0 {
			p.Finalizers = nil
			_ = h.c.Update(ctx, p)
		}
		_ = h.c.Delete(ctx, p)
	}
	must(h.t, client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &corev1.Node{})))
	must(h.t, client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &ciliumv2.CiliumNode{})))
	h.eventually("cluster empty", func() error {
		var n corev1.NodeList
		var cn ciliumv2.CiliumNodeList
		var p ciliumv2alpha1.CiliumPodIPPoolList
		must(h.t, h.c.List(ctx, &n))
		must(h.t, h.c.List(ctx, &cn))
		must(h.t, h.c.List(ctx, &p))
		if len(n.Items)+len(cn.Items)+len(p.Items) > 0 {
			return fmt.Errorf("%d nodes, %d CiliumNodes, %d pools left", len(n.Items), len(cn.Items), len(p.Items))
		}
		return nil
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually waits until f passes (see testenv.Eventually).
func (h *harness) eventually(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, f)
}

func (h *harness) node(name string, mutate ...func(*corev1.Node)) *corev1.Node {
	h.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, m := range mutate {
		m(n)
	}
	status := n.Status
	must(h.t, h.c.Create(h.ctx, n))
	if len(status.Addresses) > 0 {
		n.Status = status
		must(h.t, h.c.Status().Update(h.ctx, n))
	}
	return n
}

func withAddress(ip string) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
}

func (h *harness) ciliumNode(name string) (*ciliumv2.CiliumNode, error) {
	cn := &ciliumv2.CiliumNode{}
	err := h.c.Get(h.ctx, client.ObjectKey{Name: name}, cn)
	return cn, err
}

// waitCIDRs waits until the node's CiliumNode holds CIDRs and returns them.
func (h *harness) waitCIDRs(name string) []string {
	h.t.Helper()
	var got []string
	h.eventually("CIDRs of "+name, func() error {
		cn, err := h.ciliumNode(name)
		if err != nil {
			return err
		}
		if len(cn.Spec.IPAM.PodCIDRs) == 0 {
			return fmt.Errorf("no podCIDRs yet (status error %q)", cn.Status.IPAM.OperatorStatus.Error)
		}
		got = cn.Spec.IPAM.PodCIDRs
		return nil
	})
	return got
}

func isNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("still exists")
	}
	return err
}
