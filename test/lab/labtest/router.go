package labtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/netnstest"
)

// RequireRouter skips the test unless the lab can run its BGP router: FRR
// installed, or installable with apt-get (lab up installs it too). Call it
// before Start.
func RequireRouter(t testing.TB) {
	t.Helper()
	netnstest.RequireRoot(t)
	if err := lab.EnsureRouterTools(testWriter{t}); err != nil {
		t.Skipf("the lab has no BGP router: %v", err)
	}
}

// Router is the lab's upstream BGP router and the external client behind it.
type Router struct {
	Netns     string     // FRR's namespace
	IP        netip.Addr // on the lab segment: the nodes' BGP peer address
	ASN       uint32
	ExtNetns  string       // the external client
	ExtIP     netip.Addr   // the external client's address
	ExtPrefix netip.Prefix // the network between router and client; announced to the nodes
	VtySocket string       // vtysh --vty_socket <VtySocket>
}

// Router describes the lab's router; the test fails when the lab runs none
// (call RequireRouter before Start).
func (l *Lab) Router(t testing.TB) Router {
	t.Helper()
	s, _, err := lab.Open(l.StateRoot, l.Options.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Router == "" {
		t.Fatal("the lab runs no BGP router (FRR was not installed at lab up)")
	}
	ly := l.Layout
	return Router{Netns: ly.RouterNetns(), IP: ly.RouterIP(), ASN: lab.RouterASN, ExtNetns: ly.ExtNetns(),
		ExtIP: ly.ExtClientIP(), ExtPrefix: ly.ExtPrefix(), VtySocket: ly.RouterDir()}
}

// RouterVtysh runs vtysh commands on the router and returns the output.
func (l *Lab) RouterVtysh(cmds ...string) (string, error) { return lab.RouterVtysh(l.Layout, cmds...) }

// ConfigureRouter applies lines inside the router's `router bgp 65000` at
// run time (e.g. "neighbor 198.18.x.11 remote-as internal").
func (l *Lab) ConfigureRouter(t testing.TB, lines ...string) {
	t.Helper()
	if err := lab.ConfigureRouter(l.Layout, lines...); err != nil {
		t.Fatal(err)
	}
}

// SetRouterPassword sets the TCP MD5 password the router uses with
// neighbor; "" removes it.
func (l *Lab) SetRouterPassword(t testing.TB, neighbor netip.Addr, password string) {
	t.Helper()
	if err := lab.SetRouterNeighborPassword(l.Layout, neighbor, password); err != nil {
		t.Fatal(err)
	}
}

// RouterPath is one path the router holds for a prefix.
type RouterPath struct {
	NextHop          netip.Addr // the first next hop
	Peer             netip.Addr // who sent it (unspecified for the router's own)
	ASPath           []uint32
	Communities      []string // "65000:100"; well-known ones as FRR names them ("noExport")
	LargeCommunities []string // "64512:100:50"
	LocalPref        *uint32  // nil when the path has none (eBGP)
	MED              *uint32
	Origin           string
	Best             bool
	Multipath        bool // installed alongside the best path (ECMP)
	Valid            bool
	Stale            bool // kept for a restarting peer (graceful restart)
}

// frrPath is the part of FRR's `show bgp ... json detail` path the tests use.
type frrPath struct {
	ASPath *struct {
		Segments []struct {
			List []uint32 `json:"list"`
		} `json:"segments"`
	} `json:"aspath"`
	Origin    string `json:"origin"`
	Valid     bool   `json:"valid"`
	Stale     bool   `json:"stale"`
	Multipath bool   `json:"multipath"`
	Bestpath  *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Community *struct {
		List []string `json:"list"`
	} `json:"community"`
	LargeCommunity *struct {
		List []string `json:"list"`
	} `json:"largeCommunity"`
	LocPrf   *uint32 `json:"locPrf"`
	Metric   *uint32 `json:"metric"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	Peer *struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

// ParseRouterRIB decodes FRR's `show bgp <afi> unicast json detail`: per
// prefix a list whose first element describes the prefix and the others
// are its paths.
func ParseRouterRIB(out []byte) (map[netip.Prefix][]RouterPath, error) {
	var doc struct {
		Routes map[string][]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("FRR RIB: %w: %.200s", err, out)
	}
	rib := map[netip.Prefix][]RouterPath{}
	for pfx, entries := range doc.Routes {
		p, err := netip.ParsePrefix(pfx)
		if err != nil {
			return nil, fmt.Errorf("FRR RIB prefix %q: %w", pfx, err)
		}
		for _, raw := range entries {
			var fp frrPath
			if err := json.Unmarshal(raw, &fp); err != nil {
				return nil, fmt.Errorf("FRR RIB %s: %w", pfx, err)
			}
			if fp.Nexthops == nil && fp.ASPath == nil {
				continue // the prefix's own header
			}
			rib[p] = append(rib[p], fp.path())
		}
	}
	return rib, nil
}

func (fp frrPath) path() RouterPath {
	rp := RouterPath{Origin: fp.Origin, Valid: fp.Valid, Stale: fp.Stale, Multipath: fp.Multipath, LocalPref: fp.LocPrf, MED: fp.Metric,
		Best: fp.Bestpath != nil && fp.Bestpath.Overall, ASPath: []uint32{}}
	if fp.ASPath != nil {
		for _, s := range fp.ASPath.Segments {
			rp.ASPath = append(rp.ASPath, s.List...)
		}
	}
	if fp.Community != nil {
		rp.Communities = fp.Community.List
	}
	if fp.LargeCommunity != nil {
		rp.LargeCommunities = fp.LargeCommunity.List
	}
	if len(fp.Nexthops) > 0 {
		rp.NextHop, _ = netip.ParseAddr(fp.Nexthops[0].IP)
	}
	if fp.Peer != nil {
		rp.Peer, _ = netip.ParseAddr(fp.Peer.PeerID)
	}
	return rp
}

// RouterRIB is the router's BGP table for family "ipv4" or "ipv6": every
// prefix with the paths it holds, including the external network it
// originates itself.
func (l *Lab) RouterRIB(family string) (map[netip.Prefix][]RouterPath, error) {
	out, err := l.RouterVtysh("show bgp " + family + " unicast json detail")
	if err != nil {
		return nil, err
	}
	return ParseRouterRIB([]byte(out))
}

// RouterRoutes is the router's paths for prefix (none: an empty list).
func (l *Lab) RouterRoutes(t testing.TB, prefix netip.Prefix) []RouterPath {
	t.Helper()
	family := "ipv4"
	if prefix.Addr().Is6() {
		family = "ipv6"
	}
	rib, err := l.RouterRIB(family)
	if err != nil {
		t.Fatal(err)
	}
	return rib[prefix]
}

// NextHops are the next hops of paths, sorted.
func NextHops(paths []RouterPath) []netip.Addr {
	var out []netip.Addr
	for _, p := range paths {
		out = append(out, p.NextHop)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// RouterNeighbor is the router's view of one BGP session.
type RouterNeighbor struct {
	State            string // FRR's: Idle, Connect, Active, OpenSent, OpenConfirm, Established
	RemoteAS         uint32 // 0 until the peer has sent an OPEN
	Uptime           time.Duration
	Established      int // sessions that came up so far
	Dropped          int
	HoldTime         time.Duration // negotiated (configured before the session is up)
	Keepalive        time.Duration
	PrefixesAccepted int
	PrefixesSent     int
	LastReset        string // FRR's reason for the last reset
	// Capabilities as FRR names them, e.g. "gracefulRestart":
	// "advertisedAndReceived"; multiprotocol families under "mp:ipv4Unicast".
	Capabilities map[string]string
	// GracefulRestartTime is the restart time the peer advertised.
	GracefulRestartTime time.Duration
}

// ParseRouterNeighbors decodes FRR's `show bgp neighbors json`.
func ParseRouterNeighbors(out []byte) (map[netip.Addr]RouterNeighbor, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("FRR neighbors: %w: %.200s", err, out)
	}
	res := map[netip.Addr]RouterNeighbor{}
	for key, raw := range doc {
		addr, err := netip.ParseAddr(key)
		if err != nil {
			continue // not a neighbor (FRR adds summary keys to some outputs)
		}
		var n struct {
			RemoteAS        uint32 `json:"remoteAs"`
			State           string `json:"bgpState"`
			UpMsec          int64  `json:"bgpTimerUpMsec"`
			HoldMsec        int64  `json:"bgpTimerHoldTimeMsecs"`
			KeepaliveMsec   int64  `json:"bgpTimerKeepAliveIntervalMsecs"`
			Established     int    `json:"connectionsEstablished"`
			Dropped         int    `json:"connectionsDropped"`
			LastReset       string `json:"lastResetDueTo"`
			AddressFamilies map[string]struct {
				Accepted int `json:"acceptedPrefixCounter"`
				Sent     int `json:"sentPrefixCounter"`
			} `json:"addressFamilyInfo"`
			Capabilities map[string]json.RawMessage `json:"neighborCapabilities"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("FRR neighbor %s: %w", key, err)
		}
		rn := RouterNeighbor{State: n.State, RemoteAS: n.RemoteAS, Established: n.Established, Dropped: n.Dropped,
			HoldTime: time.Duration(n.HoldMsec) * time.Millisecond, Keepalive: time.Duration(n.KeepaliveMsec) * time.Millisecond,
			LastReset: n.LastReset, Capabilities: map[string]string{}}
		if n.State == "Established" {
			rn.Uptime = time.Duration(n.UpMsec) * time.Millisecond
		}
		for _, af := range n.AddressFamilies {
			rn.PrefixesAccepted += af.Accepted
			rn.PrefixesSent += af.Sent
		}
		for k, v := range n.Capabilities {
			var s string
			var ms int64
			var mp map[string]map[string]bool
			switch {
			case json.Unmarshal(v, &s) == nil:
				rn.Capabilities[k] = s
			case k == "gracefulRestartRemoteTimerMsecs" && json.Unmarshal(v, &ms) == nil:
				rn.GracefulRestartTime = time.Duration(ms) * time.Millisecond
			case k == "multiprotocolExtensions" && json.Unmarshal(v, &mp) == nil:
				for fam, how := range mp {
					for h, ok := range how {
						if ok {
							rn.Capabilities["mp:"+fam] = h
						}
					}
				}
			}
		}
		res[addr] = rn
	}
	return res, nil
}

