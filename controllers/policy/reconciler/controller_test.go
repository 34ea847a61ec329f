package reconciler

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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/policy/compiler"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/internal/operator"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

var namespaces atomic.Int32

type harness struct {
	t      *testing.T
	ctx    context.Context
	c      client.Client
	ns     string
	filter *identity.Filter
	r      identity.Range
}

// newHarness runs the policy controller on a fresh namespace. Identities
// are made by the test (identity of) as the identity controller would.
func newHarness(t *testing.T) *harness {
	testenv.Require(t, env)
	f, err := identity.NewFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := identity.RangeOf(0)
	h := &harness{t: t, ctx: t.Context(), c: env.Client, ns: fmt.Sprintf("pol-%d", namespaces.Add(1)), filter: f, r: r}
	h.must(h.c.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}))
	t.Cleanup(func() {
		bg := context.Background()
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(bg, &corev1.Pod{}, client.InNamespace(h.ns), client.GracePeriodSeconds(0))))
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(bg, &ciliumv2.CiliumNetworkPolicy{}, client.InNamespace(h.ns))))
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(bg, &ciliumv2.CiliumIdentity{})))
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(bg, &nodesv1alpha1.NodePolicy{})))
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(bg, &nodesv1alpha1.IdentityAddresses{})))
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(bg, &corev1.Node{})))
	})
	return h
}

func (h *harness) start() func() {
	return env.RunManager(h.t, func(mgr ctrl.Manager) error {
		return (&Reconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-policy"),
			Passes:   passes.Settings{Workers: 4, MinPassInterval: 20 * time.Millisecond},
			Settings: identity.Settings{Filter: h.filter, Cluster: "default", Range: h.r}, Mode: compiler.ModeDefault,
		}).SetupWithManager(mgr)
	}, operator.TrimPods)
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) eventually(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, f)
}

func (h *harness) node(name string) {
	h.must(h.c.Create(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}))
}

// pod creates a running pod on node with address ip and the identity of
// its labels (the identity controller's job), returning the identity.
func (h *harness) pod(name, node, ip string, lbls map[string]string, n identity.Number) identity.Number {
	h.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns, Labels: lbls},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "agnhost"}}},
	}
	h.must(h.c.Create(h.ctx, p))
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	h.must(h.c.Status().Update(h.ctx, p))
	var ns corev1.Namespace
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: h.ns}, &ns))
	set := h.filter.PodSet(p, ns.Labels, "default")
	err := h.c.Create(h.ctx, &ciliumv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: n.String()}, SecurityLabels: set})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) apply(manifest string) *ciliumv2.CiliumNetworkPolicy {
	h.t.Helper()
	var p ciliumv2.CiliumNetworkPolicy
	h.must(yaml.UnmarshalStrict([]byte(manifest), &p))
	p.Namespace = h.ns
	h.must(h.c.Create(h.ctx, &p))
	return &p
}

func (h *harness) policy(name string) (*ciliumv2.CiliumNetworkPolicy, *metav1.Condition, *metav1.Condition) {
	h.t.Helper()
	var p ciliumv2.CiliumNetworkPolicy
	h.must(h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, &p))
	return &p, meta.FindStatusCondition(p.Status.Conditions, TypeValid), meta.FindStatusCondition(p.Status.Conditions, conditions.TypeReady)
}

func (h *harness) nodePolicy(name string) (*nodesv1alpha1.NodePolicy, error) {
	var np nodesv1alpha1.NodePolicy
	err := h.c.Get(h.ctx, client.ObjectKey{Name: name}, &np)
	return &np, err
}

// reportProgrammed writes a NodePolicy's status as its node plugin would
// once the datapath enforces the current generation.
func (h *harness) reportProgrammed(node string) {
	h.t.Helper()
	np, err := h.nodePolicy(node)
	h.must(err)
	np.Status.ObservedGeneration = np.Generation
	conditions.Set(&np.Status.Conditions, np.Generation, metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: "Programmed", Message: "test"})
	h.must(h.c.Status().Update(h.ctx, np))
}

