package desired

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/internal/iprange"
	"github.com/plexus-net/plexus/internal/selectors"
)

// VirtualRouterAnnotationPrefix starts the Node annotation that tunes a
// legacy virtual router on that node: cilium.io/bgp-virtual-router.<ASN>
// with "router-id=<IPv4>,local-port=<port>" (B60).
const VirtualRouterAnnotationPrefix = "cilium.io/bgp-virtual-router."

// Legacy path attribute selector types.
const (
	selectorPodCIDR   = "PodCIDR"
	selectorLBIPPool  = "CiliumLoadBalancerIPPool"
	selectorPodIPPool = "CiliumPodIPPool"
	// routeService marks Service routes, which LB pool attributes apply to.
	routeService = "Service"
)

// selectingPolicies are the peering policies whose nodeSelector matches the
// node (none: every node), sorted by name. A policy whose selector does not
// parse selects no node.
func (w *world) selectingPolicies() []*ciliumv2alpha1.CiliumBGPPeeringPolicy {
	var out []*ciliumv2alpha1.CiliumBGPPeeringPolicy
	for i := range w.in.PeeringPolicies {
		p := &w.in.PeeringPolicies[i]
		sel, err := selectors.Compile(p.Spec.NodeSelector, true)
		if err != nil {
			w.problem(ReasonInvalidPeeringPolicy, "CiliumBGPPeeringPolicy %s spec.nodeSelector: %v: the policy selects no node", quote(p.Name), err)
			continue
		}
		if sel.Matches(w.labels) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *ciliumv2alpha1.CiliumBGPPeeringPolicy) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// vrTuning is what the node annotation sets for one virtual router.
type vrTuning struct {
	routerID netip.Addr
	port     int32
	err      error
}

// vrTunings parses the node's virtual router annotations by ASN. Keys are
// comma-separated key=value pairs; the last of a repeated key wins and
// unknown keys are ignored, as in the seed system.
func (w *world) vrTunings() map[int64]vrTuning {
	out := map[int64]vrTuning{}
	if w.in.Node == nil {
		return out
	}
	for key, value := range w.in.Node.Annotations {
		asnText, ok := strings.CutPrefix(key, VirtualRouterAnnotationPrefix)
		if !ok {
			continue
		}
		asn, err := strconv.ParseInt(asnText, 10, 64)
		if err != nil || asn < 0 || asn > 0xFFFFFFFF {
			w.problem(ReasonInvalidAnnotation, "Node annotation %s: %q is not an AS number: the annotation is ignored", key, asnText)
			continue
		}
		out[asn] = parseVRTuning(value)
	}
	return out
}

func parseVRTuning(value string) vrTuning {
	var t vrTuning
	for _, kv := range strings.Split(value, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			t.err = fmt.Errorf("%q is not key=value", kv)
			return t
		}
		switch k {
		case "router-id":
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() {
				t.err = fmt.Errorf("router-id %q is not an IPv4 address", v)
				return t
			}
			t.routerID = a
		case "local-port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				t.err = fmt.Errorf("local-port %q is not a port number 1-65535", v)
				return t
			}
			t.port = int32(n)
		}
	}
	return t
}

