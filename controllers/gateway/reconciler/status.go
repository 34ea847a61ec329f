package reconciler

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/internal/conditions"
)

// ConditionAddressesIgnored is True on a Gateway whose spec.addresses an
// lb-ipam-ips annotation overrides (the seed warns the same way).
const ConditionAddressesIgnored = "AddressesIgnored"

// nodeAck is one node's report on one config.
type nodeAck struct {
	node       string
	generation int64
	err        string
}

// acks indexes the nodes' reports by config.
type acks map[nodesv1alpha1.EnvoyConfigRef][]nodeAck

func ackIndex(proxies []nodesv1alpha1.L7Proxy) acks {
	a := acks{}
	for i := range proxies {
		p := &proxies[i]
		served := map[nodesv1alpha1.EnvoyConfigRef]nodesv1alpha1.EnvoyConfigServed{}
		for _, s := range p.Status.Configs {
			served[s.EnvoyConfigRef] = s
		}
		for _, ref := range p.Spec.Configs {
			s := served[ref]
			a[ref] = append(a[ref], nodeAck{node: p.Name, generation: s.Generation, err: s.Error})
		}
	}
	return a
}

// ackSummary is how far the nodes got with one generation of a config.
type ackSummary struct {
	generation int64
	nodes      int
	acked      int
	refused    []string // "node: error"
}

func (a acks) of(ref nodesv1alpha1.EnvoyConfigRef, cec *ciliumv2.CiliumEnvoyConfig) ackSummary {
	if cec == nil {
		return ackSummary{}
	}
	return a.ofRef(ref, cec.Generation)
}

func (a acks) ofRef(ref nodesv1alpha1.EnvoyConfigRef, generation int64) ackSummary {
	s := ackSummary{generation: generation}
	for _, n := range a[ref] {
		s.nodes++
		switch {
		case n.err != "":
			s.refused = append(s.refused, n.node+": "+n.err)
		case n.generation >= generation:
			s.acked++
		}
	}
	slices.Sort(s.refused)
	return s
}

// builtGateway is what writing a Gateway's objects ran into.
type builtGateway struct {
	err     error
	warning string
	// pending says the config is being written this pass.
	pending bool
}

// frontendState is how far a frontend's objects got.
type frontendState struct {
	built   *builtGateway
	service *corev1.Service
	acks    ackSummary
	// hostNetwork says the frontend is served on the selected nodes'
	// own addresses (hostAddresses), with no Service.
	hostNetwork   bool
	hostAddresses []string
	// nodeAddresses are the nodes' InternalIPs, where a NodePort
	// Service's ports are open.
	nodeAddresses []string
}

// gatewayStatus is everything a Gateway's status is made from.
type gatewayStatus struct {
	result translate.GatewayResult
	frontendState
}

// maxGatewayAddresses is the Gateway API's limit on status.addresses.
const maxGatewayAddresses = 16

// addresses are where a Gateway is reached: its Service's load-balancer
// addresses, or for a NodePort Service the nodes' (as Envoy Gateway
// reports them), since that is where its node ports are open.
func (st frontendState) addresses() []gwv1.GatewayStatusAddress {
	if st.hostNetwork {
		var out []gwv1.GatewayStatusAddress
		for _, a := range st.hostAddresses[:min(len(st.hostAddresses), maxGatewayAddresses)] {
			out = append(out, gwv1.GatewayStatusAddress{Type: new(gwv1.IPAddressType), Value: a})
		}
		return out
	}
	svc := st.service
	if svc == nil {
		return nil
	}
	var out []gwv1.GatewayStatusAddress
	if svc.Spec.Type == corev1.ServiceTypeNodePort {
		for _, a := range st.nodeAddresses[:min(len(st.nodeAddresses), maxGatewayAddresses)] {
			out = append(out, gwv1.GatewayStatusAddress{Type: new(gwv1.IPAddressType), Value: a})
		}
		return out
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		switch {
		case in.IP != "":
			out = append(out, gwv1.GatewayStatusAddress{Type: new(gwv1.IPAddressType), Value: in.IP})
		case in.Hostname != "":
			out = append(out, gwv1.GatewayStatusAddress{Type: new(gwv1.HostnameAddressType), Value: in.Hostname})
		}
	}
	return out
}

