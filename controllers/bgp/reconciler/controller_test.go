package reconciler

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/bgp/planner"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/passes"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// secretNS is the configured secrets namespace; otherNS holds look-alikes
// that must not count (B21).
const (
	secretNS = "bgp-secrets"
	otherNS  = "default"
)

type harness struct {
	t    *testing.T
	ctx  context.Context
	c    client.Client
	mode string
	pool netip.Prefix
}

func newHarness(t *testing.T) *harness {
	testenv.Require(t, env)
	h := &harness{t: t, ctx: t.Context(), c: env.Client, mode: planner.RouterIDDefault}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: secretNS}}
	if err := h.c.Create(h.ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	h.empty()
	t.Cleanup(h.empty)
	return h
}

// start runs the controller as its binary does: its own cache options, one
// manager. The returned func stops it; the end of the test does too.
func (h *harness) start() (stop func()) {
	h.t.Helper()
	opts := ctrl.Options{
		Scheme:                 h.c.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	CacheOptions(secretNS)(&opts)
	mgr, err := ctrl.NewManager(env.Config, opts)
	h.must(err)
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("plexus-bgp"), SecretNamespace: secretNS,
		RouterIDMode: h.mode, RouterIDPool: h.pool, Passes: passes.Settings{Workers: 4}}
	h.must(r.SetupWithManager(mgr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) empty() {
	ctx := context.Background()
	for _, o := range []client.Object{&ciliumv2.CiliumBGPClusterConfig{}, &ciliumv2.CiliumBGPPeerConfig{},
		&ciliumv2.CiliumBGPNodeConfigOverride{}, &ciliumv2.CiliumBGPNodeConfig{}, &ciliumv2alpha1.CiliumBGPPeeringPolicy{}, &corev1.Node{}} {
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, o)))
	}
	for _, ns := range []string{secretNS, otherNS} {
		h.must(client.IgnoreNotFound(h.c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns), client.MatchingLabels{"test": "bgp"})))
	}
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

func (h *harness) node(name, ip string, lbls map[string]string) {
	h.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	h.must(h.c.Create(h.ctx, n))
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	h.must(h.c.Status().Update(h.ctx, n))
}

func (h *harness) label(node string, lbls map[string]string) {
	h.t.Helper()
	n := &corev1.Node{}
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: node}, n))
	n.Labels = lbls
	h.must(h.c.Update(h.ctx, n))
}

// instance65000 is the seed's example: two peers sharing PeerConfig
// cilium-peer.
func instance65000() []ciliumv2.CiliumBGPInstance {
	ref := &ciliumv2.PeerConfigReference{Name: "cilium-peer"}
	return []ciliumv2.CiliumBGPInstance{{
		Name: "instance-65000", LocalASN: ptr.To[int64](65000),
		Peers: []ciliumv2.CiliumBGPPeer{
			{Name: "peer-65000-tor1", PeerAddress: ptr.To("198.18.0.1"), PeerASN: ptr.To[int64](65000), PeerConfigRef: ref},
			{Name: "peer-65000-tor2", PeerAddress: ptr.To("198.18.0.2"), PeerASN: ptr.To[int64](65000), PeerConfigRef: ref},
		},
	}}
}

func (h *harness) clusterConfig(name string, sel *metav1.LabelSelector) *ciliumv2.CiliumBGPClusterConfig {
	h.t.Helper()
	c := &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: ciliumv2.CiliumBGPClusterConfigSpec{NodeSelector: sel, BGPInstances: instance65000()}}
	h.must(h.c.Create(h.ctx, c))
	return c
}

func (h *harness) peerConfig(name string, secret *string) {
	h.t.Helper()
	h.must(h.c.Create(h.ctx, &ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{AuthSecretRef: secret}}))
}

func (h *harness) secret(ns, name string, data map[string][]byte) {
	h.t.Helper()
	h.must(h.c.Create(h.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"test": "bgp"}}, Data: data}))
}

func rack(r string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"rack": r}}
}

