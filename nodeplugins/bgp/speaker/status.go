package speaker

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

// Status reports every instance in desired order: its local RIB and the
// state of each peer's session. Route lists hold at most routeLimit
// entries (0: none) in prefix order; the totals count them all. The result
// depends only on the state of the sessions and tables, not on the clock,
// so that equal states give equal statuses.
func (s *Speaker) Status(ctx context.Context, routeLimit int) []ciliumv2.CiliumBGPNodeInstanceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ciliumv2.CiliumBGPNodeInstanceStatus
	for _, in := range s.want.Instances {
		st := ciliumv2.CiliumBGPNodeInstanceStatus{Name: in.Name, LocalASN: ptr.To(int64(in.ASN))}
		if in.RouterID.IsValid() {
			st.RouterID = in.RouterID.String()
		}
		inst := s.instances[in.Name]
		if inst == nil {
			out = append(out, st)
			continue
		}
		sessions := inst.sessions(ctx)
		for _, w := range in.Peers {
			if p := inst.peers[w.Name]; p != nil {
				st.Peers = append(st.Peers, inst.peerStatus(p, sessions, routeLimit))
			}
		}
		st.Routes, st.RoutesTotal = inst.localRIB(routeLimit)
		out = append(out, st)
	}
	return out
}

// sessions is GoBGP's view of every neighbour, by address.
func (i *instance) sessions(ctx context.Context) map[string]*api.Peer {
	m := map[string]*api.Peer{}
	_ = i.server.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf != nil {
			m[p.Conf.NeighborAddress] = p
		}
	})
	return m
}

func (i *instance) peerStatus(p *peer, sessions map[string]*api.Peer, limit int) ciliumv2.CiliumBGPNodePeerStatus {
	st := ciliumv2.CiliumBGPNodePeerStatus{Name: p.name, PeeringState: ciliumv2.BGPPeeringStateIdle}
	if p.conf == nil {
		st.LastError = p.problem
		if p.want.ASN != 0 {
			st.PeerASN = ptr.To(int64(p.want.ASN))
		}
		st.RouteCount = zeroCounts(p.want.Families)
		return st
	}
	addr := p.conf.Conf.NeighborAddress
	st.PeerAddress = addr
	st.LastError = i.book.get(addr)
	sess := sessions[addr]
	if sess == nil || sess.State == nil {
		st.PeeringState = ciliumv2.BGPPeeringStateUnknown
		st.RouteCount = zeroCounts(p.want.Families)
		return st
	}
	if asn := sess.State.PeerAsn; asn != 0 {
		st.PeerASN = ptr.To(int64(asn))
	}
	st.PeeringState = peeringState(sess.State.SessionState)
	established := st.PeeringState == ciliumv2.BGPPeeringStateEstablished
	if established && sess.Timers != nil && sess.Timers.State != nil {
		ts := sess.Timers.State
		if ts.Uptime != nil {
			st.EstablishedTime = ptr.To(metav1.NewTime(time.Unix(ts.Uptime.Seconds, 0).UTC()))
		}
		st.Timers = &ciliumv2.CiliumBGPTimersState{
			AppliedHoldTimeSeconds:  ptr.To(int32(ts.NegotiatedHoldTime)),
			AppliedKeepaliveSeconds: ptr.To(int32(ts.KeepaliveInterval)),
		}
	}
	received := map[string]int32{}
	for _, af := range sess.AfiSafis {
		if af.State != nil && af.State.Family != nil {
			received[familyName(af.State.Family)] = int32(af.State.Received)
		}
	}
	var negotiated map[string]bool
	if established {
		negotiated = remoteFamilies(sess)
	}
	out := outgoing{ibgp: sess.State.Type == api.PeerType_INTERNAL}
	if sess.Transport != nil {
		out.nextHop = sess.Transport.LocalAddress
	}
	var held map[netip.Prefix]desired.Route
	if p.table != nil {
		held = p.table.routes
	}
	routes := sortedPrefixes(held)
	for _, f := range p.want.Families {
		if _, ok := apiFamily(f); !ok {
			continue
		}
		count := ciliumv2.BGPFamilyRouteCount{
			CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: f.AFI, Safi: f.SAFI},
			Received:        received[f.AFI],
		}
		if negotiated[f.AFI] {
			for _, pfx := range routes {
				if afiOf(pfx) != f.AFI {
					continue
				}
				count.Advertised++
				if len(st.AdvertisedRoutes) < limit {
					st.AdvertisedRoutes = append(st.AdvertisedRoutes, out.route(held[pfx]))
				}
			}
		}
		st.RouteCount = append(st.RouteCount, count)
	}
	return st
}

