package reconciler

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/bgp/planner"
	"github.com/plexus-net/plexus/internal/conditions"
)

// Condition reasons. The True reasons of the seed system's conditions are
// its own; the False ones and Ready's are Plexus's.
const (
	ReasonNoMatchingNode     = "NoMatchingNode"
	ReasonNodesSelected      = "NodesSelected"
	ReasonMissingPeerConfigs = "MissingPeerConfigs"
	ReasonPeerConfigsFound   = "PeerConfigsFound"
	ReasonConflicting        = "ConflictingClusterConfigs"
	ReasonNoConflict         = "NoConflict"
	ReasonMissingAuthSecret  = "MissingAuthSecret"
	ReasonAuthSecretFound    = "AuthSecretFound"
	ReasonNoAuthSecretRef    = "NoAuthSecretRef"

	// Ready reasons, most severe first.
	ReasonInvalidNodeSelector = "InvalidNodeSelector"
	ReasonNodeConfigProblems  = "NodeConfigProblems"
	ReasonNodeErrors          = "NodeErrors"
	ReasonWaitingForNodes     = "WaitingForNodeStatus"
	ReasonSessionsDown        = "SessionsDown"
	ReasonEstablished         = "Established"
	ReasonUnused              = "Unused"
)

// MessageNoMatchingNode is the seed system's message.
const MessageNoMatchingNode = "No node matches spec.nodeSelector"

// maxListed bounds the names a message lists, so that a large cluster's
// messages stay readable.
const maxListed = 10

// nodeView is one node's planned config and the one the API server holds.
type nodeView struct {
	name    string
	desired ciliumv2.CiliumBGPNodeSpec
	current *ciliumv2.CiliumBGPNodeConfig // nil until created
}

// reported tells whether the node's status describes its planned spec: the
// config exists with that spec, and the node reported on its generation (a
// status without observedGeneration counts when it has anything in it).
func (v nodeView) reported() bool {
	c := v.current
	if c == nil || !equality.Semantic.DeepEqual(c.Spec, v.desired) {
		return false
	}
	if c.Status.ObservedGeneration != 0 {
		return c.Status.ObservedGeneration >= c.Generation
	}
	return len(c.Status.BGPInstances) > 0 || len(c.Status.Conditions) > 0
}

// sessions sums up the sessions of a set of peers over the nodes.
type sessions struct {
	nodes              int
	total, established int32
	waiting            []string // nodes that have not reported on their spec
	down               []string // sessions not established
	failing            []string // nodes reporting a reconcile error
}

// summarize counts, on every node, the peers uses accepts, and how many of
// them the node reports established.
func summarize(views []nodeView, uses func(ciliumv2.CiliumBGPNodePeer) bool) sessions {
	var s sessions
	for _, v := range views {
		var peers []string // instance/peer
		for _, inst := range v.desired.BGPInstances {
			for _, p := range inst.Peers {
				if uses(p) {
					peers = append(peers, inst.Name+"/"+p.Name)
				}
			}
		}
		if len(peers) == 0 {
			continue
		}
		s.nodes++
		s.total += int32(len(peers))
		if !v.reported() {
			s.waiting = append(s.waiting, v.name)
			continue
		}
		st := v.current.Status
		if c := meta.FindStatusCondition(st.Conditions, ciliumv2.BGPNodeConditionReconcileError); c != nil && c.Status == metav1.ConditionTrue {
			s.failing = append(s.failing, fmt.Sprintf("%s: %s", v.name, c.Message))
		}
		states := map[string]ciliumv2.BGPPeeringState{}
		for _, inst := range st.BGPInstances {
			for _, p := range inst.Peers {
				states[inst.Name+"/"+p.Name] = p.PeeringState
			}
		}
		for _, p := range peers {
			state, ok := states[p]
			switch {
			case state == ciliumv2.BGPPeeringStateEstablished:
				s.established++
			case !ok || state == "":
				s.down = append(s.down, fmt.Sprintf("%s %s (not reported)", v.name, p))
			default:
				s.down = append(s.down, fmt.Sprintf("%s %s (%s)", v.name, p, state))
			}
		}
	}
	return s
}

// problems are the reasons the sessions are not all up, most severe first,
// as Ready's reason and message parts.
func (s sessions) problems() (string, []string) {
	var reason string
	var msgs []string
	add := func(r, m string) {
		if reason == "" {
			reason = r
		}
		msgs = append(msgs, m)
	}
	if len(s.failing) > 0 {
		add(ReasonNodeErrors, "nodes report errors: "+list(s.failing))
	}
	if len(s.waiting) > 0 {
		add(ReasonWaitingForNodes, "waiting for node status from "+list(s.waiting))
	}
	if len(s.down) > 0 {
		add(ReasonSessionsDown, "sessions not established: "+list(s.down))
	}
	return reason, msgs
}

func (s sessions) String() string {
	return fmt.Sprintf("%d/%d sessions established on %d nodes", s.established, s.total, s.nodes)
}

// clusterSummary is a cluster config's one-line state.
func clusterSummary(nodes int, s sessions) string {
	return fmt.Sprintf("applied to %d nodes; %d/%d sessions established", nodes, s.established, s.total)
}

// list joins names, at most maxListed of them.
func list(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
}

// clusterInfo is what a cluster config's status is made from.
type clusterInfo struct {
	result      *planner.ConfigResult
	selectorErr error
	problems    []string // of the nodes it is applied to, "node: problem"
	sessions    sessions
}