// NP-02 and NP-24 at the API level: a policy selecting the backend for
// ingress puts the backend's identity, enforced, with an allow from the
// frontend's identity on 8080, into the NodePolicy of the backend's node
// only; the policy's status is Valid and waits for that node, then is
// Ready once the node reports the generation programmed. A restart
// writes nothing.
func TestNP02_NP24_NodePoliciesAndStatus(t *testing.T) {
	h := newHarness(t)
	h.node("n1")
	h.node("n2")
	backend := h.pod("backend", "n1", "10.0.1.5", map[string]string{"app": "backend"}, 1001)
	frontend := h.pod("frontend", "n2", "10.0.2.7", map[string]string{"app": "frontend"}, 1002)
	stop := h.start()
	h.apply(`
metadata: {name: backend-from-frontend}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`)
	h.eventually("n1's NodePolicy", func() error {
		np, err := h.nodePolicy("n1")
		if err != nil {
			return err
		}
		s := np.Spec
		if len(s.Identities) != 1 || s.Identities[0].Identity != int64(backend) || !s.Identities[0].Ingress.Enforced || s.Identities[0].Egress.Enforced {
			return fmt.Errorf("identities %+v", s.Identities)
		}
		var toFrontend bool
		for _, e := range s.Identities[0].Ingress.Entries {
			for _, ps := range s.PeerSets {
				if ps.Name == e.Peers && slices.Equal(ps.Identities, []int64{int64(frontend)}) && e.Protocol == 6 && e.Port == 8080 && e.EndPort == 8080 && !e.Deny {
					toFrontend = true
				}
			}
		}
		if !toFrontend {
			return fmt.Errorf("no allow from %d on TCP 8080 in %+v", frontend, s)
		}
		return nil
	})
	if _, err := h.nodePolicy("n2"); err == nil {
		t.Error("n2 hosts no selected pod but has a NodePolicy")
	}
	// Every node learns every pod's identity from IdentityAddresses.
	h.eventually("IdentityAddresses", func() error {
		for n, ip := range map[identity.Number]string{backend: "10.0.1.5", frontend: "10.0.2.7"} {
			var ida nodesv1alpha1.IdentityAddresses
			if err := h.c.Get(h.ctx, client.ObjectKey{Name: n.String()}, &ida); err != nil {
				return err
			}
			if ida.Spec.Identity != int64(n) || !slices.Equal(ida.Spec.Addresses, []string{ip}) {
				return fmt.Errorf("%s: %+v", n, ida.Spec)
			}
		}
		return nil
	})
	h.eventually("status waits for n1", func() error {
		p, valid, ready := h.policy("backend-from-frontend")
		if p.Status.ObservedGeneration != p.Generation || valid == nil || valid.Status != metav1.ConditionTrue {
			return fmt.Errorf("generation %d/%d, Valid %+v", p.Status.ObservedGeneration, p.Generation, valid)
		}
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != ReasonProgramming || !strings.Contains(ready.Message, "selects 1 pod on 1 node") || !strings.Contains(ready.Message, "waiting for n1") {
			return fmt.Errorf("Ready %+v", ready)
		}
		return nil
	})
	h.reportProgrammed("n1")
	h.eventually("Ready once n1 enforces it", func() error {
		if _, _, ready := h.policy("backend-from-frontend"); ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != ReasonEnforced {
			return fmt.Errorf("Ready %+v", ready)
		}
		return nil
	})
	// Waiting for n1 was progress, not a problem: no Warning Event.
	var evs eventsv1.EventList
	h.must(h.c.List(h.ctx, &evs, client.InNamespace(h.ns)))
	for _, ev := range evs.Items {
		if ev.Regarding.Name == "backend-from-frontend" && ev.Reason == ReasonProgramming {
			h.t.Errorf("a Warning Event for progress: %s %s", ev.Reason, ev.Note)
		}
	}

	// A restart reads the same world and writes nothing.
	stop()
	np, _ := h.nodePolicy("n1")
	p, _, _ := h.policy("backend-from-frontend")
	h.start()
	time.Sleep(time.Second)
	np2, _ := h.nodePolicy("n1")
	p2, _, _ := h.policy("backend-from-frontend")
	if np2.ResourceVersion != np.ResourceVersion || p2.ResourceVersion != p.ResourceVersion {
		t.Errorf("restart wrote: NodePolicy %s→%s, policy %s→%s", np.ResourceVersion, np2.ResourceVersion, p.ResourceVersion, p2.ResourceVersion)
	}

	// The backend goes away: n1 needs no NodePolicy any more.
	h.must(h.c.Delete(h.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "backend"}}, client.GracePeriodSeconds(0)))
	h.eventually("n1's NodePolicy deleted", func() error {
		if _, err := h.nodePolicy("n1"); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// A rule that needs the L7 proxy is not enforced as written: the policy
// is Valid but not Ready, naming the field; the allow it belongs to is
// left out of the NodePolicy (the port stays closed).
func TestL7RuleIsReportedAndNotOpened(t *testing.T) {
	h := newHarness(t)
	h.node("n1")
	backend := h.pod("backend", "n1", "10.0.1.9", map[string]string{"app": "backend"}, 1011)
	h.start()
	h.apply(`
metadata: {name: l7}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
`)
	h.eventually("status names the rule", func() error {
		_, valid, ready := h.policy("l7")
		if valid == nil || valid.Status != metav1.ConditionTrue {
			return fmt.Errorf("Valid %+v", valid)
		}
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != compiler.ReasonUnsupported || !strings.Contains(ready.Message, "spec.ingress[0].toPorts[0].rules.http") {
			return fmt.Errorf("Ready %+v", ready)
		}
		return nil
	})
	h.eventually("port 80 stays closed", func() error {
		np, err := h.nodePolicy("n1")
		if err != nil {
			return err
		}
		if len(np.Spec.Identities) != 1 || np.Spec.Identities[0].Identity != int64(backend) || !np.Spec.Identities[0].Ingress.Enforced {
			return fmt.Errorf("identities %+v", np.Spec.Identities)
		}
		for _, e := range np.Spec.Identities[0].Ingress.Entries {
			if e.Port <= 80 && e.EndPort >= 80 && (e.Protocol == 6 || e.Protocol == 0) && e.Peers == nodesv1alpha1.AnyPeer {
				return fmt.Errorf("port 80 open to any peer: %+v", e)
			}
		}
		return nil
	})
}