// fromPolicy translates the one peering policy that selects the node.
func (w *world) fromPolicy(pol *ciliumv2alpha1.CiliumBGPPeeringPolicy) State {
	st := State{Source: "CiliumBGPPeeringPolicy/" + pol.Name}
	tunings := w.vrTunings()
	for i := range pol.Spec.VirtualRouters {
		if inst, ok := w.virtualRouter(pol.Name, &pol.Spec.VirtualRouters[i], tunings); ok {
			st.Instances = append(st.Instances, inst)
		}
	}
	slices.SortFunc(st.Instances, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// legacyRoute is a route a virtual router originates, with where it comes
// from, for matching the neighbours' path attributes.
type legacyRoute struct {
	prefix netip.Prefix
	kind   string     // selectorPodCIDR, selectorPodIPPool or routeService
	pool   labels.Set // the pod pool's labels, for selectorPodIPPool
	addr   netip.Addr // the Service address
}

// virtualRouter translates a virtual router into an instance named after
// its ASN. The router ID and listen port come from the node annotation,
// the router ID else from the node's IPv4 InternalIP.
func (w *world) virtualRouter(policy string, vr *ciliumv2alpha1.CiliumBGPVirtualRouter, tunings map[int64]vrTuning) (Instance, bool) {
	where := fmt.Sprintf("CiliumBGPPeeringPolicy %s virtual router %d", quote(policy), vr.LocalASN)
	asn, ok := asn32(&vr.LocalASN)
	if !ok || asn == 0 {
		w.problem(ReasonInvalidInstance, "%s: localASN must be 1-4294967295: the virtual router is not run", where)
		return Instance{}, false
	}
	inst := Instance{Name: strconv.FormatInt(vr.LocalASN, 10), ASN: asn}
	tuning := tunings[vr.LocalASN]
	annotation := VirtualRouterAnnotationPrefix + inst.Name
	if tuning.err != nil {
		// Running with half the tuning would change the router ID or
		// listener the user asked for; do not run it at all.
		w.problem(ReasonInvalidAnnotation, "Node annotation %s: %v: virtual router %d is not run", annotation, tuning.err, vr.LocalASN)
		return inst, false
	}
	inst.ListenPort = tuning.port
	if inst.RouterID = tuning.routerID; !inst.RouterID.IsValid() {
		if inst.RouterID = nodeIPv4(w.in); !inst.RouterID.IsValid() {
			w.problem(ReasonNoRouterID, "%s: the node has no IPv4 InternalIP: set router-id=<IPv4> in Node annotation %s (required on IPv6-only nodes); the virtual router is not run",
				where, annotation)
			return inst, false
		}
	}

	routes := w.virtualRouterRoutes(where, vr)
	for _, n := range vr.Neighbors {
		if p, ok := w.neighbor(where, n, routes); ok {
			inst.Peers = append(inst.Peers, p)
		}
	}
	slices.SortFunc(inst.Peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	inst.Peers = w.dropDuplicateAddresses(where, inst.Peers)
	return inst, true
}

// virtualRouterRoutes are the routes a virtual router originates: the
// node's pod CIDRs with exportPodCIDR (B57), the CIDRs of the selected pod
// pools held by the node, and the selected Services' addresses of the
// kinds listed, by default LoadBalancerIP only (B58), as host routes.
func (w *world) virtualRouterRoutes(where string, vr *ciliumv2alpha1.CiliumBGPVirtualRouter) []legacyRoute {
	var out []legacyRoute
	if vr.ExportPodCIDR != nil && *vr.ExportPodCIDR {
		for _, p := range w.podCIDRs {
			out = append(out, legacyRoute{prefix: p, kind: selectorPodCIDR})
		}
	}
	if sel, err := selectors.Compile(vr.PodIPPoolSelector, false); err != nil {
		w.problem(ReasonInvalidAdvertising, "%s podIPPoolSelector: %v: no pool is advertised", where, err)
	} else {
		for _, pool := range w.pools {
			if sel.Matches(pool.labels) {
				for _, p := range pool.cidrs {
					out = append(out, legacyRoute{prefix: p, kind: selectorPodIPPool, pool: pool.labels})
				}
			}
		}
	}
	sel, err := selectors.Compile(vr.ServiceSelector, false)
	if err != nil {
		w.problem(ReasonInvalidAdvertising, "%s serviceSelector: %v: no Service is advertised", where, err)
		return out
	}
	kinds := []string{string(ciliumv2.BGPLoadBalancerIPAddr)}
	if len(vr.ServiceAdvertisements) > 0 {
		kinds = kinds[:0]
		for _, k := range vr.ServiceAdvertisements {
			kinds = append(kinds, string(k))
		}
	}
	for i := range w.services {
		s := &w.services[i]
		if !sel.Matches(s.labels) {
			continue
		}
		for _, sa := range s.addresses(kinds) {
			out = append(out, legacyRoute{prefix: hostPrefix(sa.addr), kind: routeService, addr: sa.addr})
		}
	}
	return out
}

// pathAttrs is one advertisedPathAttributes entry, compiled.
type pathAttrs struct {
	appliesTo string // the kind of routes: selectorPodCIDR, selectorPodIPPool or routeService
	matches   func(legacyRoute) bool
	at        attrs
}

// neighbor translates a neighbour: its session settings with the same
// defaults as a PeerConfig, and the virtual router's routes of the
// families it negotiates and the node runs, with its path attributes
// (B61; several matching entries merge like overlapping advertisements).
func (w *world) neighbor(vrWhere string, n ciliumv2alpha1.CiliumBGPNeighbor, routes []legacyRoute) (Peer, bool) {
	where := fmt.Sprintf("%s neighbor %s", vrWhere, n.PeerAddress)
	addr, err := parseNeighborAddress(n.PeerAddress)
	if err != nil {
		w.problem(ReasonInvalidPeer, "%s: peerAddress is not an address in CIDR notation such as 10.0.0.1/32: the neighbor is skipped", where)
		return Peer{}, false
	}
	asn, ok := asn32(&n.PeerASN)
	if !ok {
		w.problem(ReasonInvalidPeer, "%s: peerASN %d is not a 32-bit AS number: the neighbor is skipped", where, n.PeerASN)
		return Peer{}, false
	}
	p := defaultPeer(fmt.Sprintf("%s-%d", addr, asn))
	p.Address, p.ASN = addr, asn
	setPort(&p.Port, n.PeerPort)
	setSeconds(&p.ConnectRetry, n.ConnectRetryTimeSeconds)
	setSeconds(&p.HoldTime, n.HoldTimeSeconds)
	setSeconds(&p.Keepalive, n.KeepAliveTimeSeconds)
	setTTL(&p.EBGPMultihopTTL, n.EBGPMultihopTTL)
	if gr := n.GracefulRestart; gr != nil {
		p.GracefulRestart = gracefulRestart(gr.Enabled, gr.RestartTimeSeconds)
	}
	afis := make([]string, 0, len(n.Families))
	for _, f := range n.Families {
		if f.Safi == "unicast" {
			afis = append(afis, f.Afi)
		}
	}
	p.Families = families(afis)
	if n.AuthSecretRef != nil {
		p.Password = w.password(*n.AuthSecretRef, where+" authSecretRef")
	}

	var pas []pathAttrs
	for i, pa := range n.AdvertisedPathAttributes {
		if c, ok := w.compilePathAttrs(fmt.Sprintf("%s advertisedPathAttributes[%d]", where, i), pa); ok {
			pas = append(pas, c)
		}
	}
	t := routeTable{}
	for _, r := range routes {
		afi := afiOf(r.prefix)
		if !w.supports(afi) || !slices.ContainsFunc(p.Families, func(f Family) bool { return f.AFI == afi }) {
			continue
		}
		var at attrs
		for _, pa := range pas {
			if pa.appliesTo == r.kind && pa.matches(r) {
				at = at.merge(pa.at)
			}
		}
		t.add(r.prefix, at)
	}
	p.Routes = t.routes()
	return p, true
}

// compilePathAttrs compiles an attributes entry. Its selector, absent,
// selects every object of its type:
//   - PodCIDR: the node, by its labels (the Node's, over the CiliumNode's);
//   - CiliumPodIPPool: pod pools by labels and special keys;
//   - CiliumLoadBalancerIPPool: LB pools by labels; it applies to Service
//     addresses inside their blocks.
func (w *world) compilePathAttrs(where string, pa ciliumv2alpha1.CiliumBGPPathAttributes) (pathAttrs, bool) {
	out := pathAttrs{appliesTo: pa.SelectorType}
	var c ciliumv2alpha1.BGPCommunities
	if pa.Communities != nil {
		c = *pa.Communities
	}
	var err error
	if out.at, err = parseAttrs(c.Standard, c.WellKnown, c.Large, pa.LocalPreference); err != nil {
		w.problem(ReasonInvalidAdvertising, "%s: %v: the attributes are not applied", where, err)
		return out, false
	}
	sel, err := selectors.Compile(pa.Selector, true)
	if err != nil {
		w.problem(ReasonInvalidAdvertising, "%s selector: %v: the attributes are not applied", where, err)
		return out, false
	}
	switch pa.SelectorType {
	case selectorPodCIDR:
		node := labels.Set{}
		if w.in.CiliumNode != nil {
			for k, v := range w.in.CiliumNode.Labels {
				node[k] = v
			}
		}
		for k, v := range w.labels {
			node[k] = v
		}
		selected := sel.Matches(node)
		out.matches = func(legacyRoute) bool { return selected }
	case selectorPodIPPool:
		out.matches = func(r legacyRoute) bool { return sel.Matches(r.pool) }
	case selectorLBIPPool:
		out.appliesTo = routeService
		var ranges []iprange.Range
		for _, pool := range w.lbPools {
			if sel.Matches(pool.labels) {
				ranges = append(ranges, pool.ranges...)
			}
		}
		out.matches = func(r legacyRoute) bool {
			return slices.ContainsFunc(ranges, func(rg iprange.Range) bool { return rg.Contains(r.addr) })
		}
	default:
		w.problem(ReasonInvalidAdvertising, "%s: unknown selectorType %q: the attributes are not applied", where, pa.SelectorType)
		return out, false
	}
	return out, true
}

// parseNeighborAddress reads a legacy peerAddress: a host prefix such as
// 10.0.0.1/32 (B59); a bare address is accepted too.
func parseNeighborAddress(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}
