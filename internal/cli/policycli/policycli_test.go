package policycli

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

func TestRenderSelectedPod(t *testing.T) {
	np := &nodesv1alpha1.NodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Generation: 3},
		Spec: nodesv1alpha1.NodePolicySpec{
			Identities: []nodesv1alpha1.IdentityPolicy{{Identity: 1001,
				DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{Policies: []string{"CiliumNetworkPolicy/default/backend"},
					Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{
						{Peers: "p1", Protocol: 6, Port: 8080, EndPort: 8080, Source: 1},
						{Peers: "phost", Protocol: 0, Port: 0, EndPort: 65535},
						{Peers: nodesv1alpha1.AnyPeer, Protocol: 17, Port: 9000, EndPort: 9100, Deny: true},
					}},
					Egress: nodesv1alpha1.PolicyDirection{Enforced: true},
				}}},
			PeerSets: []nodesv1alpha1.PeerSet{{Name: "p1", Identities: []int64{1002}, CIDRs: []string{"192.0.2.0/24"}}, {Name: "phost", Identities: []int64{1}}},
		},
		Status: nodesv1alpha1.NodePolicyStatus{ObservedGeneration: 3, Conditions: []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Programmed", Message: "1 identities, 3 policy entries in the datapath"}}},
	}
	var b strings.Builder
	err := Render(&b, PodView{Pod: "default/backend-1", Node: "n1", IP: "10.0.1.5", Identity: 1001, NodePolicy: np,
		Labels: map[int64]map[string]string{
			1001: {"k8s:app": "backend", "k8s:io.kubernetes.pod.namespace": "default", "k8s:io.cilium.k8s.policy.cluster": "default"},
			1002: {"k8s:app": "frontend", "k8s:io.kubernetes.pod.namespace": "default"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Columns are aligned by a tabwriter: compare with spaces folded.
	fold := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	got := fold(b.String())
	for _, want := range []string{
		"Pod:          default/backend-1 on n1 (10.0.1.5)",
		"Identity:     1001 {app=backend,namespace=default}",
		"Selected by:  CiliumNetworkPolicy/default/backend",
		"Ingress:      enforced (only what is allowed)",
		"allow        TCP/8080  from 1002 {app=frontend,namespace=default}; 192.0.2.0/24  (CiliumNetworkPolicy/default/backend)",
		"allow        any       from host",
		"deny         UDP/9000-9100  from any peer",
		"Egress:       enforced (only what is allowed)",
		"Datapath:     Ready=True Programmed: 1 identities, 3 policy entries in the datapath",
	} {
		if !strings.Contains(got, fold(want)) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestRenderUnselectedAndUnknownPods(t *testing.T) {
	var b strings.Builder
	_ = Render(&b, PodView{Pod: "default/a", Node: "n1", IP: "10.0.1.6", Identity: 1005, Labels: map[int64]map[string]string{}})
	if !strings.Contains(b.String(), "none select it: all traffic is allowed") {
		t.Errorf("unselected pod:\n%s", b.String())
	}
	b.Reset()
	_ = Render(&b, PodView{Pod: "default/b", Node: "n1", IP: "10.0.1.7"})
	if !strings.Contains(b.String(), "none yet") {
		t.Errorf("pod without identity:\n%s", b.String())
	}
}