func (h *harness) nodeConfig(name string) (*ciliumv2.CiliumBGPNodeConfig, error) {
	nc := &ciliumv2.CiliumBGPNodeConfig{}
	return nc, h.c.Get(h.ctx, client.ObjectKey{Name: name}, nc)
}

// nodeConfigs are the names of the node configs that exist.
func (h *harness) nodeConfigs() []string {
	h.t.Helper()
	var l ciliumv2.CiliumBGPNodeConfigList
	h.must(h.c.List(h.ctx, &l))
	var out []string
	for _, nc := range l.Items {
		out = append(out, nc.Name)
	}
	return out
}

func (h *harness) waitNodeConfigs(want ...string) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("node configs %v", want), func() error {
		if got := h.nodeConfigs(); !slices.Equal(got, want) {
			return fmt.Errorf("node configs %v", got)
		}
		return nil
	})
}

func (h *harness) cluster(name string) *ciliumv2.CiliumBGPClusterConfig {
	h.t.Helper()
	c := &ciliumv2.CiliumBGPClusterConfig{}
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: name}, c))
	return c
}

func (h *harness) peer(name string) *ciliumv2.CiliumBGPPeerConfig {
	h.t.Helper()
	p := &ciliumv2.CiliumBGPPeerConfig{}
	h.must(h.c.Get(h.ctx, client.ObjectKey{Name: name}, p))
	return p
}

// waitCondition waits until the condition of type t on the object get
// returns is current and has status s and a message containing msg.
func (h *harness) waitCondition(what string, get func() (int64, []metav1.Condition), t string, s metav1.ConditionStatus, msg string) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%s: %s=%s %q", what, t, s, msg), func() error {
		gen, conds := get()
		c := meta.FindStatusCondition(conds, t)
		if c == nil || c.ObservedGeneration != gen || c.Status != s || !strings.Contains(c.Message, msg) {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
}

func (h *harness) clusterConds(name string) func() (int64, []metav1.Condition) {
	return func() (int64, []metav1.Condition) {
		c := h.cluster(name)
		return c.Generation, c.Status.Conditions
	}
}

func (h *harness) peerConds(name string) func() (int64, []metav1.Condition) {
	return func() (int64, []metav1.Condition) {
		p := h.peer(name)
		return p.Generation, p.Status.Conditions
	}
}

// versions are the resourceVersions of everything the controller writes.
func (h *harness) versions() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	var ncs ciliumv2.CiliumBGPNodeConfigList
	var ccs ciliumv2.CiliumBGPClusterConfigList
	var pcs ciliumv2.CiliumBGPPeerConfigList
	h.must(h.c.List(h.ctx, &ncs))
	h.must(h.c.List(h.ctx, &ccs))
	h.must(h.c.List(h.ctx, &pcs))
	for _, o := range ncs.Items {
		out["node/"+o.Name] = o.ResourceVersion
	}
	for _, o := range ccs.Items {
		out["cluster/"+o.Name] = o.ResourceVersion
	}
	for _, o := range pcs.Items {
		out["peer/"+o.Name] = o.ResourceVersion
	}
	return out
}