// RouterNeighbors is the router's sessions, by neighbor address.
func (l *Lab) RouterNeighbors() (map[netip.Addr]RouterNeighbor, error) {
	out, err := l.RouterVtysh("show bgp neighbors json")
	if err != nil {
		return nil, err
	}
	return ParseRouterNeighbors([]byte(out))
}

// FIBRoute is one route in the router's kernel table.
type FIBRoute struct {
	Dst      netip.Prefix
	Protocol string       // "bgp" for what zebra installed from BGP, "kernel" for connected ones
	NextHops []netip.Addr // sorted; several for ECMP
}

// ParseFIB decodes `ip -j -4 route show` output.
func ParseFIB(out []byte) ([]FIBRoute, error) {
	var routes []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		Type     string `json:"type"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("ip route: %w: %.200s", err, out)
	}
	var res []FIBRoute
	for _, r := range routes {
		dst := r.Dst
		if dst == "default" {
			dst = "0.0.0.0/0"
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
			if strings.Contains(r.Dst, ":") {
				dst = r.Dst + "/128"
			}
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			return nil, fmt.Errorf("ip route dst %q: %w", r.Dst, err)
		}
		fr := FIBRoute{Dst: p, Protocol: r.Protocol}
		gws := []string{r.Gateway}
		for _, nh := range r.Nexthops {
			gws = append(gws, nh.Gateway)
		}
		for _, g := range gws {
			if a, err := netip.ParseAddr(g); err == nil {
				fr.NextHops = append(fr.NextHops, a)
			}
		}
		slices.SortFunc(fr.NextHops, netip.Addr.Compare)
		res = append(res, fr)
	}
	return res, nil
}

// RouterFIB is the router namespace's IPv4 kernel routes (what zebra
// installed, and the connected ones).
func (l *Lab) RouterFIB() ([]FIBRoute, error) {
	out, err := exec.Command("ip", "-n", l.Layout.RouterNetns(), "-j", "-4", "route", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip route in %s: %w", l.Layout.RouterNetns(), err)
	}
	return ParseFIB(out)
}

// FromExternalClient runs a command (ping, curl, ip, ...) inside the
// external client's namespace and returns its combined output.
func (l *Lab) FromExternalClient(name string, args ...string) (string, error) {
	return netnstest.Exec(l.Layout.ExtNetns(), name, args...)
}

// ExternalClientHTTP is an HTTP client whose connections start in the
// external client's namespace (see HTTPClient).
func (l *Lab) ExternalClientHTTP() *http.Client { return l.HTTPClient(l.Layout.ExtNetns()) }
