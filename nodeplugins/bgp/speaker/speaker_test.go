package speaker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"golang.org/x/sys/unix"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/nodeplugins/bgp/gateway"
)

const noExport = 0xFFFFFF01

// B8, B9, B40, B41, B42, B50: an eBGP and an iBGP peer of one instance get
// their own prefixes and attributes; local preference reaches only the
// iBGP peer; the session's source is the configured local address.
func TestB8_B9_B40_B41_B42_B50_RoutesAndAttributes(t *testing.T) {
	t.Parallel()
	ebgp, ibgp := newRouter(t, 65000), newRouter(t, 65001)
	local := loopbackAddr()
	ebgp.neighbor(local, 65001)
	ibgp.neighbor(local, 65001)

	shared := netip.MustParsePrefix("10.1.0.0/24")
	ePeer := fastPeer("tor-ebgp", ebgp, local)
	ePeer.Routes = []desired.Route{
		{Prefix: shared, Communities: []uint32{65000<<16 | 99, noExport}, LargeCommunities: []desired.LargeCommunity{{Global: 64512, Local1: 100, Local2: 50}}, LocalPreference: u32(150)},
		{Prefix: netip.MustParsePrefix("10.1.1.0/24")},
	}
	iPeer := fastPeer("rr-ibgp", ibgp, local)
	iPeer.Routes = []desired.Route{{Prefix: shared, Communities: []uint32{65001<<16 | 1}, LocalPreference: u32(150)}}

	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, iPeer, ePeer))
	ebgp.originate("192.0.2.0/24") // counted as received, never re-advertised
	// A better route for the same prefix from the iBGP router must not
	// replace this node's own in the RIB (which would withdraw it).
	ibgp.originate(shared.String(), bgp.NewPathAttributeLocalPref(200))

	eventually(t, 10*time.Second, "both sessions established and routes received", func() bool {
		return len(ebgp.received(local, familyIPv4)) == 2 && len(ibgp.received(local, familyIPv4)) == 1
	})
	eventually(t, 5*time.Second, "the routers' routes counted", func() bool {
		return s.peerStatus("default", "tor-ebgp").RouteCount[0].Received == 1 && s.peerStatus("default", "rr-ibgp").RouteCount[0].Received == 1
	})
	if len(ibgp.received(local, familyIPv4)) != 1 {
		t.Error("the iBGP router's own route displaced the node's route")
	}
	got := ebgp.received(local, familyIPv4)[shared.String()]
	want := ciliumv2.BGPRoute{
		CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}, Prefix: shared.String(), NextHop: local.String(),
		Communities: []string{"65000:99", "65535:65281"}, LargeCommunities: []string{"64512:100:50"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("eBGP router got %+v, want %+v (no local preference: B42)", got, want)
	}
	got = ibgp.received(local, familyIPv4)[shared.String()]
	if got.LocalPreference == nil || *got.LocalPreference != 150 || !slices.Equal(got.Communities, []string{"65001:1"}) {
		t.Errorf("iBGP router got %+v, want local preference 150 and community 65001:1", got)
	}
	for _, pfx := range []string{"10.1.1.0/24", "192.0.2.0/24"} {
		if _, ok := ibgp.received(local, familyIPv4)[pfx]; ok {
			t.Errorf("iBGP router got %s, which it must not", pfx)
		}
	}

	st := s.Status(context.Background(), 100)
	if !reflect.DeepEqual(st, s.Status(context.Background(), 100)) {
		t.Error("two Status calls on an unchanged state differ")
	}
	e := peerStatus(st, "default", "tor-ebgp")
	if e.EstablishedTime != nil && time.Since(e.EstablishedTime.Time) > time.Minute {
		t.Errorf("established time %v is not recent", e.EstablishedTime)
	}
	if e.PeeringState != ciliumv2.BGPPeeringStateEstablished || e.EstablishedTime == nil || e.PeerAddress != ebgp.addr.String() || *e.PeerASN != 65000 {
		t.Errorf("eBGP peer status %+v", e)
	}
	if len(e.AdvertisedRoutes) != 2 || e.AdvertisedRoutes[0].LocalPreference != nil || e.AdvertisedRoutes[0].NextHop != local.String() {
		t.Errorf("eBGP advertised routes %+v, want 2, next hop %s, no local preference", e.AdvertisedRoutes, local)
	}
	if e.RouteCount[0] != (ciliumv2.BGPFamilyRouteCount{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}, Received: 1, Advertised: 2}) {
		t.Errorf("eBGP route count %+v", e.RouteCount)
	}
	i := peerStatus(st, "default", "rr-ibgp")
	if len(i.AdvertisedRoutes) != 1 || i.AdvertisedRoutes[0].LocalPreference == nil || *i.AdvertisedRoutes[0].LocalPreference != 150 {
		t.Errorf("iBGP advertised routes %+v, want local preference 150", i.AdvertisedRoutes)
	}
	if st[0].RoutesTotal != 3 || len(st[0].Routes) != 3 {
		t.Errorf("local RIB %d routes (%+v), want 3: the shared prefix once per attribute set", st[0].RoutesTotal, st[0].Routes)
	}
	if limited := s.Status(context.Background(), 1); len(limited[0].Routes) != 1 || limited[0].RoutesTotal != 3 || len(peerStatus(limited, "default", "tor-ebgp").AdvertisedRoutes) != 1 {
		t.Errorf("route limit 1 not honoured: %+v", limited[0])
	}
}