// B2: a config selecting two of three nodes gives those two a node config
// named after them, with the config's instances and peers, the node's IPv4
// address as router ID, and a controller reference to the config. All three
// seed conditions are present, False, and the status counts the nodes.
func TestB2_B45_NodeConfigPerSelectedNode(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", map[string]string{"rack": "0"})
	h.node("n2", "198.18.0.12", map[string]string{"rack": "0"})
	h.node("n3", "198.18.0.13", map[string]string{"rack": "1"})
	h.peerConfig("cilium-peer", nil)
	cc := h.clusterConfig("cilium-bgp", rack("0"))
	h.waitNodeConfigs("n1", "n2")

	want := h.cluster("cilium-bgp").Spec.BGPInstances // as the API server defaulted them
	for _, name := range []string{"n1", "n2"} {
		nc, err := h.nodeConfig(name)
		h.must(err)
		if len(nc.Spec.BGPInstances) != 1 {
			t.Fatalf("%s: instances %+v", name, nc.Spec.BGPInstances)
		}
		got, w := nc.Spec.BGPInstances[0], want[0]
		if got.Name != w.Name || *got.LocalASN != *w.LocalASN || got.LocalPort != nil || len(got.Peers) != len(w.Peers) {
			t.Fatalf("%s: instance %+v, want %+v", name, got, w)
		}
		for i, p := range got.Peers {
			wp := w.Peers[i]
			if p.Name != wp.Name || *p.PeerAddress != *wp.PeerAddress || *p.PeerASN != *wp.PeerASN ||
				*p.PeerConfigRef != *wp.PeerConfigRef || p.LocalAddress != nil {
				t.Fatalf("%s: peer %+v, want %+v", name, p, wp)
			}
		}
		if wantID := map[string]string{"n1": "198.18.0.11", "n2": "198.18.0.12"}[name]; got.RouterID == nil || *got.RouterID != wantID {
			t.Fatalf("%s: router ID %v, want %s", name, got.RouterID, wantID)
		}
		owner := metav1.GetControllerOf(nc)
		if owner == nil || owner.Kind != "CiliumBGPClusterConfig" || owner.Name != "cilium-bgp" || owner.UID != cc.UID ||
			owner.APIVersion != "cilium.io/v2" {
			t.Fatalf("%s: controller reference %+v", name, owner)
		}
	}
	h.eventually("status", func() error {
		c := h.cluster("cilium-bgp")
		if c.Status.ObservedGeneration != c.Generation || c.Status.Nodes != 2 || c.Status.PeersTotal != 4 {
			return fmt.Errorf("status %+v", c.Status)
		}
		for _, typ := range []string{ciliumv2.BGPClusterConditionNoMatchingNode, ciliumv2.BGPClusterConditionMissingPeerConfigs,
			ciliumv2.BGPClusterConditionConflicting} {
			if cond := meta.FindStatusCondition(c.Status.Conditions, typ); cond == nil || cond.Status != metav1.ConditionFalse {
				return fmt.Errorf("%s: %+v", typ, cond)
			}
		}
		return nil
	})
}

// B3: no nodeSelector selects every node.
func TestB3_EmptyNodeSelector(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", nil)
	h.node("n2", "198.18.0.12", map[string]string{"rack": "1"})
	h.node("n3", "198.18.0.13", nil)
	h.clusterConfig("all", nil)
	h.waitNodeConfigs("n1", "n2", "n3")
}

// B4: a selector matching nothing sets NoMatchingNode True with the seed's
// message and writes no node config; labelling a node turns it False and
// the node gets its config.
func TestB4_NoMatchingNode(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", map[string]string{"rack": "0"})
	h.clusterConfig("rack-9", rack("9"))
	h.waitCondition("rack-9", h.clusterConds("rack-9"), ciliumv2.BGPClusterConditionNoMatchingNode, metav1.ConditionTrue,
		"No node matches spec.nodeSelector")
	if got := h.nodeConfigs(); len(got) != 0 {
		t.Fatalf("node configs %v", got)
	}
	h.waitCondition("rack-9", h.clusterConds("rack-9"), conditions.TypeReady, metav1.ConditionFalse, MessageNoMatchingNode)
	h.label("n1", map[string]string{"rack": "9"})
	h.waitCondition("rack-9", h.clusterConds("rack-9"), ciliumv2.BGPClusterConditionNoMatchingNode, metav1.ConditionFalse, "")
	h.waitNodeConfigs("n1")
}

// B5: a peerConfigRef to a missing PeerConfig sets MissingPeerConfigs True
// naming it; creating it clears the condition.
func TestB5_MissingPeerConfigs(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", nil)
	h.clusterConfig("c", nil)
	h.waitCondition("c", h.clusterConds("c"), ciliumv2.BGPClusterConditionMissingPeerConfigs, metav1.ConditionTrue,
		"Referenced CiliumBGPPeerConfig(s) are missing: [cilium-peer]")
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "[cilium-peer]")
	h.peerConfig("cilium-peer", nil)
	h.waitCondition("c", h.clusterConds("c"), ciliumv2.BGPClusterConditionMissingPeerConfigs, metav1.ConditionFalse, "")
}