// remoteFamilies are the unicast families the neighbour's OPEN offered;
// GoBGP sends a family only if both sides offered it. An OPEN without
// multiprotocol capabilities means IPv4 unicast (RFC 4760).
func remoteFamilies(sess *api.Peer) map[string]bool {
	out := map[string]bool{}
	caps, _ := apiutil.UnmarshalCapabilities(sess.State.RemoteCap)
	seen := false
	for _, c := range caps {
		if mp, ok := c.(*bgp.CapMultiProtocol); ok {
			seen = true
			switch mp.CapValue {
			case bgp.RF_IPv4_UC:
				out["ipv4"] = true
			case bgp.RF_IPv6_UC:
				out["ipv6"] = true
			}
		}
	}
	if !seen {
		out["ipv4"] = true
	}
	return out
}

// outgoing applies what GoBGP changes on a locally originated route on its
// way to a peer (table.UpdatePathAttrs and postFilterpath): the next hop
// becomes the session's local address, and local preference is sent to
// iBGP peers only, 100 when the route has none.
type outgoing struct {
	ibgp    bool
	nextHop string
}

func (o outgoing) route(r desired.Route) ciliumv2.BGPRoute {
	br := ribRoute(r)
	br.NextHop = o.nextHop
	switch {
	case !o.ibgp:
		br.LocalPreference = nil
	case br.LocalPreference == nil:
		br.LocalPreference = ptr.To[int64](100)
	}
	return br
}

func zeroCounts(families []desired.Family) []ciliumv2.BGPFamilyRouteCount {
	var out []ciliumv2.BGPFamilyRouteCount
	for _, f := range families {
		if _, ok := apiFamily(f); ok {
			out = append(out, ciliumv2.BGPFamilyRouteCount{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: f.AFI, Safi: f.SAFI}})
		}
	}
	return out
}

func familyName(f *api.Family) string {
	if f.Afi == api.Family_AFI_IP6 {
		return "ipv6"
	}
	return "ipv4"
}

func peeringState(s api.PeerState_SessionState) ciliumv2.BGPPeeringState {
	switch s {
	case api.PeerState_IDLE:
		return ciliumv2.BGPPeeringStateIdle
	case api.PeerState_CONNECT:
		return ciliumv2.BGPPeeringStateConnect
	case api.PeerState_ACTIVE:
		return ciliumv2.BGPPeeringStateActive
	case api.PeerState_OPENSENT:
		return ciliumv2.BGPPeeringStateOpenSent
	case api.PeerState_OPENCONFIRM:
		return ciliumv2.BGPPeeringStateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return ciliumv2.BGPPeeringStateEstablished
	}
	return ciliumv2.BGPPeeringStateUnknown
}

// localRIB is every route the instance originates, once per distinct
// prefix and attributes (different peers may get a prefix with different
// attributes), as held in the peers' tables.
func (i *instance) localRIB(limit int) ([]ciliumv2.BGPRoute, int32) {
	type entry struct {
		route desired.Route
		key   string
	}
	seen := map[string]bool{}
	var all []entry
	for _, t := range i.tables {
		for _, r := range t.routes {
			k := attributesKey(r)
			if !seen[k] {
				seen[k] = true
				all = append(all, entry{r, k})
			}
		}
	}
	slices.SortFunc(all, func(a, b entry) int {
		if c := comparePrefix(a.route.Prefix, b.route.Prefix); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	var out []ciliumv2.BGPRoute
	for _, e := range all[:min(max(limit, 0), len(all))] {
		out = append(out, ribRoute(e.route))
	}
	return out, int32(len(all))
}

func ribRoute(r desired.Route) ciliumv2.BGPRoute {
	br := ciliumv2.BGPRoute{
		CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: afiOf(r.Prefix), Safi: "unicast"},
		Prefix:          r.Prefix.String(),
		NextHop:         "0.0.0.0",
	}
	if !r.Prefix.Addr().Is4() {
		br.NextHop = "::"
	}
	for _, c := range r.Communities {
		br.Communities = append(br.Communities, formatCommunity(c))
	}
	for _, c := range r.LargeCommunities {
		br.LargeCommunities = append(br.LargeCommunities, formatLarge(c))
	}
	if r.LocalPreference != nil {
		br.LocalPreference = ptr.To(int64(*r.LocalPreference))
	}
	return br
}

// attributesKey identifies a route with its attributes.
func attributesKey(r desired.Route) string {
	var b strings.Builder
	b.WriteString(r.Prefix.String())
	for _, c := range r.Communities {
		b.WriteString("|c" + strconv.FormatUint(uint64(c), 10))
	}
	for _, c := range r.LargeCommunities {
		b.WriteString("|l" + formatLarge(c))
	}
	if r.LocalPreference != nil {
		b.WriteString("|p" + strconv.FormatUint(uint64(*r.LocalPreference), 10))
	}
	return b.String()
}