// Adding a peer and routes, changing attributes and withdrawing routes
// never resets another session: its established time stays, and the
// router sees no flap. A prefix withdrawn from one peer is withdrawn there
// even while another peer keeps it.
func TestIncrementalChangesDoNotFlap(t *testing.T) {
	t.Parallel()
	r1, r2 := newRouter(t, 65000), newRouter(t, 65000)
	local := loopbackAddr()
	r1.neighbor(local, 65001)
	r2.neighbor(local, 65001)
	s := newSpeaker(t)
	p1 := fastPeer("one", r1, local)
	mustApply(t, s, oneInstance(65001, local, p1))
	eventually(t, 10*time.Second, "session 1 established", func() bool { return s.established("default", "one") })
	since := s.peerStatus("default", "one").EstablishedTime
	flops := r1.peer(local).State.Flops

	routes := prefixes(100, "10.20.0.0")
	p1.Routes = routes
	p2 := fastPeer("two", r2, local)
	p2.Routes = routes
	mustApply(t, s, oneInstance(65001, local, p1, p2))
	eventually(t, 10*time.Second, "session 2 and 100 routes on both routers", func() bool {
		return len(r1.received(local, familyIPv4)) == 100 && len(r2.received(local, familyIPv4)) == 100
	})

	// Withdraw half from peer one only, and tag one route.
	p1.Routes = slices.Clone(routes[:50])
	p1.Routes[0].Communities = []uint32{65000<<16 | 7}
	mustApply(t, s, oneInstance(65001, local, p1, p2))
	eventually(t, 5*time.Second, "50 routes withdrawn from router 1 only", func() bool {
		return len(r1.received(local, familyIPv4)) == 50
	})
	eventually(t, 5*time.Second, "changed community at router 1", func() bool {
		return slices.Equal(r1.received(local, familyIPv4)[routes[0].Prefix.String()].Communities, []string{"65000:7"})
	})
	if n := len(r2.received(local, familyIPv4)); n != 100 {
		t.Errorf("router 2 has %d routes, want 100", n)
	}
	if now := s.peerStatus("default", "one"); now.PeeringState != ciliumv2.BGPPeeringStateEstablished || !now.EstablishedTime.Equal(since) {
		t.Errorf("session 1 was reset: %s since %v, was since %v", now.PeeringState, now.EstablishedTime, since)
	}
	if f := r1.peer(local).State.Flops; f != flops {
		t.Errorf("router 1 counted %d flaps, was %d", f, flops)
	}
	// Applying the same state again changes nothing at all.
	before := s.Status(context.Background(), 1000)
	mustApply(t, s, oneInstance(65001, local, p1, p2))
	if after := s.Status(context.Background(), 1000); !reflect.DeepEqual(before, after) {
		t.Error("re-applying the same state changed the status")
	}
}

// B11: without a listen port the instance opens no listening socket, so
// inbound connections are refused.
func TestB11_NoListenerByDefault(t *testing.T) {
	t.Parallel()
	r := newRouter(t, 65000)
	local := loopbackAddr()
	r.neighbor(local, 65001)
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, fastPeer("tor", r, local)))
	eventually(t, 10*time.Second, "session established", func() bool { return s.established("default", "tor") })
	c, err := net.DialTimeout("tcp4", net.JoinHostPort(local.String(), "179"), time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("connecting to %s:179 succeeded; the instance must not listen", local)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connecting to %s:179: %v, want connection refused", local, err)
	}
}

