package speaker

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

// Loopback tests give every GoBGP server its own 127.0.x.y address, so
// that tests can run in parallel in one process (the feasibility study's
// layout).
var lastLoopback atomic.Uint32

func loopbackAddr() netip.Addr {
	n := 2 + lastLoopback.Add(1) // 127.0.0.3 on
	return netip.AddrFrom4([4]byte{127, 0x40 | byte(n>>8), byte(n), 1})
}

// freePort returns a TCP port nothing listens on at addr right now.
func freePort(t testing.TB, addr netip.Addr) int32 {
	t.Helper()
	l, err := net.Listen("tcp4", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func testLogger(t testing.TB) logr.Logger {
	if os.Getenv("SPEAKER_TEST_VERBOSE") != "" {
		return testr.NewWithInterface(t, testr.Options{Verbosity: 4})
	}
	return logr.Discard()
}

func newSpeaker(t testing.TB, opts ...Option) *Speaker {
	t.Helper()
	s := New(testLogger(t), opts...)
	t.Cleanup(s.Stop)
	return s
}

// router is a plain GoBGP server playing the network's router.
type router struct {
	t    testing.TB
	s    *server.BgpServer
	addr netip.Addr
	port int32
	asn  uint32
}

// newRouter starts a router on a fresh loopback address. The port that
// freePort found may be taken before the router binds it (other tests
// open sockets all the time): then it tries another, a few times.
func newRouter(t testing.TB, asn uint32) *router {
	t.Helper()
	addr := loopbackAddr()
	var err error
	for range 5 {
		var r *router
		if r, err = startRouter(t, asn, addr, freePort(t, addr)); err == nil {
			return r
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

func newRouterAt(t testing.TB, asn uint32, addr netip.Addr, port int32) *router {
	t.Helper()
	r, err := startRouter(t, asn, addr, port)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func startRouter(t testing.TB, asn uint32, addr netip.Addr, port int32) (*router, error) {
	s := server.NewBgpServer(server.LoggerOption(&gobgpLogger{log: logr.Discard(), book: newErrorBook(func() {})}))
	go s.Serve()
	err := s.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: addr.String(), ListenPort: port, ListenAddresses: []string{addr.String()},
	}})
	if err != nil {
		s.Stop()
		return nil, err
	}
	t.Cleanup(func() { _ = s.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	return &router{t: t, s: s, addr: addr, port: port, asn: asn}, nil
}

// neighbor configures the speaker at addr as a passive neighbour (the
// speaker dials), unless a mod says otherwise.
func (r *router) neighbor(addr netip.Addr, asn uint32, mods ...func(*api.Peer)) {
	r.t.Helper()
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr.String(), PeerAsn: asn},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: r.addr.String()},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: familyIPv4, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: familyIPv6, Enabled: true}},
		},
	}
	for _, m := range mods {
		m(p)
	}
	if err := r.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *router) peer(addr netip.Addr) *api.Peer {
	var out *api.Peer
	_ = r.s.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) { out = p })
	return out
}

func (r *router) established(addr netip.Addr) bool {
	p := r.peer(addr)
	return p != nil && p.State.SessionState == api.PeerState_ESTABLISHED
}

// received is what the router got from the neighbour at addr, by prefix.
func (r *router) received(addr netip.Addr, fam *api.Family) map[string]ciliumv2.BGPRoute {
	out := map[string]ciliumv2.BGPRoute{}
	_ = r.s.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Name: addr.String(), Family: fam}, func(d *api.Destination) {
		if len(d.Paths) > 0 {
			out[d.Prefix] = routeFromPath(netip.MustParsePrefix(d.Prefix), d.Paths[0])
		}
	})
	return out
}

// originate makes the router advertise pfx (IPv4) to its neighbours.
func (r *router) originate(pfx string, extra ...bgp.PathAttributeInterface) {
	r.t.Helper()
	p := netip.MustParsePrefix(pfx)
	path, err := apiutil.NewPath(bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()), false, append([]bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeNextHop(r.addr.String()),
	}, extra...), time.Now())
	if err == nil {
		_, err = r.s.AddPath(context.Background(), &api.AddPathRequest{Path: path})
	}
	if err != nil {
		r.t.Fatal(err)
	}
}