// setClusterStatus writes the seed system's three conditions, always, and
// Ready with the session summary.
func setClusterStatus(c *ciliumv2.CiliumBGPClusterConfig, in clusterInfo) {
	res := in.result
	gen := c.Generation
	st := &c.Status
	st.ObservedGeneration = gen
	st.Nodes = int32(len(res.Nodes))
	st.PeersTotal, st.PeersEstablished = in.sessions.total, in.sessions.established

	noMatch := metav1.Condition{Type: ciliumv2.BGPClusterConditionNoMatchingNode, Status: metav1.ConditionTrue,
		Reason: ReasonNoMatchingNode, Message: MessageNoMatchingNode}
	if res.Selected {
		noMatch.Status, noMatch.Reason = metav1.ConditionFalse, ReasonNodesSelected
		noMatch.Message = "spec.nodeSelector matches nodes"
	}
	missing := metav1.Condition{Type: ciliumv2.BGPClusterConditionMissingPeerConfigs, Status: metav1.ConditionFalse,
		Reason: ReasonPeerConfigsFound, Message: "Every referenced CiliumBGPPeerConfig exists"}
	if len(res.MissingPeerConfigs) > 0 {
		missing.Status, missing.Reason = metav1.ConditionTrue, ReasonMissingPeerConfigs
		missing.Message = fmt.Sprintf("Referenced CiliumBGPPeerConfig(s) are missing: %v", res.MissingPeerConfigs)
	}
	conflict := metav1.Condition{Type: ciliumv2.BGPClusterConditionConflicting, Status: metav1.ConditionFalse,
		Reason: ReasonNoConflict, Message: "No older CiliumBGPClusterConfig selects the same nodes"}
	if len(res.ConflictsWith) > 0 {
		conflict.Status, conflict.Reason = metav1.ConditionTrue, ReasonConflicting
		conflict.Message = fmt.Sprintf("Selecting the same node(s) with ClusterConfig(s): %v; this config is applied to no node", res.ConflictsWith)
	}

	var reason string
	var msgs []string
	add := func(r, m string) {
		if reason == "" {
			reason = r
		}
		msgs = append(msgs, m)
	}
	if in.selectorErr != nil {
		add(ReasonInvalidNodeSelector, "spec.nodeSelector: "+in.selectorErr.Error())
	}
	if conflict.Status == metav1.ConditionTrue {
		add(ReasonConflicting, conflict.Message)
	}
	if noMatch.Status == metav1.ConditionTrue && in.selectorErr == nil {
		add(ReasonNoMatchingNode, MessageNoMatchingNode)
	}
	if missing.Status == metav1.ConditionTrue {
		add(ReasonMissingPeerConfigs, missing.Message)
	}
	if len(in.problems) > 0 {
		add(ReasonNodeConfigProblems, list(in.problems))
	}
	if r, m := in.sessions.problems(); r != "" {
		add(r, strings.Join(m, "; "))
	}
	summary := clusterSummary(len(res.Nodes), in.sessions)
	ready := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonEstablished, Message: summary}
	if reason != "" {
		ready.Status, ready.Reason = metav1.ConditionFalse, reason
		ready.Message = strings.Join(append(msgs, summary), "; ")
	}
	for _, cond := range []metav1.Condition{noMatch, missing, conflict, ready} {
		conditions.Set(&st.Conditions, gen, cond)
	}
}

// authSecret is what the secrets namespace holds under a name.
type authSecret int

const (
	secretAbsent authSecret = iota
	secretWithoutPassword
	secretWithPassword
)

// setPeerStatus writes cilium.io/MissingAuthSecret, always, and Ready with
// the summary of the sessions that use the config.
func setPeerStatus(p *ciliumv2.CiliumBGPPeerConfig, secret authSecret, secretNamespace string, s sessions) {
	gen := p.Generation
	st := &p.Status
	st.ObservedGeneration = gen
	st.PeersTotal, st.PeersEstablished = s.total, s.established

	auth := metav1.Condition{Type: ciliumv2.BGPPeerConditionMissingAuthSecret, Status: metav1.ConditionFalse,
		Reason: ReasonNoAuthSecretRef, Message: "spec.authSecretRef is not set: sessions are not authenticated"}
	if ref := p.Spec.AuthSecretRef; ref != nil {
		name := secretNamespace + "/" + *ref
		switch secret {
		case secretAbsent:
			auth.Status, auth.Reason = metav1.ConditionTrue, ReasonMissingAuthSecret
			auth.Message = fmt.Sprintf("Referenced auth Secret %s is missing: sessions use an empty password", name)
		case secretWithoutPassword:
			auth.Status, auth.Reason = metav1.ConditionTrue, ReasonMissingAuthSecret
			auth.Message = fmt.Sprintf("Auth Secret %s has no key %q: sessions use an empty password", name, ciliumv2.BGPAuthSecretKey)
		default:
			auth.Reason, auth.Message = ReasonAuthSecretFound, fmt.Sprintf("Auth Secret %s holds the password", name)
		}
	}

	ready := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonEstablished, Message: s.String()}
	reason, msgs := s.problems()
	if auth.Status == metav1.ConditionTrue {
		reason, msgs = ReasonMissingAuthSecret, append([]string{auth.Message}, msgs...)
	}
	switch {
	case reason != "":
		ready.Status, ready.Reason = metav1.ConditionFalse, reason
		ready.Message = strings.Join(append(msgs, s.String()), "; ")
	case s.total == 0:
		ready.Reason, ready.Message = ReasonUnused, "No peer of an applied CiliumBGPClusterConfig refers to this config"
	}
	for _, cond := range []metav1.Condition{auth, ready} {
		conditions.Set(&st.Conditions, gen, cond)
	}
}