// B6: a second config selecting an already selected node changes no node
// config and says which config it conflicts with; the node keeps the first
// config's node config. When the first goes, the second takes over (and
// becomes the owner).
func TestB6_ConflictingClusterConfig(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", map[string]string{"rack": "0", "bgp": "true"})
	h.node("n2", "198.18.0.12", map[string]string{"rack": "0"})
	h.node("n3", "198.18.0.13", map[string]string{"bgp": "true"})
	h.peerConfig("cilium-peer", nil)
	// Names in creation order, so the winner does not depend on two
	// creations falling into the same second.
	first := h.clusterConfig("a-rack-0", rack("0"))
	h.waitNodeConfigs("n1", "n2")
	h.waitCondition("first", h.clusterConds("a-rack-0"), ciliumv2.BGPClusterConditionConflicting, metav1.ConditionFalse, "")
	before := h.versions()

	second := &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "b-bgp"},
		Spec: ciliumv2.CiliumBGPClusterConfigSpec{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bgp": "true"}},
			BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "other", LocalASN: ptr.To[int64](65100)}}}}
	h.must(h.c.Create(h.ctx, second))
	h.waitCondition("second", h.clusterConds("b-bgp"), ciliumv2.BGPClusterConditionConflicting, metav1.ConditionTrue,
		"Selecting the same node(s) with ClusterConfig(s): [a-rack-0]")
	h.waitCondition("second", h.clusterConds("b-bgp"), conditions.TypeReady, metav1.ConditionFalse, "a-rack-0")
	if c := h.cluster("b-bgp"); c.Status.Nodes != 0 {
		t.Fatalf("second config applied to %d nodes", c.Status.Nodes)
	}
	after := h.versions()
	for k, v := range before {
		if strings.HasPrefix(k, "node/") && after[k] != v {
			t.Fatalf("%s changed: %s → %s", k, v, after[k])
		}
	}
	if got := h.nodeConfigs(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("node configs %v: n3 must not get the conflicting config", got)
	}
	if c := h.cluster("a-rack-0"); meta.IsStatusConditionTrue(c.Status.Conditions, ciliumv2.BGPClusterConditionConflicting) {
		t.Fatal("the first config reports the conflict")
	}

	h.must(h.c.Delete(h.ctx, first))
	h.eventually("the second config takes n1 and n3", func() error {
		for _, n := range []string{"n1", "n3"} {
			nc, err := h.nodeConfig(n)
			if err != nil {
				return err
			}
			if o := metav1.GetControllerOf(nc); o == nil || o.UID != second.UID || nc.Spec.BGPInstances[0].Name != "other" {
				return fmt.Errorf("%s: owner %+v, spec %+v", n, o, nc.Spec)
			}
		}
		if _, err := h.nodeConfig("n2"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("n2's node config is still there (%w)", err)
		}
		return nil
	})
	h.waitCondition("second", h.clusterConds("b-bgp"), ciliumv2.BGPClusterConditionConflicting, metav1.ConditionFalse, "")
}

