package bgp

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

func peers(states ...ciliumv2.BGPPeeringState) []ciliumv2.CiliumBGPNodeInstanceStatus {
	inst := ciliumv2.CiliumBGPNodeInstanceStatus{Name: "main"}
	for i, s := range states {
		inst.Peers = append(inst.Peers, ciliumv2.CiliumBGPNodePeerStatus{
			Name: "p" + string(rune('a'+i)), PeerAddress: "198.18.0.254", PeeringState: s, LastError: map[bool]string{true: "", false: "dial tcp 198.18.0.254:179: connect: connection refused"}[s == ciliumv2.BGPPeeringStateEstablished],
		})
	}
	return []ciliumv2.CiliumBGPNodeInstanceStatus{inst}
}

func cond(t *testing.T, s ciliumv2.CiliumBGPNodeStatus, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(s.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, s.Conditions)
	}
	return *c
}

func TestBuildStatusReady(t *testing.T) {
	one := desired.State{Source: "CiliumBGPNodeConfig/n1", Instances: []desired.Instance{{Name: "main"}}}
	for _, tc := range []struct {
		name       string
		st         desired.State
		applyErr   error
		inst       []ciliumv2.CiliumBGPNodeInstanceStatus
		wantReady  metav1.ConditionStatus
		wantReason string
		wantIn     string
	}{
		{"all established", one, nil, peers("established", "established"), "True", ReasonEstablished, "2 of 2 sessions established"},
		{"one down names it and its error", one, nil, peers("established", "active"), "False", ReasonNotEstablished, "main/pb (198.18.0.254) is active, last error: dial tcp"},
		{"apply failed", one, errors.New("gobgp: bad router id"), peers("established"), "False", ReasonApplyFailed, "bad router id"},
		{"several policies", desired.State{Problems: []desired.Problem{{Reason: desired.ReasonSeveralPolicies, Message: "more than one CiliumBGPPeeringPolicy selects the node: a, b"}}},
			nil, nil, "False", desired.ReasonSeveralPolicies, "no BGP instance runs: more than one CiliumBGPPeeringPolicy"},
		{"nothing configured", desired.State{}, nil, nil, "False", ReasonNoInstances, "no BGP instance"},
		{"legacy policy wins", desired.State{Source: "CiliumBGPPeeringPolicy/old", Instances: one.Instances}, nil, peers("established"), "True", ReasonLegacyPolicy, "CiliumBGPPeeringPolicy/old selects this node and takes precedence"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := BuildStatus(3, nil, tc.st, tc.applyErr, tc.inst)
			c := cond(t, s, ciliumv2.BGPNodeConditionReady)
			if c.Status != tc.wantReady || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantIn) || c.ObservedGeneration != 3 {
				t.Errorf("Ready = %s/%s %q (gen %d); want %s/%s containing %q", c.Status, c.Reason, c.Message, c.ObservedGeneration, tc.wantReady, tc.wantReason, tc.wantIn)
			}
			if s.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d", s.ObservedGeneration)
			}
			if got := cond(t, s, ciliumv2.BGPNodeConditionReconcileError); (got.Status == "True") != (tc.applyErr != nil) {
				t.Errorf("BGPReconcileError = %s with apply error %v", got.Status, tc.applyErr)
			}
		})
	}
}

// TestB7_MissingSecretCondition: a missing Secret gives the condition, and
// a present one never does (the seed reports it either way).
func TestB7_MissingSecretCondition(t *testing.T) {
	ok := desired.State{Instances: []desired.Instance{{Name: "main"}}}
	if c := cond(t, BuildStatus(1, nil, ok, nil, peers("established")), ConditionMissingAuthSecret); c.Status != "False" {
		t.Errorf("no Secret missing, condition %s: %s", c.Status, c.Message)
	}
	missing := ok
	missing.Problems = []desired.Problem{{Reason: desired.ReasonMissingAuthSecret, Message: `peer config "tor" refers to Secret kube-system/bgp-auth, which does not exist`}}
	s := BuildStatus(1, nil, missing, nil, peers("established"))
	if c := cond(t, s, ConditionMissingAuthSecret); c.Status != "True" || !strings.Contains(c.Message, "kube-system/bgp-auth") {
		t.Errorf("missing Secret: %s %q", c.Status, c.Message)
	}
	if c := cond(t, s, ciliumv2.BGPNodeConditionReady); c.Status != "False" || c.Reason != desired.ReasonMissingAuthSecret {
		t.Errorf("Ready with a missing Secret: %s/%s", c.Status, c.Reason)
	}
}

// TestBuildStatusStable: the same inputs give an equal status, so a resync
// writes nothing; transition times survive.
func TestBuildStatusStable(t *testing.T) {
	st := desired.State{Instances: []desired.Instance{{Name: "main"}}}
	first := BuildStatus(1, nil, st, nil, peers("established"))
	second := BuildStatus(1, first.Conditions, st, nil, peers("established"))
	for i := range first.Conditions {
		if first.Conditions[i] != second.Conditions[i] {
			t.Errorf("condition changed on a resync: %+v -> %+v", first.Conditions[i], second.Conditions[i])
		}
	}
	if first.PeersTotal != 1 || first.PeersEstablished != 1 {
		t.Errorf("counts %d/%d", first.PeersEstablished, first.PeersTotal)
	}
}
