package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
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
	stop   func()
}

// newHarness empties the cluster's identities, makes a namespace of its
// own (labelled team=blue), runs before (if any) and starts the controller
// with grace and the range r (zero: cluster 0's).
func newHarness(t *testing.T, grace time.Duration, r identity.Range, before ...func(*harness)) *harness {
	testenv.Require(t, env)
	if r.Max == 0 {
		r, _ = identity.RangeOf(0)
	}
	f, err := identity.NewFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: t.Context(), c: env.Client, ns: fmt.Sprintf("id-%d", namespaces.Add(1)), filter: f, r: r}
	h.emptyIdentities()
	h.must(h.c.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns, Labels: map[string]string{"team": "blue"}}}))
	t.Cleanup(func() {
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(h.ns), client.GracePeriodSeconds(0))))
		h.emptyIdentities()
	})
	for _, b := range before {
		b(h)
	}
	h.stop = h.start(grace)
	return h
}

// start runs the controller; the returned func stops it.
func (h *harness) start(grace time.Duration) func() {
	return env.RunManager(h.t, func(mgr ctrl.Manager) error {
		return (&Reconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-identity"),
			Passes:   passes.Settings{Workers: 4, MinPassInterval: 20 * time.Millisecond},
			Settings: identity.Settings{Filter: h.filter, Cluster: "default", Range: h.r}, Grace: grace,
		}).SetupWithManager(mgr)
	}, operator.TrimPods)
}

func (h *harness) emptyIdentities() {
	h.must(client.IgnoreNotFound(h.c.DeleteAllOf(context.Background(), &ciliumv2.CiliumIdentity{})))
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

func (h *harness) pod(name string, lbls map[string]string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	h.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns, Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "agnhost"}}},
	}
	for _, m := range mutate {
		m(p)
	}
	status := p.Status
	h.must(h.c.Create(h.ctx, p))
	if status.Phase != "" {
		p.Status = status
		h.must(h.c.Status().Update(h.ctx, p))
	}
	return p
}

func (h *harness) identities() map[string]ciliumv2.CiliumIdentity {
	h.t.Helper()
	var list ciliumv2.CiliumIdentityList
	h.must(h.c.List(h.ctx, &list))
	out := map[string]ciliumv2.CiliumIdentity{}
	for _, id := range list.Items {
		out[id.Name] = id
	}
	return out
}

// identityOf resolves a pod's identity the way every consumer does: its
// security labels, looked up among the CiliumIdentities.
func (h *harness) identityOf(name string) (identity.Number, error) {
	var pod corev1.Pod
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, &pod); err != nil {
		return 0, err
	}
	var ns corev1.Namespace
	if err := h.c.Get(h.ctx, client.ObjectKey{Name: h.ns}, &ns); err != nil {
		return 0, err
	}
	var list ciliumv2.CiliumIdentityList
	if err := h.c.List(h.ctx, &list); err != nil {
		return 0, err
	}
	set := h.filter.Security(identity.PodLabels(pod.Labels, pod.Namespace, ns.Labels, pod.Spec.ServiceAccountName, "default"))
	n, ok := identity.NewIndex(h.r, list.Items).Lookup(set.Key())
	if !ok {
		return 0, fmt.Errorf("pod %s: no identity for %s", name, set.Key())
	}
	return n, nil
}

func (h *harness) waitIdentity(pod string) identity.Number {
	h.t.Helper()
	var n identity.Number
	h.eventually("identity of "+pod, func() (err error) {
		n, err = h.identityOf(pod)
		return err
	})
	return n
}

func (h *harness) waitGone(n identity.Number) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("identity %d deleted", n), func() error {
		if _, ok := h.identities()[n.String()]; ok {
			return fmt.Errorf("%d still there", n)
		}
		return nil
	})
}

