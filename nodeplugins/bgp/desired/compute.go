package desired

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/selectors"
)

// Compute returns the BGP state the node should hold. It is pure and
// deterministic: the same input, in any order, gives the same State.
//
// Where the state comes from (B55, B56):
//   - exactly one legacy CiliumBGPPeeringPolicy selects the node: that
//     policy, even when the node also has a CiliumBGPNodeConfig;
//   - several select it: no instances at all, and a SeveralPeeringPolicies
//     problem naming them;
//   - none: the node's CiliumBGPNodeConfig, or nothing when it has none.
func Compute(in Input) State {
	w := newWorld(&in)
	var st State
	switch policies := w.selectingPolicies(); {
	case len(policies) > 1:
		names := make([]string, len(policies))
		for i, p := range policies {
			names[i] = p.Name
		}
		w.problem(ReasonSeveralPolicies, "more than one CiliumBGPPeeringPolicy applies to this node (%s): all its BGP sessions are cleared until only one selects it",
			strings.Join(names, ", "))
	case len(policies) == 1:
		st = w.fromPolicy(policies[0])
	case in.NodeConfig != nil:
		st = w.fromNodeConfig(in.NodeConfig)
	}
	st.Problems = sortProblems(w.problems)
	return st
}

// sortProblems orders the problems and drops repeats (a PeerConfig shared
// by many peers reports its missing Secret once).
func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Reason, b.Reason), strings.Compare(a.Message, b.Message))
	})
	return slices.Compact(ps)
}