// programmed decides a Gateway's Programmed condition: True only once the
// configuration is written, every node's proxy acknowledged it, and the
// Gateway has an address.
func programmed(st gatewayStatus, gen int64) metav1.Condition {
	if c := meta.FindStatusCondition(st.result.Conditions, string(gwv1.GatewayConditionProgrammed)); c != nil {
		return *c
	}
	no := func(reason gwv1.GatewayConditionReason, format string, args ...any) metav1.Condition {
		return metav1.Condition{Type: string(gwv1.GatewayConditionProgrammed), Status: metav1.ConditionFalse, Reason: string(reason),
			Message: fmt.Sprintf(format, args...), ObservedGeneration: gen}
	}
	b, a := st.built, st.acks
	switch {
	case b == nil:
		return no(gwv1.GatewayReasonPending, "Waiting for the configuration to be built")
	case b.err != nil && strings.Contains(b.err.Error(), "no free proxy port"):
		return no(gwv1.GatewayReasonNoResources, "%v", b.err)
	case b.err != nil:
		return no(gwv1.GatewayReasonInvalid, "%v", b.err)
	case b.pending:
		return no(gwv1.GatewayReasonPending, "Writing the Envoy configuration")
	case st.hostNetwork && len(st.hostAddresses) == 0:
		return no(gwv1.GatewayReasonAddressNotAssigned, "Host network mode: no node matches the node selector (--host-network-node-labels), so no proxy listens")
	case len(a.refused) > 0:
		return no(gwv1.GatewayReasonInvalid, "Node proxies refused the configuration: %s", strings.Join(a.refused, "; "))
	case a.nodes == 0:
		return no(gwv1.GatewayReasonPending, "No node proxy serves the configuration yet")
	case a.acked < a.nodes:
		return no(gwv1.GatewayReasonPending, "%d of %d node proxies acknowledged generation %d of the configuration", a.acked, a.nodes, a.generation)
	case len(st.addresses()) == 0:
		return no(gwv1.GatewayReasonAddressNotAssigned, "Service %s has no load-balancer address yet (is LB-IPAM or another load balancer on?)", GeneratedName(st.result.Key.Name))
	}
	return metav1.Condition{Type: string(gwv1.GatewayConditionProgrammed), Status: metav1.ConditionTrue, Reason: string(gwv1.GatewayReasonProgrammed),
		Message: fmt.Sprintf("Served by %d node proxies", a.nodes), ObservedGeneration: gen}
}

// setGatewayStatus writes st into a Gateway's status.
func setGatewayStatus(gw *gwv1.Gateway, st gatewayStatus) {
	gen := gw.Generation
	prog := programmed(st, gen)
	want := append(slices.Clone(st.result.Conditions), prog)
	if st.built != nil && st.built.warning != "" {
		want = append(want, metav1.Condition{Type: ConditionAddressesIgnored, Status: metav1.ConditionTrue, Reason: "AnnotationWins", Message: st.built.warning, ObservedGeneration: gen})
	}
	want = dedupeConditions(want)
	gw.Status.Conditions = mergeConditions(gw.Status.Conditions, want)
	gw.Status.Addresses = st.addresses()
	var listeners []gwv1.ListenerStatus
	for _, l := range st.result.Listeners {
		lc := slices.Clone(l.Conditions)
		if meta.FindStatusCondition(lc, string(gwv1.ListenerConditionProgrammed)) == nil {
			c := prog
			c.Reason = map[bool]string{true: string(gwv1.ListenerReasonProgrammed), false: string(gwv1.ListenerReasonPending)}[prog.Status == metav1.ConditionTrue]
			lc = append(lc, c)
		}
		var old []metav1.Condition
		if i := slices.IndexFunc(gw.Status.Listeners, func(s gwv1.ListenerStatus) bool { return s.Name == l.Name }); i >= 0 {
			old = gw.Status.Listeners[i].Conditions
		}
		l.Conditions = mergeConditions(old, lc)
		listeners = append(listeners, l)
	}
	gw.Status.Listeners = listeners
}

// dedupeConditions keeps the first condition of each type.
func dedupeConditions(cs []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range cs {
		if meta.FindStatusCondition(out, c.Type) == nil {
			out = append(out, c)
		}
	}
	return out
}

// mergeConditions returns want, keeping the transition times of old
// conditions whose status did not change; types not in want go.
func mergeConditions(old, want []metav1.Condition) []metav1.Condition {
	out := []metav1.Condition{}
	for _, c := range old {
		if meta.FindStatusCondition(want, c.Type) != nil {
			out = append(out, c)
		}
	}
	for _, c := range want {
		conditions.Set(&out, c.ObservedGeneration, c)
	}
	// Keep want's order, so the status reads the same every pass.
	slices.SortStableFunc(out, func(a, b metav1.Condition) int {
		return slices.IndexFunc(want, func(c metav1.Condition) bool { return c.Type == a.Type }) -
			slices.IndexFunc(want, func(c metav1.Condition) bool { return c.Type == b.Type })
	})
	return out
}