// B7, B21: authSecretRef to a Secret the secrets namespace lacks sets
// MissingAuthSecret True (a Warning Event says so); one of that name in
// another namespace, or one without the password key, does not help; the
// right one clears it. Without authSecretRef the condition is False.
func TestB7_B21_MissingAuthSecret(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.peerConfig("cilium-peer", ptr.To("bgp-auth"))
	h.peerConfig("no-auth", nil)
	h.waitCondition("cilium-peer", h.peerConds("cilium-peer"), ciliumv2.BGPPeerConditionMissingAuthSecret, metav1.ConditionTrue,
		secretNS+"/bgp-auth is missing")
	h.waitCondition("cilium-peer", h.peerConds("cilium-peer"), conditions.TypeReady, metav1.ConditionFalse, "bgp-auth")
	h.waitCondition("no-auth", h.peerConds("no-auth"), ciliumv2.BGPPeerConditionMissingAuthSecret, metav1.ConditionFalse, "not set")
	h.waitCondition("no-auth", h.peerConds("no-auth"), conditions.TypeReady, metav1.ConditionTrue, "")
	h.eventually("Warning Event", func() error {
		var evs eventsv1.EventList
		h.must(h.c.List(h.ctx, &evs))
		for _, e := range evs.Items {
			if e.Regarding.Name == "cilium-peer" && e.Reason == ReasonMissingAuthSecret && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("no MissingAuthSecret event among %d", len(evs.Items))
	})

	// B21: the same name elsewhere does not count. The probe's status
	// shows that a pass ran after the Secret was created.
	h.secret(otherNS, "bgp-auth", map[string][]byte{"password": []byte("s3cret")})
	h.peerConfig("probe", nil)
	h.waitCondition("probe", h.peerConds("probe"), ciliumv2.BGPPeerConditionMissingAuthSecret, metav1.ConditionFalse, "")
	if c := meta.FindStatusCondition(h.peer("cilium-peer").Status.Conditions, ciliumv2.BGPPeerConditionMissingAuthSecret); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("a Secret in %s counted: %+v", otherNS, c)
	}

	h.secret(secretNS, "bgp-auth", map[string][]byte{"user": []byte("x")})
	h.waitCondition("cilium-peer", h.peerConds("cilium-peer"), ciliumv2.BGPPeerConditionMissingAuthSecret, metav1.ConditionTrue,
		`has no key "password"`)
	s := &corev1.Secret{}
	h.must(h.c.Get(h.ctx, client.ObjectKey{Namespace: secretNS, Name: "bgp-auth"}, s))
	s.Data["password"] = []byte("s3cret")
	h.must(h.c.Update(h.ctx, s))
	h.waitCondition("cilium-peer", h.peerConds("cilium-peer"), ciliumv2.BGPPeerConditionMissingAuthSecret, metav1.ConditionFalse, "holds the password")
	h.waitCondition("cilium-peer", h.peerConds("cilium-peer"), conditions.TypeReady, metav1.ConditionTrue, "")
}

// routerIDs are the node configs' router IDs, node → ID.
func (h *harness) routerIDs() map[string]string {
	h.t.Helper()
	var l ciliumv2.CiliumBGPNodeConfigList
	h.must(h.c.List(h.ctx, &l))
	out := map[string]string{}
	for _, nc := range l.Items {
		if id := nc.Spec.BGPInstances[0].RouterID; id != nil {
			out[nc.Name] = *id
		}
	}
	return out
}

// B47: in ip-pool mode every instance gets a distinct router ID from the
// pool; a restart of the controller keeps them (and writes nothing), and a
// new node gets a free one without moving the others.
func TestB47_RouterIDPoolUniqueAndStable(t *testing.T) {
	h := newHarness(t)
	h.mode, h.pool = planner.RouterIDIPPool, netip.MustParsePrefix("10.0.0.0/24")
	stop := h.start()
	for i, n := range []string{"n1", "n2", "n3"} {
		h.node(n, fmt.Sprintf("198.18.0.%d", 11+i), nil)
	}
	h.peerConfig("cilium-peer", nil)
	h.clusterConfig("c", nil)
	h.waitNodeConfigs("n1", "n2", "n3")
	ids := h.routerIDs()
	seen := map[string]bool{}
	for n, id := range ids {
		if !h.pool.Contains(netip.MustParseAddr(id)) || seen[id] {
			t.Fatalf("%s: router ID %s not a distinct address of the pool: %v", n, id, ids)
		}
		seen[id] = true
	}
	if len(ids) != 3 {
		t.Fatalf("router IDs %v", ids)
	}
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "waiting for node status")
	time.Sleep(time.Second) // let the last pass finish
	before := h.versions()
	stop()
	h.start()
	time.Sleep(2 * time.Second)
	if after := h.versions(); !maps.Equal(after, before) {
		t.Fatalf("restart wrote: before %v after %v", before, after)
	}
	// Deleting n1 frees its ID; a new node may take it, but n2 and n3 keep
	// theirs.
	h.must(h.c.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}))
	h.node("n4", "198.18.0.14", nil)
	h.waitNodeConfigs("n2", "n3", "n4")
	now := h.routerIDs()
	if now["n2"] != ids["n2"] || now["n3"] != ids["n3"] || now["n4"] == now["n2"] || now["n4"] == now["n3"] ||
		!h.pool.Contains(netip.MustParseAddr(now["n4"])) {
		t.Fatalf("router IDs before %v, after %v", ids, now)
	}
}

