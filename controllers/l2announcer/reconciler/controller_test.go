package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

type harness struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
}

func newHarness(t *testing.T) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client}
	h.empty()
	t.Cleanup(h.empty)
	h.start()
	return h
}

func (h *harness) start() func() {
	return env.RunManager(h.t, func(mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-l2announcer"), Passes: passes.Settings{Workers: 4}}).SetupWithManager(mgr)
	})
}

func (h *harness) empty() {
	ctx := context.Background()
	for _, o := range []client.Object{&ciliumv2alpha1.CiliumL2AnnouncementPolicy{}, &corev1.Node{}, &nodesv1alpha1.L2Announcement{}} {
		if err := client.IgnoreNotFound(h.c.DeleteAllOf(ctx, o)); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace("default"), client.MatchingLabels{"test": "l2"})); err != nil {
		h.t.Fatal(err)
	}
	if err := client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &discoveryv1.EndpointSlice{}, client.InNamespace("default"), client.MatchingLabels{"test": "l2"})); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) eventually(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, f)
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) node(name, ip string, lbls map[string]string) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	h.must(h.c.Create(h.ctx, n))
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	h.must(h.c.Status().Update(h.ctx, n))
}

// service makes a LoadBalancer Service holding ip, as LB-IPAM would leave it.
func (h *harness) service(name, ip string, mutate ...func(*corev1.Service)) {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"test": "l2"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}, AllocateLoadBalancerNodePorts: ptr.To(false)}}
	for _, m := range mutate {
		m(s)
	}
	h.must(h.c.Create(h.ctx, s))
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	h.must(h.c.Status().Update(h.ctx, s))
}

func (h *harness) policy(name string, spec ciliumv2alpha1.L2AnnouncementPolicySpec) *ciliumv2alpha1.CiliumL2AnnouncementPolicy {
	p := &ciliumv2alpha1.CiliumL2AnnouncementPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	h.must(h.c.Create(h.ctx, p))
	return p
}

func (h *harness) announcement(node string) (*nodesv1alpha1.L2Announcement, error) {
	a := &nodesv1alpha1.L2Announcement{}
	return a, h.c.Get(h.ctx, client.ObjectKey{Name: node}, a)
}

func (h *harness) serviceCondition(name string) *metav1.Condition {
	s := &corev1.Service{}
	h.must(h.c.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: name}, s))
	return meta.FindStatusCondition(s.Status.Conditions, ServiceConditionType)
}

