package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	apb "google.golang.org/protobuf/types/known/anypb"

	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

// Defaults used when the desired state leaves a timer at zero (B16, B22).
const (
	defaultConnectRetry = 120 * time.Second
	defaultHoldTime     = 90 * time.Second
	defaultKeepalive    = 30 * time.Second
	defaultRestartTime  = 120 * time.Second
	defaultPeerPort     = 179
)

// vrfAdmin is the administrator field of the route distinguishers and
// route targets of the route groups' VRFs: a reserved AS number, since these
// values never leave the node.
const vrfAdmin = 65535

// globalConfig is the GoBGP global configuration of an instance.
func globalConfig(in desired.Instance, listen []string) *api.Global {
	g := &api.Global{
		Asn:        in.ASN,
		RouterId:   in.RouterID.String(),
		ListenPort: -1, // GoBGP: no listener at all (B11)
	}
	if in.ListenPort > 0 {
		g.ListenPort = in.ListenPort
		g.ListenAddresses = listen
	}
	return g
}

// vrfConfig is the private VRF of the route group with the given id.
func vrfConfig(name string, id uint32) (*api.Vrf, error) {
	rd, err := apiutil.MarshalRD(bgp.NewRouteDistinguisherTwoOctetAS(vrfAdmin, id))
	if err != nil {
		return nil, err
	}
	rt, err := apiutil.MarshalRT(bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, vrfAdmin, id, true))
	if err != nil {
		return nil, err
	}
	// Id stays 0: it only matters to zebra, and GoBGP checks every path
	// update against every VRF with a non-zero Id (a regexp compilation
	// each), which would make route updates cost O(peers) more.
	return &api.Vrf{Name: name, Rd: rd, ImportRt: []*apb.Any{rt}, ExportRt: []*apb.Any{rt}}, nil
}

// peerConfig is the GoBGP neighbour for p at addr, bound to VRF vrf.
func peerConfig(p desired.Peer, addr netip.Addr, vrf string) *api.Peer {
	port := uint32(p.Port)
	if port == 0 {
		port = defaultPeerPort
	}
	tr := &api.Transport{RemotePort: port}
	if p.LocalAddress.IsValid() {
		tr.LocalAddress = p.LocalAddress.String() // B50
	}
	out := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: addr.String(),
			PeerAsn:         p.ASN, // 0 accepts any (B10)
			AuthPassword:    p.Password,
			Vrf:             vrf,
		},
		Transport: tr,
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      seconds(p.ConnectRetry, defaultConnectRetry),
			HoldTime:          seconds(p.HoldTime, defaultHoldTime),
			KeepaliveInterval: seconds(p.Keepalive, defaultKeepalive),
		}},
	}
	if p.EBGPMultihopTTL > 1 {
		out.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultihopTTL)}
	}
	gr := p.GracefulRestart.Enabled
	if gr {
		out.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(seconds(p.GracefulRestart.RestartTime, defaultRestartTime)),
			// RFC 8538: a NOTIFICATION other than Hard Reset (e.g. hold
			// timer expiry) keeps the routes too; deconfiguring still sends
			// Hard Reset, so the peer withdraws at once (B66).
			NotificationEnabled: true,
		}
	}
	for _, f := range p.Families {
		fam, ok := apiFamily(f)
		if !ok {
			continue
		}
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
		if gr {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		out.AfiSafis = append(out.AfiSafis, af)
	}
	return out
}

func seconds(d, def time.Duration) uint64 {
	if d <= 0 {
		d = def
	}
	s := uint64((d + time.Second/2) / time.Second)
	if s == 0 {
		s = 1
	}
	return s
}

var (
	familyIPv4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyIPv6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

func apiFamily(f desired.Family) (*api.Family, bool) {
	if f.SAFI != "unicast" {
		return nil, false
	}
	switch f.AFI {
	case "ipv4":
		return familyIPv4, true
	case "ipv6":
		return familyIPv6, true
	}
	return nil, false
}

// afiOf names a prefix's address family as the API does.
func afiOf(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// nlri is a prefix as GoBGP's native NLRI.
func nlri(p netip.Prefix) bgp.AddrPrefixInterface {
	if p.Addr().Is4() {
		return bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
	}
	return bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
}

// unspecifiedNextHop lets GoBGP put the session's local address in.
func unspecifiedNextHop(n bgp.AddrPrefixInterface, v4 bool) bgp.PathAttributeInterface {
	if v4 {
		return bgp.NewPathAttributeNextHop("0.0.0.0")
	}
	return bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{n})
}

// routePath is the path that originates r.
func routePath(r desired.Route) (*api.Path, error) {
	n := nlri(r.Prefix)
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		unspecifiedNextHop(n, r.Prefix.Addr().Is4()),
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(r.Communities))
	}
	if len(r.LargeCommunities) > 0 {
		lc := make([]*bgp.LargeCommunity, 0, len(r.LargeCommunities))
		for _, c := range r.LargeCommunities {
			lc = append(lc, bgp.NewLargeCommunity(c.Global, c.Local1, c.Local2))
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
	}
	if r.LocalPreference != nil {
		// GoBGP strips it for eBGP peers (B42).
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(*r.LocalPreference))
	}
	return apiutil.NewPath(n, false, attrs, time.Unix(0, 0))
}

// withdrawPath names r's prefix for DeletePath.
func withdrawPath(p netip.Prefix) (*api.Path, error) {
	n := nlri(p)
	return apiutil.NewPath(n, true, []bgp.PathAttributeInterface{unspecifiedNextHop(n, p.Addr().Is4())}, time.Unix(0, 0))
}

// sameRoute reports whether two routes carry the same attributes.
func sameRoute(a, b desired.Route) bool {
	if a.Prefix != b.Prefix || !slices.Equal(a.Communities, b.Communities) || !slices.Equal(a.LargeCommunities, b.LargeCommunities) {
		return false
	}
	if (a.LocalPreference == nil) != (b.LocalPreference == nil) {
		return false
	}
	return a.LocalPreference == nil || *a.LocalPreference == *b.LocalPreference
}

func formatCommunity(c uint32) string { return fmt.Sprintf("%d:%d", c>>16, c&0xffff) }

func formatLarge(c desired.LargeCommunity) string {
	return fmt.Sprintf("%d:%d:%d", c.Global, c.Local1, c.Local2)
}