// B12: with a listen port the instance accepts the router's connection.
// The speaker's own dial goes to a closed port, so only the inbound
// session can establish.
func TestB12_LocalPortAcceptsInbound(t *testing.T) {
	t.Parallel()
	r := newRouter(t, 65000)
	local := loopbackAddr()
	port := freePort(t, local)
	r.neighbor(local, 65001, func(p *api.Peer) {
		p.Transport.PassiveMode = false
		p.Transport.RemotePort = uint32(port)
	})
	s := newSpeaker(t, WithListenAddresses(local.String()))
	p := fastPeer("tor", r, local)
	p.Port = uint16(freePort(t, r.addr)) // nothing listens there
	st := oneInstance(65001, local, p)
	st.Instances[0].ListenPort = port
	mustApply(t, s, st)
	eventually(t, 10*time.Second, "inbound session established", func() bool { return s.established("default", "tor") })
}

// B10: peer ASN 0 accepts a router of any ASN, and the status shows the
// ASN the router announced.
func TestB10_PeerASNZeroAcceptsAny(t *testing.T) {
	t.Parallel()
	r := newRouter(t, 65123)
	local := loopbackAddr()
	r.neighbor(local, 65001)
	p := fastPeer("any", r, local)
	p.ASN = 0
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, p))
	eventually(t, 10*time.Second, "session established", func() bool { return s.established("default", "any") })
	if got := s.peerStatus("default", "any").PeerASN; got == nil || *got != 65123 {
		t.Errorf("peer ASN in status %v, want 65123", got)
	}
}

// A wrong peer ASN is refused, and the status says why.
func TestStatusLastErrorOnASMismatch(t *testing.T) {
	t.Parallel()
	r := newRouter(t, 65000)
	local := loopbackAddr()
	r.neighbor(local, 65001)
	p := fastPeer("tor", r, local)
	p.ASN = 65003
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, p))
	want := "sent notification: as number mismatch expected 65003, received 65000"
	eventually(t, 10*time.Second, "last error "+want, func() bool { return s.peerStatus("default", "tor").LastError == want })
	select {
	case <-s.Changes():
	default:
		t.Error("Changes did not fire")
	}
}

// B15: the status shows the negotiated hold time and keepalive.
func TestB15_TimersNegotiated(t *testing.T) {
	t.Parallel()
	r := newRouter(t, 65000)
	local := loopbackAddr()
	r.neighbor(local, 65001, func(p *api.Peer) { p.Timers.Config.HoldTime = 90 })
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, fastPeer("tor", r, local)))
	eventually(t, 10*time.Second, "session established", func() bool { return s.established("default", "tor") })
	tm := s.peerStatus("default", "tor").Timers
	if tm == nil || *tm.AppliedHoldTimeSeconds != 9 || *tm.AppliedKeepaliveSeconds != 3 {
		t.Errorf("timers %+v, want hold 9 keepalive 3", tm)
	}
	if got := r.peer(local).Timers.State.NegotiatedHoldTime; got != 9 {
		t.Errorf("router negotiated hold %d, want 9", got)
	}
}

// B16, B22: timers the state leaves at zero get the documented defaults.
func TestB16_B22_TimerDefaults(t *testing.T) {
	p := peerConfig(desired.Peer{Name: "x", GracefulRestart: desired.GracefulRestart{Enabled: true}, Families: []desired.Family{{AFI: "ipv4", SAFI: "unicast"}}}, netip.MustParseAddr("10.0.0.1"), "v")
	c := p.Timers.Config
	if c.ConnectRetry != 120 || c.HoldTime != 90 || c.KeepaliveInterval != 30 || p.GracefulRestart.RestartTime != 120 || p.Transport.RemotePort != 179 {
		t.Errorf("defaults: %+v, restart %d, port %d", c, p.GracefulRestart.RestartTime, p.Transport.RemotePort)
	}
	if p.EbgpMultihop != nil {
		t.Error("multihop set without a TTL above 1")
	}
}

// B19: an eBGP session's IP TTL is 1, or the multihop TTL. Checked on the
// speaker's own socket of each session.
func TestB19_EBGPMultihopTTL(t *testing.T) {
	t.Parallel()
	direct, multi := newRouter(t, 65000), newRouter(t, 65000)
	local := loopbackAddr()
	direct.neighbor(local, 65001)
	multi.neighbor(local, 65001)
	pm := fastPeer("multihop", multi, local)
	pm.EBGPMultihopTTL = 4
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, fastPeer("direct", direct, local), pm))
	eventually(t, 10*time.Second, "sessions established", func() bool {
		return s.established("default", "direct") && s.established("default", "multihop")
	})
	for _, c := range []struct {
		r   *router
		ttl int
	}{{direct, 1}, {multi, 4}} {
		got, err := socketTTL(local, netip.AddrPortFrom(c.r.addr, uint16(c.r.port)))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.ttl {
			t.Errorf("session to %s has IP TTL %d, want %d", c.r.addr, got, c.ttl)
		}
	}
}