// Replicas share one identity (pod-template-hash does not count); other
// labels give other identities; host-network and finished pods need none.
// Each identity carries its security labels and, as Kubernetes labels,
// those that are valid as such.
func TestNP27_PodsWithTheSameSecurityLabelsShareAnIdentity(t *testing.T) {
	// The finished pod exists before the controller starts: made while it
	// runs, it would be Pending for a moment (create, then status update)
	// and rightly get an identity.
	h := newHarness(t, time.Hour, identity.Range{}, func(h *harness) {
		h.pod("job", map[string]string{"app": "job"}, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	})
	h.pod("web-1", map[string]string{"app": "web", "pod-template-hash": "a1"})
	h.pod("web-2", map[string]string{"app": "web", "pod-template-hash": "b2"})
	h.pod("db", map[string]string{"app": "db"}, func(p *corev1.Pod) { p.Spec.ServiceAccountName = "db-sa" })
	h.pod("agent", map[string]string{"app": "agent"}, func(p *corev1.Pod) { p.Spec.HostNetwork = true })

	web1, web2, db := h.waitIdentity("web-1"), h.waitIdentity("web-2"), h.waitIdentity("db")
	if web1 != web2 || web1 == db {
		t.Errorf("web-1 %d, web-2 %d, db %d: want replicas to share and db to differ", web1, web2, db)
	}
	if !h.r.Contains(web1) || !h.r.Contains(db) {
		t.Errorf("identities %d, %d outside %v", web1, db, h.r)
	}
	// Settle: nothing else comes (no identity for the host-network or
	// finished pod). Only this test's namespace counts: the API server is
	// shared with the other tests.
	time.Sleep(500 * time.Millisecond)
	ids := h.identities()
	maps.DeleteFunc(ids, func(_ string, id ciliumv2.CiliumIdentity) bool {
		return id.SecurityLabels["k8s:"+identity.LabelNamespace] != h.ns
	})
	if len(ids) != 2 {
		var sets []string
		for _, id := range ids {
			sets = append(sets, id.Name+" "+identity.Labels(id.SecurityLabels).Key())
		}
		t.Errorf("%d identities, want 2: %v", len(ids), sets)
	}
	got := ids[db.String()]
	want := map[string]string{
		"k8s:app": "db", "k8s:io.kubernetes.pod.namespace": h.ns, "k8s:io.cilium.k8s.namespace.labels.team": "blue",
		"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": h.ns,
		"k8s:io.cilium.k8s.policy.serviceaccount":                        "db-sa", "k8s:io.cilium.k8s.policy.cluster": "default",
	}
	if !maps.Equal(got.SecurityLabels, want) {
		t.Errorf("db's security labels\n got %v\nwant %v", got.SecurityLabels, want)
	}
	var found ciliumv2.CiliumIdentityList
	h.must(h.c.List(h.ctx, &found, client.MatchingLabels{"app": "web", "io.kubernetes.pod.namespace": h.ns}))
	if len(found.Items) != 1 || found.Items[0].Name != web1.String() {
		t.Errorf("kubectl get ciliumid -l app=web found %d identities, want web's", len(found.Items))
	}
}

// A pod whose labels change gets another identity; the old one, unused,
// stays for the grace period and then goes, while the one in use stays.
// A label set back within the grace period gets its old number.
func TestNP27_LabelChangeGivesANewIdentityAndTheOldExpires(t *testing.T) {
	const grace = 2 * time.Second
	h := newHarness(t, grace, identity.Range{})
	p := h.pod("web", map[string]string{"app": "web", "version": "v1"})
	v1 := h.waitIdentity("web")

	p.Labels["version"] = "v2"
	h.must(h.c.Update(h.ctx, p))
	v2 := h.waitIdentity("web")
	if v2 == v1 {
		t.Fatalf("identity %d kept after the label change", v1)
	}
	changed := time.Now()
	h.waitGone(v1)
	if waited := time.Since(changed); waited < grace-200*time.Millisecond {
		t.Errorf("the old identity went after %v, before the grace period (%v)", waited, grace)
	}
	time.Sleep(2 * grace)
	if _, ok := h.identities()[v2.String()]; !ok {
		t.Fatal("the identity in use was deleted")
	}

	// v2 unused for less than the grace period, then used again: same number.
	h.must(h.c.Delete(h.ctx, p, client.GracePeriodSeconds(0)))
	time.Sleep(grace / 4)
	h.pod("web-again", map[string]string{"app": "web", "version": "v2"})
	if again := h.waitIdentity("web-again"); again != v2 {
		t.Errorf("the label set came back with %d, want its old %d", again, v2)
	}
	time.Sleep(2 * grace)
	if _, ok := h.identities()[v2.String()]; !ok {
		t.Error("the identity used again was deleted")
	}
}

// Namespace labels are part of identity: relabelling the namespace gives
// its pods another identity.
func TestNamespaceLabelChangeGivesANewIdentity(t *testing.T) {
	h := newHarness(t, time.Hour, identity.Range{})
	h.pod("web", map[string]string{"app": "web"})
	before := h.waitIdentity("web")
	var ns corev1.Namespace
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: h.ns}, &ns))
	ns.Labels["team"] = "red"
	h.must(h.c.Update(h.ctx, &ns))
	h.eventually("a new identity for the relabelled namespace", func() error {
		n, err := h.identityOf("web")
		if err == nil && n == before {
			return fmt.Errorf("still %d", n)
		}
		return err
	})
}