// The per-node objects carry each address with the same candidate order on
// every candidate; the Service says nobody announces until a node reports,
// then names it.
func TestA3_A9_A20_PerNodeObjectsAndServiceStatus(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11", map[string]string{"role": "worker"})
	h.node("n2", "198.18.0.12", map[string]string{"role": "worker"})
	h.node("cp", "198.18.0.10", map[string]string{"role": "control-plane"})
	h.service("web", "198.51.100.7")
	h.policy("workers", ciliumv2alpha1.L2AnnouncementPolicySpec{LoadBalancerIPs: true, Interfaces: []string{"^eth0$"},
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}}})

	var cands []string
	h.eventually("L2Announcements of n1 and n2", func() error {
		for _, n := range []string{"n1", "n2"} {
			a, err := h.announcement(n)
			if err != nil {
				return err
			}
			if len(a.Spec.Addresses) != 1 || a.Spec.Addresses[0].IP != "198.51.100.7" || len(a.Spec.Addresses[0].Candidates) != 2 || len(a.Spec.Peers) != 2 {
				return fmt.Errorf("%s spec %+v", n, a.Spec)
			}
			if cands != nil && !slices.Equal(cands, a.Spec.Addresses[0].Candidates) {
				return fmt.Errorf("candidate orders differ: %v and %v", cands, a.Spec.Addresses[0].Candidates)
			}
			cands = a.Spec.Addresses[0].Candidates
			if got := a.Spec.Addresses[0].Interfaces; !slices.Equal(got, []string{"^eth0$"}) {
				return fmt.Errorf("interfaces %v", got)
			}
		}
		if _, err := h.announcement("cp"); err == nil {
			return fmt.Errorf("the control-plane node (not selected, A9) has an L2Announcement")
		}
		return nil
	})
	h.eventually("Service says nobody announces yet", func() error {
		c := h.serviceCondition("web")
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonNoAnnouncer {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	// The plugins report: both hear each other, the first candidate announces.
	report := func(node string, live []string, announcing ...string) {
		a, err := h.announcement(node)
		h.must(err)
		a.Status.LivePeers, a.Status.Announcing = live, nil
		for _, ip := range announcing {
			a.Status.Announcing = append(a.Status.Announcing, nodesv1alpha1.L2Announcing{IP: ip, Interfaces: []string{"eth0"}, Since: metav1.Now()})
		}
		h.must(h.c.Status().Update(h.ctx, a))
	}
	report(cands[1], []string{"n1", "n2"})
	report(cands[0], []string{"n1", "n2"}, "198.51.100.7")
	h.eventually("Service names the announcer", func() error {
		c := h.serviceCondition("web")
		if c == nil || c.Status != metav1.ConditionTrue || c.Message != "198.51.100.7 by node "+cands[0]+" on eth0" {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	// The announcer is killed: it cannot clear its report, but its peer no
	// longer hears it and takes over; the Service names only the new one.
	report(cands[1], []string{cands[1]}, "198.51.100.7")
	h.eventually("Service follows the failover", func() error {
		c := h.serviceCondition("web")
		if c == nil || c.Status != metav1.ConditionTrue || c.Message != "198.51.100.7 by node "+cands[1]+" on eth0" {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})

	// A20: deselecting the Service (class of another implementation) removes
	// the address and the condition, and the nodes' objects go away.
	s := &corev1.Service{}
	h.must(h.c.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: "web"}, s))
	h.must(h.c.Delete(h.ctx, s))
	h.eventually("L2Announcements gone with the Service", func() error {
		var l nodesv1alpha1.L2AnnouncementList
		h.must(h.c.List(h.ctx, &l))
		if len(l.Items) != 0 {
			return fmt.Errorf("%d left", len(l.Items))
		}
		return nil
	})
}

func TestA5_A21_A22_PolicyConditions(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11", nil)
	p := h.policy("broken", ciliumv2alpha1.L2AnnouncementPolicySpec{LoadBalancerIPs: true, Interfaces: []string{"eth[0-"},
		ServiceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}})
	cond := func(t string) *metav1.Condition {
		got := &ciliumv2alpha1.CiliumL2AnnouncementPolicy{}
		h.must(h.c.Get(h.ctx, client.ObjectKeyFromObject(p), got))
		return meta.FindStatusCondition(got.Status.Conditions, t)
	}
	h.eventually("bad selector and regex reported", func() error {
		s, r, ready := cond(ciliumv2alpha1.L2PolicyConditionBadServiceSelector), cond(ciliumv2alpha1.L2PolicyConditionBadInterfaceRegex), cond(conditions.TypeReady)
		if s == nil || s.Status != metav1.ConditionTrue || s.Reason != "error" || !strings.Contains(s.Message, "values") {
			return fmt.Errorf("selector condition %+v", s)
		}
		if r == nil || r.Status != metav1.ConditionTrue || !strings.Contains(r.Message, `"eth[0-"`) {
			return fmt.Errorf("regex condition %+v", r)
		}
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonInvalid {
			return fmt.Errorf("Ready %+v", ready)
		}
		return nil
	})
	h.must(h.c.Get(h.ctx, client.ObjectKeyFromObject(p), p))
	p.Spec.ServiceSelector, p.Spec.Interfaces = nil, []string{"^eth"}
	h.must(h.c.Update(h.ctx, p))
	h.eventually("fixed policy clears the conditions", func() error {
		s, r, ready := cond(ciliumv2alpha1.L2PolicyConditionBadServiceSelector), cond(ciliumv2alpha1.L2PolicyConditionBadInterfaceRegex), cond(conditions.TypeReady)
		if s.Status != metav1.ConditionFalse || r.Status != metav1.ConditionFalse || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != p.Generation {
			return fmt.Errorf("%+v %+v %+v", s, r, ready)
		}
		return nil
	})
	// A5 and a policy selecting no node are not Ready, and say why.
	h.policy("nothing", ciliumv2alpha1.L2AnnouncementPolicySpec{})
	h.policy("nobody", ciliumv2alpha1.L2AnnouncementPolicySpec{LoadBalancerIPs: true, NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}}})
	// No spec at all, which Cilium's CRD accepts: the same as an empty one.
	h.must(h.c.Create(h.ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumL2AnnouncementPolicy", "metadata": map[string]any{"name": "nospec"},
	}}))
	for name, reason := range map[string]string{"nothing": ReasonNoAddressTypes, "nobody": ReasonNoNodes, "nospec": ReasonNoAddressTypes} {
		h.eventually(name+" not Ready", func() error {
			got := &ciliumv2alpha1.CiliumL2AnnouncementPolicy{}
			h.must(h.c.Get(h.ctx, client.ObjectKey{Name: name}, got))
			if c := meta.FindStatusCondition(got.Status.Conditions, conditions.TypeReady); c == nil || c.Reason != reason {
				return fmt.Errorf("%+v", c)
			}
			return nil
		})
	}
}