// socketTTL reads IP_TTL of the process's TCP socket from local (any port)
// to remote.
func socketTTL(local netip.Addr, remote netip.AddrPort) (int, error) {
	for fd := range 4096 {
		l := sockAddr(unix.Getsockname(fd))
		if l.Addr() != local || sockAddr(unix.Getpeername(fd)) != remote {
			continue
		}
		return unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL)
	}
	return 0, errors.New("no socket found for the session")
}

// B20: the same MD5 password establishes; a different one never does, and
// the status shows the connection timing out.
func TestB20_MD5Auth(t *testing.T) {
	t.Parallel()
	good, bad := newRouter(t, 65000), newRouter(t, 65000)
	local := loopbackAddr()
	good.neighbor(local, 65001, func(p *api.Peer) { p.Conf.AuthPassword = "s3cret" })
	bad.neighbor(local, 65001, func(p *api.Peer) { p.Conf.AuthPassword = "other" })
	pg, pb := fastPeer("good", good, local), fastPeer("bad", bad, local)
	pg.Password, pb.Password = "s3cret", "s3cret"
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, pg, pb))
	eventually(t, 10*time.Second, "session with the matching password", func() bool { return s.established("default", "good") })
	eventually(t, 10*time.Second, "i/o timeout reported for the wrong password", func() bool {
		return strings.Contains(s.peerStatus("default", "bad").LastError, "i/o timeout")
	})
	if s.established("default", "bad") || bad.established(local) {
		t.Error("session with the wrong password established")
	}
}

// B22, B25, B24: the OPEN carries only the configured families and the
// graceful restart capability with the configured time.
func TestB22_B24_B25_CapabilitiesSeenByPeer(t *testing.T) {
	t.Parallel()
	v4only, both := newRouter(t, 65000), newRouter(t, 65000)
	local := loopbackAddr()
	v4only.neighbor(local, 65001)
	both.neighbor(local, 65001)
	p4 := fastPeer("v4only", v4only, local)
	p4.Families = []desired.Family{{AFI: "ipv4", SAFI: "unicast"}}
	p4.GracefulRestart = desired.GracefulRestart{Enabled: true, RestartTime: 15 * time.Second}
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, p4, fastPeer("both", both, local)))
	eventually(t, 10*time.Second, "sessions established", func() bool {
		return v4only.established(local) && both.established(local)
	})
	families := func(caps []bgp.ParameterCapabilityInterface) (fs []string, grTime int) {
		grTime = -1
		for _, c := range caps {
			switch c := c.(type) {
			case *bgp.CapMultiProtocol:
				fs = append(fs, c.CapValue.String())
			case *bgp.CapGracefulRestart:
				grTime = int(c.Time)
			}
		}
		slices.Sort(fs)
		return fs, grTime
	}
	fs, gr := families(v4only.remoteCaps(local))
	if !slices.Equal(fs, []string{"ipv4-unicast"}) || gr != 15 {
		t.Errorf("v4-only peer sent families %v and GR time %d, want [ipv4-unicast] and 15", fs, gr)
	}
	fs, gr = families(both.remoteCaps(local))
	if !slices.Equal(fs, []string{"ipv4-unicast", "ipv6-unicast"}) || gr != -1 {
		t.Errorf("default peer sent families %v and GR time %d, want both families and no GR", fs, gr)
	}
}

// B66 (node half): deleting a peer closes its session with a NOTIFICATION
// and the router drops the routes; removing everything stops the instance.
func TestB66_PeerDeleteWithdraws(t *testing.T) {
	t.Parallel()
	keep, gone := newRouter(t, 65000), newRouter(t, 65000)
	local := loopbackAddr()
	keep.neighbor(local, 65001)
	gone.neighbor(local, 65001)
	pk, pg := fastPeer("keep", keep, local), fastPeer("gone", gone, local)
	pk.Routes = prefixes(3, "10.30.0.0")
	pg.Routes = prefixes(3, "10.30.0.0")
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, pk, pg))
	eventually(t, 10*time.Second, "routes at both routers", func() bool {
		return gone.ribCount(familyIPv4) == 3 && keep.ribCount(familyIPv4) == 3
	})
	mustApply(t, s, oneInstance(65001, local, pk))
	eventually(t, 5*time.Second, "the deleted peer's router drops the routes", func() bool {
		return gone.ribCount(familyIPv4) == 0 && !gone.established(local)
	})
	if n := gone.peer(local).State.Messages.Received.Notification; n == 0 {
		t.Error("router of the deleted peer got no NOTIFICATION")
	}
	if keep.ribCount(familyIPv4) != 3 || !keep.established(local) {
		t.Error("the other peer lost its session or routes")
	}
	if st := s.Status(context.Background(), 10); len(st[0].Peers) != 1 {
		t.Errorf("status still lists %d peers", len(st[0].Peers))
	}
	mustApply(t, s, desired.State{})
	eventually(t, 5*time.Second, "the last router drops the routes", func() bool { return keep.ribCount(familyIPv4) == 0 })
	if st := s.Status(context.Background(), 10); len(st) != 0 {
		t.Errorf("status of the empty state: %+v", st)
	}
}