// mergeParents replaces this controller's entries of a route's
// status.parents with ours, leaving other controllers' entries alone.
func mergeParents(old, ours []gwv1.RouteParentStatus) []gwv1.RouteParentStatus {
	return mergeOurs(old, ours, 0,
		func(p *gwv1.RouteParentStatus) (gwv1.GatewayController, gwv1.ParentReference, *[]metav1.Condition) {
			return p.ControllerName, p.ParentRef, &p.Conditions
		})
}

// mergeAncestors replaces this controller's entries of a policy's
// status.ancestors with ours, leaving other controllers' entries alone,
// within the Gateway API's limit of 16.
func mergeAncestors(old, ours []gwv1.PolicyAncestorStatus) []gwv1.PolicyAncestorStatus {
	return mergeOurs(old, ours, maxAncestors,
		func(a *gwv1.PolicyAncestorStatus) (gwv1.GatewayController, gwv1.ParentReference, *[]metav1.Condition) {
			return a.ControllerName, a.AncestorRef, &a.Conditions
		})
}

// maxAncestors is the Gateway API's limit on a policy's status.ancestors.
const maxAncestors = 16

// mergeOurs merges per-parent status entries (a route's parents, a
// policy's ancestors): other controllers' stay, ours are replaced, keeping
// the transition times of conditions that did not change; limit (0: none)
// bounds the whole list. fields reads an entry's controller, parent and
// conditions.
func mergeOurs[T any](old, ours []T, limit int, fields func(*T) (gwv1.GatewayController, gwv1.ParentReference, *[]metav1.Condition)) []T {
	out := []T{}
	for i := range old {
		if c, _, _ := fields(&old[i]); c != translate.ControllerName {
			out = append(out, old[i])
		}
	}
	if limit > 0 {
		ours = ours[:min(len(ours), max(0, limit-len(out)))]
	}
	for _, e := range ours {
		_, ref, conds := fields(&e)
		var prev []metav1.Condition
		for i := range old {
			if c, r, oc := fields(&old[i]); c == translate.ControllerName && reflect.DeepEqual(r, ref) {
				prev = *oc
			}
		}
		*conds = mergeConditions(prev, *conds)
		out = append(out, e)
	}
	return out
}

// envoyConfigState is a CiliumEnvoyConfig's readiness and what of it is
// not served.
type envoyConfigState struct {
	ready       metav1.Condition
	unsupported string
}

func envoyConfigReady(gen int64, spec *ciliumv2.CiliumEnvoyConfigSpec, a ackSummary) envoyConfigState {
	st := envoyConfigState{}
	var un []string
	if len(spec.Services) > 0 {
		un = append(un, "spec.services")
	}
	if len(spec.BackendServices) > 0 {
		un = append(un, "spec.backendServices")
	}
	if len(un) > 0 {
		st.unsupported = strings.Join(un, ", ") + " not served yet: only the resources are"
	}
	c := metav1.Condition{Type: conditions.TypeReady, ObservedGeneration: gen}
	switch {
	case len(a.refused) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "Refused", "Node proxies refused it: "+strings.Join(a.refused, "; ")
	case a.nodes == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NoNodes", "No node proxy serves it (no node matches its nodeSelector, or none runs the l7proxy plugin)"
	case a.acked < a.nodes:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "Progressing", fmt.Sprintf("%d of %d node proxies acknowledged generation %d", a.acked, a.nodes, gen)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, "Served", fmt.Sprintf("Served by %d node proxies", a.nodes)
	}
	st.ready = c
	return st
}

func setEnvoyConfigStatus(s *ciliumv2.EnvoyConfigStatus, gen int64, st envoyConfigState) {
	s.ObservedGeneration = gen
	conditions.Set(&s.Conditions, gen, st.ready)
	if st.unsupported != "" {
		conditions.Set(&s.Conditions, gen, metav1.Condition{Type: "Unsupported", Status: metav1.ConditionTrue, Reason: "FieldsNotServed", Message: st.unsupported})
	} else {
		conditions.Remove(&s.Conditions, "Unsupported")
	}
}
