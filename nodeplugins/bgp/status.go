package bgp

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

// Condition types and reasons the node plugin writes on its NodeConfig.
const (
	ConditionMissingAuthSecret = ciliumv2.BGPPeerConditionMissingAuthSecret

	ReasonEstablished    = "Established"
	ReasonNotEstablished = "SessionsNotEstablished"
	ReasonApplyFailed    = "ApplyFailed"
	ReasonApplied        = "Applied"
	ReasonSecretsFound   = "SecretsFound"
	ReasonNoInstances    = "NoInstances"
	ReasonLegacyPolicy   = "PeeringPolicyInEffect"
)

// BuildStatus is the NodeConfig status for what was applied and what the
// speaker reports. Conditions start from the current ones so that
// transition times move only on a change. It is pure.
func BuildStatus(generation int64, current []metav1.Condition, st desired.State, applyErr error, instances []ciliumv2.CiliumBGPNodeInstanceStatus) ciliumv2.CiliumBGPNodeStatus {
	out := ciliumv2.CiliumBGPNodeStatus{ObservedGeneration: generation, BGPInstances: instances}
	var down []string
	for _, inst := range instances {
		for _, peer := range inst.Peers {
			out.PeersTotal++
			if peer.PeeringState == ciliumv2.BGPPeeringStateEstablished {
				out.PeersEstablished++
				continue
			}
			down = append(down, describeDown(inst.Name, peer))
		}
	}
	out.Conditions = append([]metav1.Condition(nil), current...)
	set := func(c metav1.Condition) { conditions.Set(&out.Conditions, generation, c) }

	applyCond := metav1.Condition{Type: ciliumv2.BGPNodeConditionReconcileError, Status: metav1.ConditionFalse, Reason: ReasonApplied,
		Message: "the speaker holds the desired instances, peers and routes"}
	if applyErr != nil {
		applyCond.Status, applyCond.Reason, applyCond.Message = metav1.ConditionTrue, ReasonApplyFailed, applyErr.Error()
	}
	set(applyCond)

	secrets := problemsWith(st.Problems, desired.ReasonMissingAuthSecret)
	secretCond := metav1.Condition{Type: ConditionMissingAuthSecret, Status: metav1.ConditionFalse, Reason: ReasonSecretsFound,
		Message: "every auth Secret the peers refer to exists"}
	if len(secrets) > 0 {
		secretCond.Status, secretCond.Reason = metav1.ConditionTrue, desired.ReasonMissingAuthSecret
		secretCond.Message = strings.Join(secrets, "; ") + " (those sessions run without a password)"
	}
	set(secretCond)

	set(readyCondition(st, applyErr, out, down))
	return out
}

// readyCondition is True when everything asked for is applied and every
// session is established; otherwise its message says what is not.
func readyCondition(st desired.State, applyErr error, s ciliumv2.CiliumBGPNodeStatus, down []string) metav1.Condition {
	c := metav1.Condition{Type: ciliumv2.BGPNodeConditionReady, Status: metav1.ConditionFalse}
	var notes []string
	if strings.HasPrefix(st.Source, "CiliumBGPPeeringPolicy/") {
		notes = append(notes, st.Source+" selects this node and takes precedence over this config")
	}
	for _, p := range st.Problems {
		notes = append(notes, p.Message)
	}
	switch {
	case applyErr != nil:
		c.Reason, c.Message = ReasonApplyFailed, "applying the BGP state failed: "+applyErr.Error()
	case len(st.Problems) > 0 && len(st.Instances) == 0:
		c.Reason, c.Message = st.Problems[0].Reason, "no BGP instance runs: "+strings.Join(notes, "; ")
	case len(st.Instances) == 0:
		c.Reason, c.Message = ReasonNoInstances, "no BGP instance is configured for this node"
	case len(down) > 0:
		c.Reason = ReasonNotEstablished
		c.Message = fmt.Sprintf("%d of %d sessions established; not established: %s", s.PeersEstablished, s.PeersTotal, strings.Join(down, "; "))
	case len(st.Problems) > 0:
		c.Reason, c.Message = st.Problems[0].Reason, fmt.Sprintf("%d of %d sessions established, but: %s", s.PeersEstablished, s.PeersTotal, strings.Join(notes, "; "))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonEstablished
		c.Message = fmt.Sprintf("%d of %d sessions established", s.PeersEstablished, s.PeersTotal)
		if len(notes) > 0 {
			c.Reason, c.Message = ReasonLegacyPolicy, c.Message+"; "+strings.Join(notes, "; ")
		}
	}
	return c
}

func describeDown(instance string, p ciliumv2.CiliumBGPNodePeerStatus) string {
	addr := p.PeerAddress
	if addr == "" {
		addr = "no address"
	}
	state := string(p.PeeringState)
	if state == "" {
		state = string(ciliumv2.BGPPeeringStateUnknown)
	}
	s := fmt.Sprintf("%s/%s (%s) is %s", instance, p.Name, addr, state)
	if p.LastError != "" {
		s += ", last error: " + p.LastError
	}
	return s
}

func problemsWith(ps []desired.Problem, reason string) []string {
	var out []string
	for _, p := range ps {
		if p.Reason == reason {
			out = append(out, p.Message)
		}
	}
	return out
}