// Stop with graceful restart (B23's node half): the GR peer's session is
// cut without a NOTIFICATION and its router keeps the routes as stale; the
// peer without GR gets a NOTIFICATION and drops them.
func TestB23_StopKeepsRoutesAtGracefulRestartPeers(t *testing.T) {
	t.Parallel()
	grRouter, plain := newRouter(t, 65000), newRouter(t, 65000)
	local := loopbackAddr()
	grRouter.neighbor(local, 65001, func(p *api.Peer) {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 30}
		for _, af := range p.AfiSafis {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
	})
	plain.neighbor(local, 65001)
	pgr, pp := fastPeer("gr", grRouter, local), fastPeer("plain", plain, local)
	pgr.GracefulRestart = desired.GracefulRestart{Enabled: true, RestartTime: 30 * time.Second}
	pgr.Routes = prefixes(5, "10.40.0.0")
	pp.Routes = prefixes(5, "10.40.0.0")
	s := New(testLogger(t))
	mustApply(t, s, oneInstance(65001, local, pgr, pp))
	eventually(t, 10*time.Second, "routes at both routers", func() bool {
		return grRouter.ribCount(familyIPv4) == 5 && plain.ribCount(familyIPv4) == 5
	})
	s.Stop()
	eventually(t, 5*time.Second, "both sessions down", func() bool {
		return !grRouter.established(local) && !plain.established(local)
	})
	eventually(t, 5*time.Second, "the plain router drops the routes", func() bool { return plain.ribCount(familyIPv4) == 0 })
	if n := grRouter.ribCount(familyIPv4); n != 5 {
		t.Errorf("GR router kept %d routes, want 5", n)
	}
	if n := grRouter.peer(local).State.Messages.Received.Notification; n != 0 {
		t.Errorf("GR router got %d NOTIFICATIONs, want none", n)
	}
	if n := plain.peer(local).State.Messages.Received.Notification; n == 0 {
		t.Error("plain router got no NOTIFICATION")
	}
}

// Changing one instance's ASN restarts that instance only.
func TestInstanceChangeRestartsOnlyThatInstance(t *testing.T) {
	t.Parallel()
	ra, rb := newRouter(t, 65000), newRouter(t, 65000)
	la, lb := loopbackAddr(), loopbackAddr()
	ra.neighbor(la, 0)
	rb.neighbor(lb, 0)
	st := func(asnB uint32) desired.State {
		return desired.State{Instances: []desired.Instance{
			{Name: "a", ASN: 65001, RouterID: la, Peers: []desired.Peer{fastPeer("tor", ra, la)}},
			{Name: "b", ASN: asnB, RouterID: lb, Peers: []desired.Peer{fastPeer("tor", rb, lb)}},
		}}
	}
	s := newSpeaker(t)
	mustApply(t, s, st(65002))
	eventually(t, 10*time.Second, "both established", func() bool { return s.established("a", "tor") && s.established("b", "tor") })
	sinceA := peerStatus(s.Status(context.Background(), 0), "a", "tor").EstablishedTime
	mustApply(t, s, st(65003))
	eventually(t, 10*time.Second, "instance b back with ASN 65003", func() bool {
		p := rb.peer(lb)
		return s.established("b", "tor") && p.State.PeerAsn == 65003
	})
	if a := peerStatus(s.Status(context.Background(), 0), "a", "tor"); !a.EstablishedTime.Equal(sinceA) {
		t.Errorf("instance a was reset: since %v, was %v", a.EstablishedTime, sinceA)
	}
}