// B48, B49: a node's override sets its instance's router ID, local ASN and
// port and a peer's local address; other nodes keep the config's values.
func TestB13_B48_B49_Override(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", nil)
	h.node("n2", "198.18.0.12", nil)
	h.peerConfig("cilium-peer", nil)
	h.clusterConfig("c", nil)
	h.waitNodeConfigs("n1", "n2")
	h.must(h.c.Create(h.ctx, &ciliumv2.CiliumBGPNodeConfigOverride{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: ciliumv2.CiliumBGPNodeConfigOverrideSpec{BGPInstances: []ciliumv2.CiliumBGPNodeConfigInstanceOverride{{
			Name: "instance-65000", RouterID: ptr.To("192.168.10.1"), LocalASN: ptr.To[int64](65010), LocalPort: ptr.To[int32](1790),
			Peers: []ciliumv2.CiliumBGPNodeConfigPeerOverride{{Name: "peer-65000-tor2", LocalAddress: ptr.To("198.18.0.111")}},
		}}}}))
	h.eventually("n1 overridden", func() error {
		nc, err := h.nodeConfig("n1")
		if err != nil {
			return err
		}
		i := nc.Spec.BGPInstances[0]
		if i.RouterID == nil || *i.RouterID != "192.168.10.1" || *i.LocalASN != 65010 || i.LocalPort == nil || *i.LocalPort != 1790 ||
			i.Peers[0].LocalAddress != nil || i.Peers[1].LocalAddress == nil || *i.Peers[1].LocalAddress != "198.18.0.111" {
			return fmt.Errorf("n1 instance %+v", i)
		}
		return nil
	})
	nc, err := h.nodeConfig("n2")
	h.must(err)
	if i := nc.Spec.BGPInstances[0]; *i.RouterID != "198.18.0.12" || *i.LocalASN != 65000 || i.LocalPort != nil {
		t.Fatalf("n2 instance %+v", i)
	}
}

// B51: an override named after no node, or naming instances and peers the
// config does not have, changes nothing; the cluster config's Ready says
// which names match nothing.
func TestB51_OverrideNameMatching(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", nil)
	h.peerConfig("cilium-peer", nil)
	h.clusterConfig("c", nil)
	h.waitNodeConfigs("n1")
	nc, err := h.nodeConfig("n1")
	h.must(err)
	spec := nc.Spec
	ov := func(node, instance, peer string) {
		h.must(h.c.Create(h.ctx, &ciliumv2.CiliumBGPNodeConfigOverride{ObjectMeta: metav1.ObjectMeta{Name: node},
			Spec: ciliumv2.CiliumBGPNodeConfigOverrideSpec{BGPInstances: []ciliumv2.CiliumBGPNodeConfigInstanceOverride{{
				Name: instance, RouterID: ptr.To("192.168.10.9"), LocalASN: ptr.To[int64](65099),
				Peers: []ciliumv2.CiliumBGPNodeConfigPeerOverride{{Name: peer, LocalAddress: ptr.To("198.18.0.99")}},
			}}}}))
	}
	ov("no-such-node", "instance-65000", "peer-65000-tor1")
	ov("n1", "instance-other", "peer-65000-tor1")
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "override instance instance-other")
	nc, err = h.nodeConfig("n1")
	h.must(err)
	if !equality.Semantic.DeepEqual(nc.Spec, spec) {
		t.Fatalf("n1 changed: %+v", nc.Spec)
	}
	// A matching instance with an unknown peer: the instance part applies,
	// the peer part does not.
	h.must(h.c.Delete(h.ctx, &ciliumv2.CiliumBGPNodeConfigOverride{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}))
	h.eventually("override gone from the cache", func() error {
		err := h.c.Get(h.ctx, client.ObjectKey{Name: "n1"}, &ciliumv2.CiliumBGPNodeConfigOverride{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %w", err)
		}
		return nil
	})
	ov("n1", "instance-65000", "peer-unknown")
	h.eventually("n1 instance overridden, peers not", func() error {
		nc, err := h.nodeConfig("n1")
		if err != nil {
			return err
		}
		i := nc.Spec.BGPInstances[0]
		if *i.LocalASN != 65099 || i.Peers[0].LocalAddress != nil || i.Peers[1].LocalAddress != nil {
			return fmt.Errorf("n1 instance %+v", i)
		}
		return nil
	})
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "override peer instance-65000/peer-unknown")
}