// A restarted controller finds every label set's number in the
// CiliumIdentities and writes nothing: no identity is created, changed or
// deleted, so no running pod's identity changes.
func TestIdentitiesSurviveARestartUnchanged(t *testing.T) {
	h := newHarness(t, time.Hour, identity.Range{})
	for i := range 5 {
		h.pod(fmt.Sprintf("p%d", i), map[string]string{"app": fmt.Sprint("app", i%3)})
	}
	numbers := map[string]identity.Number{}
	for i := range 5 {
		name := fmt.Sprintf("p%d", i)
		numbers[name] = h.waitIdentity(name)
	}
	time.Sleep(300 * time.Millisecond)
	before := h.identities()

	// The harness's controller stops; another starts from nothing but the API.
	h.stop()
	h.start(time.Hour)
	h.pod("p5", map[string]string{"app": "app0"}) // an event, so passes run
	if n := h.waitIdentity("p5"); n != numbers["p0"] {
		t.Errorf("a new pod with p0's labels got %d, want %d", n, numbers["p0"])
	}
	time.Sleep(500 * time.Millisecond)
	after := h.identities()
	if len(after) != len(before) {
		t.Errorf("%d identities after the restart, %d before", len(after), len(before))
	}
	for name, id := range before {
		if a, ok := after[name]; !ok || a.ResourceVersion != id.ResourceVersion {
			t.Errorf("identity %s changed or went across the restart", name)
		}
	}
	for pod, n := range numbers {
		if got, err := h.identityOf(pod); err != nil || got != n {
			t.Errorf("pod %s: identity %d (%v) after the restart, %d before", pod, got, err, n)
		}
	}
}

// Identities that exist before the controller (restored from a backup,
// made by another allocator) are adopted: no second number for their
// labels. Of duplicates, the lowest serves and the others expire; numbers
// outside the cluster's range are left alone.
func TestExistingIdentitiesAreAdoptedDuplicatesExpire(t *testing.T) {
	h := newHarness(t, time.Second, identity.Range{}, func(h *harness) {
		// Made before the controller starts.
		set := h.filter.Security(identity.PodLabels(map[string]string{"app": "web"}, h.ns, map[string]string{"team": "blue", "kubernetes.io/metadata.name": h.ns}, "", "default"))
		for _, name := range []string{"40000", "50000", "70000"} {
			h.must(h.c.Create(h.ctx, &ciliumv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: name}, SecurityLabels: set}))
		}
	})
	h.pod("web", map[string]string{"app": "web"})
	if n := h.waitIdentity("web"); n != 40000 {
		t.Errorf("web got %d, want the existing 40000", n)
	}
	h.waitGone(50000)
	time.Sleep(1500 * time.Millisecond)
	ids := h.identities()
	if len(ids) != 2 || ids["40000"].Name == "" || ids["70000"].Name == "" {
		t.Errorf("identities %v, want 40000 (in use) and 70000 (another cluster's)", slices.Collect(maps.Keys(ids)))
	}
}

// With the range full, a new label set gets no number; a Warning Event on
// its pod says why, and it gets one once an unused identity expires.
func TestFullRangeWarnsAndRecovers(t *testing.T) {
	h := newHarness(t, time.Second, identity.Range{Min: 256, Max: 257})
	h.pod("a", map[string]string{"app": "a"})
	h.pod("b", map[string]string{"app": "b"})
	h.waitIdentity("a")
	h.waitIdentity("b")
	h.pod("c", map[string]string{"app": "c"})
	h.eventually("a Warning Event on c", func() error {
		var evs eventsv1.EventList
		if err := h.c.List(h.ctx, &evs, client.InNamespace(h.ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "c" && e.Reason == "IdentityExhausted" && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Note, "256–257") {
				return nil
			}
		}
		return fmt.Errorf("no IdentityExhausted event on c among %d events", len(evs.Items))
	})
	if _, err := h.identityOf("c"); err == nil {
		t.Fatal("c has an identity in a full range")
	}
	h.must(h.c.Delete(h.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "a"}}, client.GracePeriodSeconds(0)))
	h.waitIdentity("c")
}

// The schema refuses what would break identities: a name that is not a
// number, and a change to an identity's labels. Cilium's shape applies.
func TestCiliumIdentitySchema(t *testing.T) {
	testenv.Require(t, env)
	ctx, c := t.Context(), env.Client
	t.Cleanup(func() { _ = client.IgnoreNotFound(c.DeleteAllOf(context.Background(), &ciliumv2.CiliumIdentity{})) })
	bad := &ciliumv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: "web"}, SecurityLabels: map[string]string{"k8s:app": "web"}}
	if err := c.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "metadata.name must be the identity's number") {
		t.Errorf("a non-numeric name: %v", err)
	}
	good := &ciliumv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: "12345"}, SecurityLabels: map[string]string{"k8s:app": "web"}}
	if err := c.Create(ctx, good); err != nil {
		t.Fatalf("Cilium's shape refused: %v", err)
	}
	good.SecurityLabels["k8s:app"] = "db"
	if err := c.Update(ctx, good); err == nil || !strings.Contains(err.Error(), "security-labels is immutable") {
		t.Errorf("changing the labels: %v", err)
	}
}