// B52, B54 (speaker half, with a stand-in gateway lookup): the session
// follows the gateway, and a link-local gateway gives no session and says
// why. The netlink lookup itself is tested in package gateway, and end to
// end in TestFRR_B52_B53_AutoDiscoveryMultiHoming.
func TestB52_B54_AutoDiscoveryFollowsGateway(t *testing.T) {
	t.Parallel()
	// Both routers listen on the same port, as gateways do on 179.
	a1, a2, local := loopbackAddr(), loopbackAddr(), loopbackAddr()
	port := freePort(t, a1)
	r1, r2 := newRouterAt(t, 65000, a1, port), newRouterAt(t, 65000, a2, port)
	r1.neighbor(local, 65001)
	r2.neighbor(local, 65001)

	gw := make(chan netip.Addr, 1)
	current := r1.addr
	var gwErr error
	find := func(family string) (netip.Addr, error) {
		select {
		case a := <-gw:
			if a.IsLinkLocalUnicast() {
				current, gwErr = netip.Addr{}, gateway.LinkLocalError{Gateway: a}
			} else {
				current, gwErr = a, nil
			}
		default:
		}
		return current, gwErr
	}
	s := newSpeaker(t, WithGatewayFinder(find), WithGatewayPoll(100*time.Millisecond))
	p := fastPeer("gw", r1, local)
	p.Address = netip.Addr{}
	p.AutoDiscovery = &desired.AutoDiscovery{Family: "ipv4"}
	mustApply(t, s, oneInstance(65001, local, p))
	eventually(t, 10*time.Second, "session with the first gateway", func() bool {
		return s.established("default", "gw") && s.peerStatus("default", "gw").PeerAddress == r1.addr.String()
	})
	gw <- r2.addr
	eventually(t, 10*time.Second, "session moved to the second gateway", func() bool {
		return s.established("default", "gw") && s.peerStatus("default", "gw").PeerAddress == r2.addr.String()
	})
	gw <- netip.MustParseAddr("fe80::1")
	eventually(t, 5*time.Second, "no session with a link-local gateway", func() bool {
		st := s.peerStatus("default", "gw")
		return st.PeerAddress == "" && strings.Contains(st.LastError, "link-local") && !r2.established(local)
	})
}

// Scale: 10,000 prefixes to one established peer, then all withdrawn.
func TestScale10kPrefixesToOnePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	t.Parallel()
	r := newRouter(t, 65000)
	local := loopbackAddr()
	r.neighbor(local, 65001)
	p := fastPeer("tor", r, local)
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local, p))
	eventually(t, 10*time.Second, "session established", func() bool { return s.established("default", "tor") })

	p.Routes = prefixes(10000, "20.0.0.0")
	start := time.Now()
	mustApply(t, s, oneInstance(65001, local, p))
	applied := time.Since(start)
	eventually(t, 30*time.Second, "10k prefixes at the router", func() bool { return r.ribCount(familyIPv4) == 10000 })
	converged := time.Since(start)

	start = time.Now()
	st := s.Status(context.Background(), 1000)
	statusTime := time.Since(start)
	if c := peerStatus(st, "default", "tor").RouteCount[0].Advertised; c != 10000 || st[0].RoutesTotal != 10000 {
		t.Errorf("status counts %d advertised, %d in RIB", c, st[0].RoutesTotal)
	}

	p.Routes = nil
	start = time.Now()
	mustApply(t, s, oneInstance(65001, local, p))
	eventually(t, 30*time.Second, "all withdrawn", func() bool { return r.ribCount(familyIPv4) == 0 })
	t.Logf("10k prefixes: Apply %v, at the router after %v; Status %v; withdraw all %v", applied, converged, statusTime, time.Since(start))
}

// BenchmarkApply10kPrefixes measures one Apply of 10,000 new prefixes until
// every router has them, with the same prefixes to 1 or 2 peers.
func BenchmarkApply10kPrefixes(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(itoa(n)+"peers", func(b *testing.B) {
			local := loopbackAddr()
			var peers []desired.Peer
			var routers []*router
			for i := range n {
				r := newRouter(b, 65000)
				r.neighbor(local, 65001)
				peers = append(peers, fastPeer("p"+itoa(i), r, local))
				routers = append(routers, r)
			}
			s := newSpeaker(b)
			mustApply(b, s, oneInstance(65001, local, peers...))
			for _, p := range peers {
				eventually(b, 10*time.Second, "session "+p.Name, func() bool { return s.established("default", p.Name) })
			}
			withRoutes := func(routes []desired.Route) desired.State {
				ps := slices.Clone(peers)
				for i := range ps {
					ps[i].Routes = routes
				}
				return oneInstance(65001, local, ps...)
			}
			all, none := withRoutes(prefixes(10000, "20.0.0.0")), withRoutes(nil)
			for b.Loop() {
				mustApply(b, s, all)
				for _, r := range routers {
					eventually(b, time.Minute, "10k prefixes", func() bool { return r.ribCount(familyIPv4) == 10000 })
				}
				b.StopTimer()
				mustApply(b, s, none)
				for _, r := range routers {
					eventually(b, time.Minute, "withdrawn", func() bool { return r.ribCount(familyIPv4) == 0 })
				}
				b.StartTimer()
			}
		})
	}
}