// B66 (controller half): a node that loses the selecting label, or goes
// away, loses its node config; deleting the cluster config deletes the rest
// (the controller does, not only the garbage collector).
func TestB66_UnselectedNodeLosesNodeConfig(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", map[string]string{"rack": "0"})
	h.node("n2", "198.18.0.12", map[string]string{"rack": "0"})
	h.node("n3", "198.18.0.13", map[string]string{"rack": "0"})
	h.peerConfig("cilium-peer", nil)
	cc := h.clusterConfig("c", rack("0"))
	h.waitNodeConfigs("n1", "n2", "n3")
	h.label("n1", map[string]string{"rack": "0-maintenance"})
	h.waitNodeConfigs("n2", "n3")
	h.must(h.c.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}))
	h.waitNodeConfigs("n3")
	h.eventually("node count", func() error {
		if c := h.cluster("c"); c.Status.Nodes != 1 {
			return fmt.Errorf("nodes %d", c.Status.Nodes)
		}
		return nil
	})
	h.must(h.c.Delete(h.ctx, cc))
	h.waitNodeConfigs()
}

// A restart of the controller writes nothing: every object keeps its
// resourceVersion.
func TestRestartWritesNothing(t *testing.T) {
	h := newHarness(t)
	stop := h.start()
	h.node("n1", "198.18.0.11", map[string]string{"rack": "0"})
	h.node("n2", "198.18.0.12", map[string]string{"rack": "0"})
	h.peerConfig("cilium-peer", ptr.To("bgp-auth"))
	h.clusterConfig("c", rack("0"))
	h.clusterConfig("none", rack("9"))
	h.waitNodeConfigs("n1", "n2")
	h.waitCondition("none", h.clusterConds("none"), ciliumv2.BGPClusterConditionNoMatchingNode, metav1.ConditionTrue, "")
	h.waitCondition("peer", h.peerConds("cilium-peer"), ciliumv2.BGPPeerConditionMissingAuthSecret, metav1.ConditionTrue, "")
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "waiting")
	time.Sleep(time.Second) // let the last pass finish
	before := h.versions()
	stop()
	h.start()
	time.Sleep(2 * time.Second)
	if after := h.versions(); !maps.Equal(after, before) {
		t.Fatalf("restart wrote: before %v after %v", before, after)
	}
}

// report writes a node's status as its BGP agent would: the states of the
// peers of its one instance, in order.
func (h *harness) report(node string, states ...ciliumv2.BGPPeeringState) {
	h.t.Helper()
	nc, err := h.nodeConfig(node)
	h.must(err)
	inst := nc.Spec.BGPInstances[0]
	st := ciliumv2.CiliumBGPNodeInstanceStatus{Name: inst.Name, LocalASN: inst.LocalASN}
	var up int32
	for i, p := range inst.Peers {
		st.Peers = append(st.Peers, ciliumv2.CiliumBGPNodePeerStatus{Name: p.Name, PeerAddress: *p.PeerAddress, PeeringState: states[i]})
		if states[i] == ciliumv2.BGPPeeringStateEstablished {
			up++
		}
	}
	nc.Status = ciliumv2.CiliumBGPNodeStatus{ObservedGeneration: nc.Generation, PeersTotal: int32(len(inst.Peers)), PeersEstablished: up,
		BGPInstances: []ciliumv2.CiliumBGPNodeInstanceStatus{st}}
	h.must(h.c.Status().Update(h.ctx, nc))
}