// ribCount is how many prefixes of fam the router's RIB holds.
func (r *router) ribCount(fam *api.Family) int {
	n := 0
	_ = r.s.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) { n++ })
	return n
}

// has reports whether the router's RIB holds pfx.
func (r *router) has(pfx netip.Prefix) bool {
	fam := familyIPv4
	if pfx.Addr().Is6() {
		fam = familyIPv6
	}
	found := false
	_ = r.s.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam,
		Prefixes: []*api.TableLookupPrefix{{Prefix: pfx.String()}}}, func(*api.Destination) { found = true })
	return found
}

// remoteCaps are the capabilities the neighbour at addr sent in its OPEN.
func (r *router) remoteCaps(addr netip.Addr) []bgp.ParameterCapabilityInterface {
	p := r.peer(addr)
	if p == nil {
		return nil
	}
	caps, err := apiutil.UnmarshalCapabilities(p.State.RemoteCap)
	if err != nil {
		r.t.Fatal(err)
	}
	return caps
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// fastPeer is a desired peer with test-friendly timers.
func fastPeer(name string, r *router, local netip.Addr) desired.Peer {
	return desired.Peer{
		Name:         name,
		Address:      r.addr,
		ASN:          r.asn,
		LocalAddress: local,
		Port:         uint16(r.port),
		ConnectRetry: time.Second,
		HoldTime:     9 * time.Second,
		Keepalive:    3 * time.Second,
		Families:     []desired.Family{{AFI: "ipv4", SAFI: "unicast"}, {AFI: "ipv6", SAFI: "unicast"}},
	}
}

func oneInstance(asn uint32, routerID netip.Addr, peers ...desired.Peer) desired.State {
	return desired.State{Source: "test", Instances: []desired.Instance{{Name: "default", ASN: asn, RouterID: routerID, Peers: peers}}}
}

// peerStatus finds one peer in a status.
func peerStatus(st []ciliumv2.CiliumBGPNodeInstanceStatus, instance, peer string) *ciliumv2.CiliumBGPNodePeerStatus {
	for i := range st {
		if st[i].Name != instance {
			continue
		}
		for j := range st[i].Peers {
			if st[i].Peers[j].Name == peer {
				return &st[i].Peers[j]
			}
		}
	}
	return nil
}

func (s *Speaker) peerStatus(instance, peer string) *ciliumv2.CiliumBGPNodePeerStatus {
	return peerStatus(s.Status(context.Background(), 1000), instance, peer)
}

func (s *Speaker) established(instance, peer string) bool {
	p := s.peerStatus(instance, peer)
	return p != nil && p.PeeringState == ciliumv2.BGPPeeringStateEstablished
}

func mustApply(t testing.TB, s *Speaker, st desired.State) {
	t.Helper()
	if err := s.Apply(context.Background(), st); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func prefixes(n int, base string) []desired.Route {
	b := netip.MustParseAddr(base).As4()
	out := make([]desired.Route, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{b[0], b[1] + byte(i>>8), byte(i), 0})
		out = append(out, desired.Route{Prefix: netip.PrefixFrom(a, 24)})
	}
	return out
}

func u32(v uint32) *uint32 { return &v }

func itoa(i int) string { return strconv.Itoa(i) }

// routeFromPath reads a path a router received into the API's route.
func routeFromPath(pfx netip.Prefix, p *api.Path) ciliumv2.BGPRoute {
	r := ciliumv2.BGPRoute{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: afiOf(pfx), Safi: "unicast"}, Prefix: pfx.String()}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return r
	}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			r.NextHop = a.Value.String()
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop != nil {
				r.NextHop = a.Nexthop.String()
			}
		case *bgp.PathAttributeCommunities:
			for _, c := range a.Value {
				r.Communities = append(r.Communities, formatCommunity(c))
			}
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				r.LargeCommunities = append(r.LargeCommunities, formatLarge(desired.LargeCommunity{Global: c.ASN, Local1: c.LocalData1, Local2: c.LocalData2}))
			}
		case *bgp.PathAttributeLocalPref:
			r.LocalPreference = ptr.To(int64(a.Value))
		}
	}
	return r
}