// fromNodeConfig translates the node's CiliumBGPNodeConfig.
func (w *world) fromNodeConfig(nc *ciliumv2.CiliumBGPNodeConfig) State {
	st := State{Source: "CiliumBGPNodeConfig/" + nc.Name}
	peerConfigs := map[string]*ciliumv2.CiliumBGPPeerConfig{}
	for i := range w.in.PeerConfigs {
		peerConfigs[w.in.PeerConfigs[i].Name] = &w.in.PeerConfigs[i]
	}
	adverts := make([]*ciliumv2.CiliumBGPAdvertisement, len(w.in.Advertisements))
	for i := range w.in.Advertisements {
		adverts[i] = &w.in.Advertisements[i]
	}
	slices.SortFunc(adverts, func(a, b *ciliumv2.CiliumBGPAdvertisement) int { return strings.Compare(a.Name, b.Name) })

	for _, ci := range nc.Spec.BGPInstances {
		inst, ok := w.nodeInstance(ci)
		if !ok {
			continue
		}
		peers := slices.SortedFunc(slices.Values(ci.Peers), func(a, b ciliumv2.CiliumBGPNodePeer) int { return strings.Compare(a.Name, b.Name) })
		for _, cp := range peers {
			if p, ok := w.nodePeer(ci.Name, cp, peerConfigs, adverts); ok {
				inst.Peers = append(inst.Peers, p)
			}
		}
		inst.Peers = w.dropDuplicateAddresses("instance "+quote(ci.Name), inst.Peers)
		st.Instances = append(st.Instances, inst)
	}
	slices.SortFunc(st.Instances, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// nodeInstance translates an instance without its peers. The router ID is
// the config's (the BGP controller fills it in), else the node's IPv4
// InternalIP.
func (w *world) nodeInstance(ci ciliumv2.CiliumBGPNodeInstance) (Instance, bool) {
	inst := Instance{Name: ci.Name}
	asn, ok := asn32(ci.LocalASN)
	if !ok || asn == 0 {
		w.problem(ReasonInvalidInstance, "CiliumBGPNodeConfig instance %s has no valid localASN (1-4294967295): the instance is not run", quote(ci.Name))
		return inst, false
	}
	inst.ASN = asn
	if ci.RouterID != nil {
		id, err := netip.ParseAddr(*ci.RouterID)
		if err != nil || !id.Is4() {
			w.problem(ReasonNoRouterID, "CiliumBGPNodeConfig instance %s: routerID %q is not an IPv4 address: the instance is not run", quote(ci.Name), *ci.RouterID)
			return inst, false
		}
		inst.RouterID = id
	} else if inst.RouterID = nodeIPv4(w.in); !inst.RouterID.IsValid() {
		if inst.RouterID = w.in.DerivedRouterID; !inst.RouterID.IsValid() {
			w.problem(ReasonNoRouterID, "CiliumBGPNodeConfig instance %s has no routerID, and the node has neither an IPv4 InternalIP nor a MAC address to derive one from: set one in the node's CiliumBGPNodeConfigOverride; the instance is not run", quote(ci.Name))
			return inst, false
		}
	}
	if ci.LocalPort != nil && *ci.LocalPort > 0 && *ci.LocalPort <= math.MaxUint16 {
		inst.ListenPort = *ci.LocalPort
	}
	return inst, true
}

// nodePeer translates one peer with the settings of its CiliumBGPPeerConfig.
// A peer without a peerConfigRef gets the default settings, and so does a
// peer whose PeerConfig is missing (with a problem): the session still comes
// up, advertising nothing, as it would with an empty PeerConfig.
func (w *world) nodePeer(instance string, cp ciliumv2.CiliumBGPNodePeer, peerConfigs map[string]*ciliumv2.CiliumBGPPeerConfig,
	adverts []*ciliumv2.CiliumBGPAdvertisement) (Peer, bool) {
	p := defaultPeer(cp.Name)
	where := fmt.Sprintf("CiliumBGPNodeConfig instance %s peer %s", quote(instance), quote(cp.Name))
	switch {
	case cp.AutoDiscovery != nil:
		ad := cp.AutoDiscovery
		if ad.Mode != ciliumv2.BGPAutoDiscoveryDefaultGateway || ad.DefaultGateway == nil ||
			(ad.DefaultGateway.AddressFamily != ciliumv2.BGPAddressFamilyIPv4 && ad.DefaultGateway.AddressFamily != ciliumv2.BGPAddressFamilyIPv6) {
			w.problem(ReasonInvalidPeer, "%s: autoDiscovery needs mode DefaultGateway with addressFamily ipv4 or ipv6: the peer is skipped", where)
			return p, false
		}
		p.AutoDiscovery = &AutoDiscovery{Family: ad.DefaultGateway.AddressFamily}
	case cp.PeerAddress != nil:
		a, err := netip.ParseAddr(*cp.PeerAddress)
		if err != nil {
			w.problem(ReasonInvalidPeer, "%s: peerAddress %q is not an IP address: the peer is skipped", where, *cp.PeerAddress)
			return p, false
		}
		p.Address = a.Unmap()
	default:
		w.problem(ReasonInvalidPeer, "%s has neither peerAddress nor autoDiscovery: the peer is skipped", where)
		return p, false
	}
	if cp.PeerASN != nil {
		asn, ok := asn32(cp.PeerASN)
		if !ok {
			w.problem(ReasonInvalidPeer, "%s: peerASN %d is not a 32-bit AS number: the peer is skipped", where, *cp.PeerASN)
			return p, false
		}
		p.ASN = asn
	}
	if cp.LocalAddress != nil {
		a, err := netip.ParseAddr(*cp.LocalAddress)
		if err != nil {
			w.problem(ReasonInvalidPeer, "%s: localAddress %q is not an IP address: the peer is skipped", where, *cp.LocalAddress)
			return p, false
		}
		p.LocalAddress = a.Unmap()
	}
	if cp.PeerConfigRef == nil {
		return p, true
	}
	pc := peerConfigs[cp.PeerConfigRef.Name]
	if pc == nil {
		w.problem(ReasonMissingPeerConfig, "%s: CiliumBGPPeerConfig %s (peerConfigRef) does not exist: the peer uses default settings and is sent no routes",
			where, quote(cp.PeerConfigRef.Name))
		return p, true
	}
	w.applyPeerConfig(&p, pc)
	if t := pc.Spec.Transport; t != nil && t.SourceInterface != nil && !p.LocalAddress.IsValid() {
		afi := p.family()
		addr, why := w.sourceAddress(*t.SourceInterface, afi)
		if why != "" {
			w.problem(ReasonInterfaceUnavailable, "%s: CiliumBGPPeerConfig %s spec.transport.sourceInterface: %s: the peer is skipped", where, quote(pc.Name), why)
			return p, false
		}
		p.LocalAddress = addr
	}
	p.Routes = w.peerConfigRoutes(pc, adverts)
	// Routes and families come from the PeerConfig alone.
	p.RouteGroup = "CiliumBGPPeerConfig/" + pc.Name
	return p, true
}

// family is the address family of the peer's session: its address's, or
// the auto-discovered gateway's.
func (p Peer) family() string {
	if p.AutoDiscovery != nil {
		return p.AutoDiscovery.Family
	}
	return afiOf(netip.PrefixFrom(p.Address, 0))
}

// defaultPeer is a peer with the settings of an empty PeerConfig: port
// 179, timers 120/90/30 (B16), TTL 1, no graceful restart, IPv4 and IPv6
// unicast (B24).
func defaultPeer(name string) Peer {
	return Peer{
		Name:            name,
		Port:            ciliumv2.DefaultBGPPeerPort,
		ConnectRetry:    ciliumv2.DefaultBGPConnectRetryTimeSeconds * time.Second,
		HoldTime:        ciliumv2.DefaultBGPHoldTimeSeconds * time.Second,
		Keepalive:       ciliumv2.DefaultBGPKeepAliveTimeSeconds * time.Second,
		EBGPMultihopTTL: ciliumv2.DefaultBGPEBGPMultihop,
		Families:        defaultFamilies(),
	}
}

func defaultFamilies() []Family {
	return []Family{{AFI: ciliumv2.BGPAddressFamilyIPv4, SAFI: "unicast"}, {AFI: ciliumv2.BGPAddressFamilyIPv6, SAFI: "unicast"}}
}

// applyPeerConfig sets the session settings of a PeerConfig; absent fields
// keep the defaults (the API server normally fills them in anyway).
func (w *world) applyPeerConfig(p *Peer, pc *ciliumv2.CiliumBGPPeerConfig) {
	s := &pc.Spec
	if s.Transport != nil {
		setPort(&p.Port, s.Transport.PeerPort)
	}
	if s.Timers != nil {
		setSeconds(&p.ConnectRetry, s.Timers.ConnectRetryTimeSeconds)
		setSeconds(&p.HoldTime, s.Timers.HoldTimeSeconds)
		setSeconds(&p.Keepalive, s.Timers.KeepAliveTimeSeconds)
	}
	setTTL(&p.EBGPMultihopTTL, s.EBGPMultihop)
	if gr := s.GracefulRestart; gr != nil {
		p.GracefulRestart = gracefulRestart(gr.Enabled, gr.RestartTimeSeconds)
	}
	afis := make([]string, 0, len(s.Families))
	for _, f := range s.Families {
		if f.Safi == "unicast" {
			afis = append(afis, f.Afi)
		}
	}
	p.Families = families(afis)
	if s.AuthSecretRef != nil {
		p.Password = w.password(*s.AuthSecretRef, "CiliumBGPPeerConfig "+quote(pc.Name)+" spec.authSecretRef")
	}
}

// families turns configured AFIs into the negotiated families: sorted,
// without repeats or unknown AFIs, both unicast families when none (B24,
// B25).
func families(afis []string) []Family {
	var out []Family
	for _, afi := range []string{ciliumv2.BGPAddressFamilyIPv4, ciliumv2.BGPAddressFamilyIPv6} {
		if slices.Contains(afis, afi) {
			out = append(out, Family{AFI: afi, SAFI: "unicast"})
		}
	}
	if len(out) == 0 {
		return defaultFamilies()
	}
	return out
}

func gracefulRestart(enabled bool, restart *int32) GracefulRestart {
	if !enabled {
		return GracefulRestart{}
	}
	gr := GracefulRestart{Enabled: true, RestartTime: ciliumv2.DefaultBGPRestartTimeSeconds * time.Second}
	setSeconds(&gr.RestartTime, restart)
	return gr
}

// password is the MD5 password in the named Secret. A missing Secret gives
// an empty password and a problem: the session is still tried (B7).
func (w *world) password(secret, where string) string {
	if pw, ok := w.in.Secrets[secret]; ok {
		return pw
	}
	name := secret
	if w.in.SecretsNamespace != "" {
		name = w.in.SecretsNamespace + "/" + secret
	}
	w.problem(ReasonMissingAuthSecret, "%s: Secret %q does not exist or has no key %q: sessions use an empty password",
		where, name, ciliumv2.BGPAuthSecretKey)
	return ""
}

// peerConfigRoutes are the routes a peer using pc is sent: per family the
// PeerConfig lists and the node runs (B68), the routes of that family of
// every advertisement the family selects (none without a selector, B26).
func (w *world) peerConfigRoutes(pc *ciliumv2.CiliumBGPPeerConfig, adverts []*ciliumv2.CiliumBGPAdvertisement) []Route {
	t := routeTable{}
	for _, f := range pc.Spec.Families {
		if f.Safi != "unicast" || !w.supports(f.Afi) {
			continue
		}
		sel, err := selectors.Compile(f.Advertisements, false)
		if err != nil {
			w.problem(ReasonInvalidAdvertising, "CiliumBGPPeerConfig %s spec.families[%s].advertisements: %v: nothing is advertised in that family", quote(pc.Name), f.Afi, err)
			continue
		}
		for _, adv := range adverts {
			if !sel.Matches(labels.Set(adv.Labels)) {
				continue
			}
			for i := range adv.Spec.Advertisements {
				prefixes, at, ok := w.advertRoutes(adv, i)
				if !ok {
					continue
				}
				for _, p := range prefixes {
					if afiOf(p) == f.Afi {
						t.add(p, at)
					}
				}
			}
		}
	}
	return t.routes()
}

// advertRoutes are the prefixes and attributes of one entry of an
// advertisement. An entry with unusable attributes or selector advertises
// nothing: sending its routes without, say, no-export could leak them.
func (w *world) advertRoutes(adv *ciliumv2.CiliumBGPAdvertisement, i int) ([]netip.Prefix, attrs, bool) {
	a := &adv.Spec.Advertisements[i]
	where := fmt.Sprintf("CiliumBGPAdvertisement %s spec.advertisements[%d]", quote(adv.Name), i)
	var at attrs
	if a.Attributes != nil {
		var c ciliumv2.BGPCommunities
		if a.Attributes.Communities != nil {
			c = *a.Attributes.Communities
		}
		var err error
		if at, err = parseAttrs(c.Standard, c.WellKnown, c.Large, a.Attributes.LocalPreference); err != nil {
			w.problem(ReasonInvalidAdvertising, "%s.attributes: %v: its routes are not advertised", where, err)
			return nil, attrs{}, false
		}
	}
	switch a.AdvertisementType {
	case ciliumv2.BGPPodCIDRAdvert:
		return w.podCIDRs, at, true
	case ciliumv2.BGPCiliumPodIPPoolAdvert:
		sel, err := selectors.Compile(a.Selector, false)
		if err != nil {
			w.problem(ReasonInvalidAdvertising, "%s.selector: %v: its routes are not advertised", where, err)
			return nil, attrs{}, false
		}
		var out []netip.Prefix
		for _, pool := range w.pools {
			if sel.Matches(pool.labels) {
				out = append(out, pool.cidrs...)
			}
		}
		return out, at, true
	case ciliumv2.BGPServiceAdvert:
		if a.Service == nil {
			w.problem(ReasonInvalidAdvertising, "%s: advertisementType Service needs service.addresses: nothing is advertised", where)
			return nil, attrs{}, false
		}
		sel, err := selectors.Compile(a.Selector, false)
		if err != nil {
			w.problem(ReasonInvalidAdvertising, "%s.selector: %v: its routes are not advertised", where, err)
			return nil, attrs{}, false
		}
		kinds := make([]string, len(a.Service.Addresses))
		for j, k := range a.Service.Addresses {
			kinds[j] = string(k)
		}
		var out []netip.Prefix
		for i := range w.services {
			s := &w.services[i]
			if !sel.Matches(s.labels) {
				continue
			}
			for _, sa := range s.addresses(kinds) {
				out = append(out, aggregate(sa, a.Service.AggregationLengthIPv4, a.Service.AggregationLengthIPv6))
			}
		}
		return out, at, true
	case ciliumv2.BGPInterfaceAdvert:
		if a.Interface == nil {
			w.problem(ReasonInvalidAdvertising, "%s: advertisementType Interface needs interface.name: nothing is advertised", where)
			return nil, attrs{}, false
		}
		out, why := w.interfaceRoutes(a.Interface.Name)
		if why != "" {
			w.problem(ReasonInterfaceUnavailable, "%s.interface: %s: nothing is advertised for it", where, why)
		}
		return out, at, true
	}
	w.problem(ReasonInvalidAdvertising, "%s: unknown advertisementType %q: nothing is advertised", where, a.AdvertisementType)
	return nil, attrs{}, false
}

// aggregate is the route of a Service address: the prefix of the family's
// aggregation length containing it, or the host route when no length is
// set or the address's traffic policy is Local (B44).
func aggregate(sa svcAddr, v4, v6 *int32) netip.Prefix {
	length := v6
	if sa.addr.Is4() {
		length = v4
	}
	if sa.local || length == nil || *length < 0 || int(*length) >= sa.addr.BitLen() {
		return hostPrefix(sa.addr)
	}
	return netip.PrefixFrom(sa.addr, int(*length)).Masked()
}

// dropDuplicateAddresses keeps, of peers with one address, the first by
// name: one speaker cannot hold two neighbours at one address.
func (w *world) dropDuplicateAddresses(where string, peers []Peer) []Peer {
	seen := map[netip.Addr]string{}
	out := peers[:0]
	for _, p := range peers {
		if p.Address.IsValid() {
			if first, dup := seen[p.Address]; dup {
				w.problem(ReasonInvalidPeer, "%s: peers %s and %s have the same address %s: %s is skipped", where, quote(first), quote(p.Name), p.Address, quote(p.Name))
				continue
			}
			seen[p.Address] = p.Name
		}
		out = append(out, p)
	}
	return out
}

func asn32(v *int64) (uint32, bool) {
	if v == nil || *v < 0 || *v > math.MaxUint32 {
		return 0, false
	}
	return uint32(*v), true
}

func setSeconds(d *time.Duration, v *int32) {
	if v != nil && *v > 0 {
		*d = time.Duration(*v) * time.Second
	}
}

func setPort(p *uint16, v *int32) {
	if v != nil && *v > 0 && *v <= math.MaxUint16 {
		*p = uint16(*v)
	}
}

func setTTL(t *uint8, v *int32) {
	if v != nil && *v > 0 && *v <= math.MaxUint8 {
		*t = uint8(*v)
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