// The cluster and peer configs sum up the sessions their nodes report:
// waiting until every node reported, then which sessions are down, then
// Ready when all are established. The node's status survives the
// controller's writes.
func TestSessionSummary(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", nil)
	h.node("n2", "198.18.0.12", nil)
	h.peerConfig("cilium-peer", nil)
	h.peerConfig("unused", nil)
	h.clusterConfig("c", nil)
	h.waitNodeConfigs("n1", "n2")
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "waiting for node status from n1, n2")
	h.waitCondition("peer", h.peerConds("cilium-peer"), conditions.TypeReady, metav1.ConditionFalse, "waiting for node status from n1, n2")
	h.waitCondition("unused", h.peerConds("unused"), conditions.TypeReady, metav1.ConditionTrue, "No peer")

	est, act := ciliumv2.BGPPeeringStateEstablished, ciliumv2.BGPPeeringStateActive
	h.report("n1", est, est)
	h.report("n2", est, act)
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse,
		"sessions not established: n2 instance-65000/peer-65000-tor2 (active)")
	if r := meta.FindStatusCondition(h.cluster("c").Status.Conditions, conditions.TypeReady); r.Reason != ReasonSessionsDown {
		t.Fatalf("Ready %+v", r)
	}
	h.eventually("counts", func() error {
		c, p := h.cluster("c").Status, h.peer("cilium-peer").Status
		if c.PeersTotal != 4 || c.PeersEstablished != 3 || p.PeersTotal != 4 || p.PeersEstablished != 3 {
			return fmt.Errorf("cluster %d/%d, peer %d/%d", c.PeersEstablished, c.PeersTotal, p.PeersEstablished, p.PeersTotal)
		}
		return nil
	})

	h.report("n2", est, est)
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionTrue, "applied to 2 nodes; 4/4 sessions established")
	h.waitCondition("peer", h.peerConds("cilium-peer"), conditions.TypeReady, metav1.ConditionTrue, "4/4 sessions established")

	// A node that cannot apply its config says so.
	nc, err := h.nodeConfig("n1")
	h.must(err)
	meta.SetStatusCondition(&nc.Status.Conditions, metav1.Condition{Type: ciliumv2.BGPNodeConditionReconcileError,
		Status: metav1.ConditionTrue, Reason: "InvalidPeer", Message: "peer-65000-tor1: no route"})
	h.must(h.c.Status().Update(h.ctx, nc))
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "n1: peer-65000-tor1: no route")

	// A spec change makes the old reports stale until the nodes catch up.
	c := h.cluster("c")
	c.Spec.BGPInstances[0].LocalASN = ptr.To[int64](65001)
	h.must(h.c.Update(h.ctx, c))
	h.waitCondition("c", h.clusterConds("c"), conditions.TypeReady, metav1.ConditionFalse, "waiting for node status from n1, n2")
	nc, err = h.nodeConfig("n1")
	h.must(err)
	if len(nc.Status.BGPInstances) == 0 {
		t.Fatal("the controller's write cleared the node's status")
	}
}

// B55 (controller half): a legacy peering policy selecting a node does not
// stop the cluster config's node config; the node decides which applies.
func TestB55_PeeringPolicyKeepsNodeConfig(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.node("n1", "198.18.0.11", map[string]string{"rack": "0"})
	h.must(h.c.Create(h.ctx, &ciliumv2alpha1.CiliumBGPPeeringPolicy{ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: ciliumv2alpha1.CiliumBGPPeeringPolicySpec{NodeSelector: rack("0"), VirtualRouters: []ciliumv2alpha1.CiliumBGPVirtualRouter{{
			LocalASN: 65001, Neighbors: []ciliumv2alpha1.CiliumBGPNeighbor{{PeerAddress: "198.18.0.1/32", PeerASN: 65000}}}}}}))
	h.peerConfig("cilium-peer", nil)
	h.clusterConfig("c", rack("0"))
	h.waitNodeConfigs("n1")
}