// Peers of one route group share one table: the first group in the global
// RIB, later ones in VRFs. A group's change reaches all its peers without a
// reset; a peer that changes group gets exactly the new group's routes; a
// group that empties withdraws its routes from the global RIB, so the next
// group there starts clean; peers that share a group but not their routes
// are an error, not a silent wrong advertisement.
func TestRouteGroupsShareTables(t *testing.T) {
	t.Parallel()
	local := loopbackAddr()
	var routers []*router
	for range 4 {
		r := newRouter(t, 65000)
		r.neighbor(local, 65001)
		routers = append(routers, r)
	}
	r1, r2, r3, r4 := routers[0], routers[1], routers[2], routers[3]
	s := newSpeaker(t)
	routesA, routesB, routesC := prefixes(100, "10.20.0.0"), prefixes(50, "10.30.0.0"), prefixes(5, "10.40.0.0")
	member := func(name string, r *router, group string, routes []desired.Route) desired.Peer {
		p := fastPeer(name, r, local)
		p.RouteGroup, p.Routes = group, routes
		return p
	}
	holds := func(r *router, routes []desired.Route) func() bool {
		return func() bool {
			got := r.received(local, familyIPv4)
			if len(got) != len(routes) {
				return false
			}
			for _, rt := range routes {
				if _, ok := got[rt.Prefix.String()]; !ok {
					return false
				}
			}
			return true
		}
	}
	p1, p2, p3 := member("a1", r1, "A", routesA), member("a2", r2, "A", routesA), member("b1", r3, "B", routesB)
	mustApply(t, s, oneInstance(65001, local, p1, p2, p3))
	eventually(t, 10*time.Second, "group A at routers 1 and 2, group B at router 3", func() bool {
		return holds(r1, routesA)() && holds(r2, routesA)() && holds(r3, routesB)()
	})
	inst := s.instances["default"]
	if n := len(inst.tables); n != 2 {
		t.Fatalf("%d tables for two route groups", n)
	}
	if inst.tables["group/A"].vrf != "" || inst.tables["group/B"].vrf == "" {
		t.Errorf("group A (first) should use the global RIB and B a VRF: %q, %q", inst.tables["group/A"].vrf, inst.tables["group/B"].vrf)
	}
	since := s.peerStatus("default", "a2").EstablishedTime

	// One change of group A reaches both of its peers, without a reset.
	p1.Routes, p2.Routes = routesA[:90], routesA[:90]
	mustApply(t, s, oneInstance(65001, local, p1, p2, p3))
	eventually(t, 5*time.Second, "10 routes withdrawn at routers 1 and 2", func() bool { return holds(r1, routesA[:90])() && holds(r2, routesA[:90])() })
	if now := s.peerStatus("default", "a2"); !now.EstablishedTime.Equal(since) {
		t.Errorf("a2's session was reset by a route change")
	}

	// a2 moves to group B: router 2 ends with B's routes only.
	p2 = member("a2", r2, "B", routesB)
	mustApply(t, s, oneInstance(65001, local, p1, p2, p3))
	eventually(t, 10*time.Second, "router 2 holds group B", holds(r2, routesB))

	// a1 leaves group A, which empties; a new group C then takes the global
	// RIB and router 4 gets C's routes and nothing of A's.
	p1 = member("a1", r1, "", nil)
	mustApply(t, s, oneInstance(65001, local, p1, p2, p3))
	eventually(t, 10*time.Second, "router 1 holds nothing", holds(r1, nil))
	p4 := member("c1", r4, "C", routesC)
	mustApply(t, s, oneInstance(65001, local, p1, p2, p3, p4))
	eventually(t, 10*time.Second, "router 4 holds group C only", holds(r4, routesC))
	if inst.tables["group/C"].vrf != "" {
		t.Errorf("group C should have taken the free global RIB, has VRF %q", inst.tables["group/C"].vrf)
	}
	if !holds(r3, routesB)() || !holds(r2, routesB)() {
		t.Error("group B's routers lost routes while other groups changed")
	}

	// Two peers in one group with different routes.
	bad := member("c2", r1, "C", routesB)
	err := s.Apply(context.Background(), oneInstance(65001, local, bad, p2, p3, p4))
	if err == nil || !strings.Contains(err.Error(), `route group "C"`) {
		t.Errorf("peers of one group with different routes: %v, want an error naming the group", err)
	}
}

