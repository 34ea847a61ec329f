package reconciler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

func spec(peers ...string) ciliumv2.CiliumBGPNodeSpec {
	inst := ciliumv2.CiliumBGPNodeInstance{Name: "i"}
	for _, p := range peers {
		inst.Peers = append(inst.Peers, ciliumv2.CiliumBGPNodePeer{Name: p, PeerAddress: ptr.To("198.18.0.1"),
			PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "pc-" + p}})
	}
	return ciliumv2.CiliumBGPNodeSpec{BGPInstances: []ciliumv2.CiliumBGPNodeInstance{inst}}
}

func withStatus(s ciliumv2.CiliumBGPNodeSpec, gen, observed int64, states map[string]ciliumv2.BGPPeeringState) *ciliumv2.CiliumBGPNodeConfig {
	nc := &ciliumv2.CiliumBGPNodeConfig{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: s}
	nc.Status.ObservedGeneration = observed
	if states != nil {
		st := ciliumv2.CiliumBGPNodeInstanceStatus{Name: "i"}
		for p, state := range states {
			st.Peers = append(st.Peers, ciliumv2.CiliumBGPNodePeerStatus{Name: p, PeeringState: state})
		}
		nc.Status.BGPInstances = []ciliumv2.CiliumBGPNodeInstanceStatus{st}
	}
	return nc
}

// A node counts only once it reported on the spec it is meant to run: not
// before its config exists, nor while its config or its report is behind.
// Sessions it does not report are down.
func TestSummarizeWaitsForCurrentReports(t *testing.T) {
	all := func(ciliumv2.CiliumBGPNodePeer) bool { return true }
	est := ciliumv2.BGPPeeringStateEstablished
	views := []nodeView{
		{name: "missing", desired: spec("a")},
		{name: "old-spec", desired: spec("a", "b"), current: withStatus(spec("a"), 1, 1, map[string]ciliumv2.BGPPeeringState{"a": est})},
		{name: "stale", desired: spec("a"), current: withStatus(spec("a"), 2, 1, map[string]ciliumv2.BGPPeeringState{"a": est})},
		{name: "empty", desired: spec("a"), current: withStatus(spec("a"), 1, 0, nil)},
		{name: "up", desired: spec("a", "b"), current: withStatus(spec("a", "b"), 3, 3, map[string]ciliumv2.BGPPeeringState{"a": est})},
		{name: "no-peers", desired: spec()},
	}
	s := summarize(views, all)
	if s.nodes != 5 || s.total != 7 || s.established != 1 {
		t.Fatalf("summary %+v", s)
	}
	if got := strings.Join(s.waiting, ","); got != "missing,old-spec,stale,empty" {
		t.Fatalf("waiting %s", got)
	}
	if got := strings.Join(s.down, ","); got != "up i/b (not reported)" {
		t.Fatalf("down %s", got)
	}
	// Restricted to one peer config's peers.
	s = summarize(views, func(p ciliumv2.CiliumBGPNodePeer) bool { return p.PeerConfigRef.Name == "pc-b" })
	if s.nodes != 2 || s.total != 2 || len(s.down) != 1 {
		t.Fatalf("pc-b summary %+v", s)
	}
}

func TestListIsBounded(t *testing.T) {
	var names []string
	for range 25 {
		names = append(names, "n")
	}
	if got := list(names); !strings.HasSuffix(got, "and 15 more") {
		t.Fatalf("list %q", got)
	}
}

// Only label, address and deletion changes of a Node start a pass; a
// kubelet's status heartbeats do not.
func TestNodeChangedIgnoresHeartbeats(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"rack": "0"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}}}
	beat := n.DeepCopy()
	beat.ResourceVersion = "2"
	beat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	relabel := n.DeepCopy()
	relabel.Labels = map[string]string{"rack": "1"}
	readdress := n.DeepCopy()
	readdress.Status.Addresses[0].Address = "198.18.0.99"
	for name, c := range map[string]struct {
		new  *corev1.Node
		want bool
	}{"heartbeat": {beat, false}, "relabel": {relabel, true}, "readdress": {readdress, true}} {
		if got := nodeChanged.Update(event.UpdateEvent{ObjectOld: n, ObjectNew: c.new}); got != c.want {
			t.Errorf("%s: %v", name, got)
		}
	}
	trimmed, _ := trimNode(beat)
	if tn := trimmed.(*corev1.Node); len(tn.Status.Conditions) != 0 || tn.Labels["rack"] != "0" || len(tn.Status.Addresses) != 1 {
		t.Fatalf("trimmed %+v", tn)
	}
}

// The cache keeps which keys a Secret has, never the password.
func TestTrimSecretDropsValues(t *testing.T) {
	out, _ := trimSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "kube-system"},
		Data: map[string][]byte{"password": []byte("s3cret")}})
	s := out.(*corev1.Secret)
	if v, ok := s.Data["password"]; !ok || v != nil {
		t.Fatalf("data %v", s.Data)
	}
}