// A27: with externalTrafficPolicy Local only nodes with a ready endpoint are
// candidates; without one the Service says so.
func TestA27_LocalTrafficPolicy(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11", nil)
	h.node("n2", "198.18.0.12", nil)
	h.policy("all", ciliumv2alpha1.L2AnnouncementPolicySpec{LoadBalancerIPs: true})
	h.service("local", "198.51.100.9", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal })
	h.eventually("no candidate without endpoints", func() error {
		c := h.serviceCondition("local")
		if c == nil || c.Reason != ReasonNoCandidate || !strings.Contains(c.Message, "externalTrafficPolicy is Local") {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "local-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "local", "test": "l2"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.1.5"}, NodeName: ptr.To("n2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	h.must(h.c.Create(h.ctx, es))
	h.eventually("only n2 is a candidate", func() error {
		a, err := h.announcement("n2")
		if err != nil {
			return err
		}
		if len(a.Spec.Addresses) != 1 || !slices.Equal(a.Spec.Addresses[0].Candidates, []string{"n2"}) {
			return fmt.Errorf("%+v", a.Spec)
		}
		if _, err := h.announcement("n1"); err == nil {
			return fmt.Errorf("n1 has an L2Announcement")
		}
		return nil
	})
}

// A restarted controller writes nothing when nothing changed.
func TestRestartWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.node("n1", "198.18.0.11", nil)
	h.node("n2", "198.18.0.12", nil)
	h.policy("all", ciliumv2alpha1.L2AnnouncementPolicySpec{LoadBalancerIPs: true})
	h.service("a", "198.51.100.1")
	h.service("b", "198.51.100.2")
	h.eventually("settled", func() error {
		for _, s := range []string{"a", "b"} {
			if c := h.serviceCondition(s); c == nil {
				return fmt.Errorf("%s has no condition", s)
			}
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // let the last pass's writes land
	versions := func() map[string]string {
		out := map[string]string{}
		var l nodesv1alpha1.L2AnnouncementList
		h.must(h.c.List(h.ctx, &l))
		for _, a := range l.Items {
			out["l2a/"+a.Name] = a.ResourceVersion
		}
		var s corev1.ServiceList
		h.must(h.c.List(h.ctx, &s, client.InNamespace("default"), client.MatchingLabels{"test": "l2"}))
		for _, x := range s.Items {
			out["svc/"+x.Name] = x.ResourceVersion
		}
		return out
	}
	before := versions()
	stop := h.start() // a second controller, as after a restart
	time.Sleep(2 * time.Second)
	stop()
	if after := versions(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a restart wrote: %v -> %v", before, after)
	}
}