// BenchmarkManyPeers sends 10,000 prefixes to 16 peers that share a
// CiliumBGPPeerConfig (one route group), beside the baseline of GoBGP alone
// sending the same prefixes from its global RIB to 16 GoBGP peers, and times
// one more prefix reaching all 16 (a single Service change). Run with
// `make bench-bgp-peers` (see docs/benchmarks.md).
func BenchmarkManyPeers(b *testing.B) {
	const peers, n = 16, 10000
	routes := prefixes(n, "20.0.0.0")
	one := desired.Route{Prefix: netip.MustParsePrefix("30.0.0.1/32")}
	waitAll := func(b *testing.B, routers []*router, count int) {
		for _, r := range routers {
			eventually(b, time.Minute, itoa(count)+" prefixes", func() bool { return r.ribCount(familyIPv4) == count })
		}
	}
	// waitOne polls each router in turn for the one prefix (a lookup, not a
	// table walk), every 0.2 ms, so that polling does not blur a change
	// that takes milliseconds.
	waitOne := func(b *testing.B, routers []*router, present bool) {
		for _, r := range routers {
			deadline := time.Now().Add(10 * time.Second)
			for r.has(one.Prefix) != present {
				if time.Now().After(deadline) {
					b.Fatalf("%s never became present=%v", one.Prefix, present)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
	}

	// GoBGP alone: a source server adds the prefixes to its global RIB
	// through the API and 16 routers receive them.
	baseline := func(b *testing.B) (add func([]desired.Route), del func([]desired.Route), routers []*router) {
		src := newRouter(b, 65001)
		for range peers {
			r := newRouter(b, 65000)
			r.neighbor(src.addr, 65001)
			src.neighbor(r.addr, 65000, func(p *api.Peer) {
				p.Transport = &api.Transport{LocalAddress: src.addr.String(), RemotePort: uint32(r.port)}
			})
			routers = append(routers, r)
		}
		for _, r := range routers {
			eventually(b, 20*time.Second, "baseline session", func() bool { return r.established(src.addr) })
		}
		add = func(rs []desired.Route) {
			for _, rt := range rs {
				path, err := routePath(rt)
				if err == nil {
					_, err = src.s.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		del = func(rs []desired.Route) {
			for _, rt := range rs {
				path, err := withdrawPath(rt.Prefix)
				if err == nil {
					err = src.s.DeletePath(context.Background(), &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: path.Family, Path: path})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		return add, del, routers
	}
	// Plexus: the speaker with 16 peers of one route group.
	plexus := func(b *testing.B) (apply func([]desired.Route), routers []*router) {
		local := loopbackAddr()
		var ps []desired.Peer
		for i := range peers {
			r := newRouter(b, 65000)
			r.neighbor(local, 65001)
			p := fastPeer("p"+itoa(i), r, local)
			p.RouteGroup = "CiliumBGPPeerConfig/tor"
			ps = append(ps, p)
			routers = append(routers, r)
		}
		s := newSpeaker(b)
		mustApply(b, s, oneInstance(65001, local, ps...))
		for _, p := range ps {
			eventually(b, 20*time.Second, "session "+p.Name, func() bool { return s.established("default", p.Name) })
		}
		apply = func(rs []desired.Route) {
			for i := range ps {
				ps[i].Routes = rs
			}
			mustApply(b, s, oneInstance(65001, local, ps...))
		}
		return apply, routers
	}

	b.Run("10k/gobgp", func(b *testing.B) {
		add, del, routers := baseline(b)
		for b.Loop() {
			add(routes)
			waitAll(b, routers, n)
			b.StopTimer()
			del(routes)
			waitAll(b, routers, 0)
			b.StartTimer()
		}
	})
	b.Run("10k/plexus", func(b *testing.B) {
		apply, routers := plexus(b)
		for b.Loop() {
			apply(routes)
			waitAll(b, routers, n)
			b.StopTimer()
			apply(nil)
			waitAll(b, routers, 0)
			b.StartTimer()
		}
	})
	b.Run("one-change/gobgp", func(b *testing.B) {
		add, del, routers := baseline(b)
		add(routes)
		waitAll(b, routers, n)
		for b.Loop() {
			add([]desired.Route{one})
			waitOne(b, routers, true)
			b.StopTimer()
			del([]desired.Route{one})
			waitOne(b, routers, false)
			b.StartTimer()
		}
	})
	b.Run("one-change/plexus", func(b *testing.B) {
		apply, routers := plexus(b)
		apply(routes)
		waitAll(b, routers, n)
		withOne := append(slices.Clone(routes), one)
		for b.Loop() {
			apply(withOne)
			waitOne(b, routers, true)
			b.StopTimer()
			apply(routes)
			waitOne(b, routers, false)
			b.StartTimer()
		}
	})
}
