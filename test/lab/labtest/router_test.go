package labtest

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// FRR 8.4's `show bgp ipv4 unicast json detail`: a header element, then
// the paths; the router's own network has an empty AS path.
const frrRIB = `{
 "vrfId": 0, "vrfName": "default", "tableVersion": 3, "routerId": "198.18.77.254", "defaultLocPrf": 100, "localAS": 65000,
 "routes": { "198.18.77.200/32": [{"prefix":"198.18.77.200/32","version":2,"advertisedTo":{"198.18.77.11":{}}},
  {"aspath":{"string":"65011","segments":[{"type":"as-sequence","list":[65011]}],"length":1},"origin":"IGP","valid":true,"version":2,
   "multipath":true,"bestpath":{"overall":true,"selectionReason":"First path received"},
   "community":{"string":"65000:100 no-export","list":["65000:100","noExport"]},
   "largeCommunity":{"string":"65011:1:2","list":["65011:1:2"]},
   "nexthops":[{"ip":"198.18.77.11","afi":"ipv4","metric":0,"accessible":true,"used":true}],
   "peer":{"peerId":"198.18.77.11","routerId":"198.18.77.11","type":"external"}},
  {"aspath":{"string":"65012","segments":[{"type":"as-sequence","list":[65012]}],"length":1},"origin":"IGP","valid":true,"stale":true,
   "multipath":true,"locPrf":150,"metric":7,
   "nexthops":[{"ip":"198.18.77.12","afi":"ipv4","used":true}],"peer":{"peerId":"198.18.77.12","type":"internal"}}]
,"198.19.77.128/25": [{"prefix":"198.19.77.128/25","version":1,"advertisedTo":{}},
  {"aspath":{"string":"Local","segments":[],"length":0},"origin":"IGP","valid":true,"bestpath":{"overall":true},
   "nexthops":[{"ip":"0.0.0.0","afi":"ipv4","used":true}],"peer":{"peerId":"(unspec)"}}]
 }  }`

func TestParseRouterRIB(t *testing.T) {
	rib, err := ParseRouterRIB([]byte(frrRIB))
	if err != nil {
		t.Fatal(err)
	}
	lb := rib[netip.MustParsePrefix("198.18.77.200/32")]
	if len(lb) != 2 {
		t.Fatalf("want 2 paths, got %+v", lb)
	}
	p := lb[0]
	if p.NextHop != netip.MustParseAddr("198.18.77.11") || p.Peer != p.NextHop || !p.Best || !p.Valid || !p.Multipath || p.Stale ||
		!slices.Equal(p.ASPath, []uint32{65011}) || !slices.Equal(p.Communities, []string{"65000:100", "noExport"}) ||
		!slices.Equal(p.LargeCommunities, []string{"65011:1:2"}) || p.LocalPref != nil || p.MED != nil {
		t.Errorf("first path %+v", p)
	}
	if q := lb[1]; q.Best || !q.Stale || q.LocalPref == nil || *q.LocalPref != 150 || q.MED == nil || *q.MED != 7 {
		t.Errorf("second path %+v", q)
	}
	if got := NextHops(lb); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.18.77.11"), netip.MustParseAddr("198.18.77.12")}) {
		t.Errorf("next hops %v", got)
	}
	own := rib[netip.MustParsePrefix("198.19.77.128/25")]
	if len(own) != 1 || !own[0].Best || len(own[0].ASPath) != 0 || own[0].Peer.IsValid() {
		t.Errorf("own network %+v", own)
	}
	if _, err := ParseRouterRIB([]byte("% Unknown command")); err == nil {
		t.Error("garbage parsed")
	}
}

// Trimmed `show bgp neighbors json` of FRR 8.4: one session up, one idle.
const frrNeighbors = `{
  "198.18.77.11":{"remoteAs":65011,"localAs":65000,"bgpState":"Established","bgpTimerUpMsec":112000,
    "bgpTimerHoldTimeMsecs":9000,"bgpTimerKeepAliveIntervalMsecs":3000,
    "neighborCapabilities":{"4byteAs":"advertisedAndReceived","gracefulRestart":"advertisedAndReceived",
      "gracefulRestartRemoteTimerMsecs":120000,"multiprotocolExtensions":{"ipv4Unicast":{"advertisedAndReceived":true},"ipv6Unicast":{"advertised":true}},
      "addPath":{"ipv4Unicast":{"rxAdvertised":true}}},
    "addressFamilyInfo":{"ipv4Unicast":{"acceptedPrefixCounter":2,"sentPrefixCounter":1},"ipv6Unicast":{"acceptedPrefixCounter":0,"sentPrefixCounter":0}},
    "connectionsEstablished":1,"connectionsDropped":0,"lastResetDueTo":"Waiting for peer OPEN"},
  "198.18.77.12":{"remoteAs":0,"localAs":65000,"bgpState":"Active","bgpTimerUpMsec":0,"bgpTimerHoldTimeMsecs":180000,
    "connectionsEstablished":0,"connectionsDropped":0}
}`

func TestParseRouterNeighbors(t *testing.T) {
	ns, err := ParseRouterNeighbors([]byte(frrNeighbors))
	if err != nil {
		t.Fatal(err)
	}
	up := ns[netip.MustParseAddr("198.18.77.11")]
	if up.State != "Established" || up.RemoteAS != 65011 || up.Uptime != 112*time.Second || up.HoldTime != 9*time.Second ||
		up.Keepalive != 3*time.Second || up.PrefixesAccepted != 2 || up.PrefixesSent != 1 || up.Established != 1 ||
		up.GracefulRestartTime != 120*time.Second || up.Capabilities["gracefulRestart"] != "advertisedAndReceived" ||
		up.Capabilities["mp:ipv4Unicast"] != "advertisedAndReceived" || up.Capabilities["mp:ipv6Unicast"] != "advertised" {
		t.Errorf("established neighbor %+v", up)
	}
	idle := ns[netip.MustParseAddr("198.18.77.12")]
	if idle.State != "Active" || idle.Uptime != 0 || idle.RemoteAS != 0 {
		t.Errorf("idle neighbor %+v", idle)
	}
	if len(ns) != 2 {
		t.Errorf("want 2 neighbors, got %d", len(ns))
	}
}

// `ip -j -4 route show`: connected, single next hop, ECMP.
const ipRoutes = `[{"dst":"198.18.77.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"198.18.77.254","flags":[]},
{"dst":"198.18.77.200","nhid":6,"gateway":"198.18.77.11","dev":"eth0","protocol":"bgp","metric":20,"flags":[]},
{"dst":"10.0.1.0/24","nhid":9,"protocol":"bgp","metric":20,"flags":[],"nexthops":[{"gateway":"198.18.77.13","dev":"eth0","weight":1,"flags":[]},{"gateway":"198.18.77.11","dev":"eth0","weight":1,"flags":[]}]}]`

func TestParseFIB(t *testing.T) {
	fib, err := ParseFIB([]byte(ipRoutes))
	if err != nil {
		t.Fatal(err)
	}
	if len(fib) != 3 {
		t.Fatalf("%+v", fib)
	}
	if fib[0].Dst != netip.MustParsePrefix("198.18.77.0/24") || fib[0].Protocol != "kernel" || len(fib[0].NextHops) != 0 {
		t.Errorf("connected %+v", fib[0])
	}
	if fib[1].Dst != netip.MustParsePrefix("198.18.77.200/32") || !slices.Equal(fib[1].NextHops, []netip.Addr{netip.MustParseAddr("198.18.77.11")}) {
		t.Errorf("host route %+v", fib[1])
	}
	if want := []netip.Addr{netip.MustParseAddr("198.18.77.11"), netip.MustParseAddr("198.18.77.13")}; fib[2].Protocol != "bgp" || !slices.Equal(fib[2].NextHops, want) {
		t.Errorf("ECMP route %+v, want next hops %v", fib[2], want)
	}
}

// BIRD 2.0.12's `show route all`: two paths for one prefix, one for another.
const birdRoutes = `BIRD 2.0.12 ready.
Table master4:
198.19.0.100/32      unicast [n1 08:16:06.166] * (100) [AS65001i]
	via 198.18.0.11 on eth0
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 65001
	BGP.next_hop: 198.18.0.11
	BGP.med: 5
	BGP.local_pref: 100
	BGP.community: (65000,100) (65535,65281)
	BGP.large_community: (64512, 100, 50)
                     unicast [n2 08:16:08.174] (100) [AS65002i]
	via 198.18.0.12 on eth0
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 65002 65010
	BGP.next_hop: 198.18.0.12
	BGP.local_pref: 150
10.0.1.0/24          unicast [n1 08:16:06.167] * (100) [AS65001i]
	via 198.18.0.11 on eth0
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 65001
	BGP.next_hop: 198.18.0.11
	BGP.local_pref: 100
`

func TestParseBirdRoutes(t *testing.T) {
	rib, err := ParseBirdRoutes(birdRoutes)
	if err != nil {
		t.Fatal(err)
	}
	lb := rib[netip.MustParsePrefix("198.19.0.100/32")]
	if len(lb) != 2 || len(rib) != 2 {
		t.Fatalf("%+v", rib)
	}
	p := lb[0]
	if !p.Best || p.NextHop != netip.MustParseAddr("198.18.0.11") || !slices.Equal(p.ASPath, []uint32{65001}) || p.Origin != "IGP" ||
		!slices.Equal(p.Communities, []string{"65000:100", "65535:65281"}) || !slices.Equal(p.LargeCommunities, []string{"64512:100:50"}) ||
		p.MED == nil || *p.MED != 5 || p.LocalPref == nil || *p.LocalPref != 100 {
		t.Errorf("first path %+v", p)
	}
	if q := lb[1]; q.Best || q.NextHop != netip.MustParseAddr("198.18.0.12") || !slices.Equal(q.ASPath, []uint32{65002, 65010}) ||
		*q.LocalPref != 150 || q.Communities != nil || q.MED != nil {
		t.Errorf("second path %+v", q)
	}
	if pc := rib[netip.MustParsePrefix("10.0.1.0/24")]; len(pc) != 1 || !pc[0].Best {
		t.Errorf("pod CIDR %+v", pc)
	}
}

// BIRD 2.0.12's `show protocols all`, trimmed: one session up, one not.
const birdProtocols = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     08:15:45.170  
n1         BGP        ---        up     08:16:05.949  Established   
  Description:    plxlab-n1
  BGP state:          Established
    Neighbor address: 198.18.0.11
    Neighbor AS:      65001
    Local AS:         65100
    Session:          external AS4
    Hold timer:       221.893/240
    Keepalive timer:  66.182/80
  Channel ipv4
    State:          UP
    Routes:         2 imported, 0 exported, 2 preferred
n2         BGP        ---        start  08:15:45.170  Active        Socket: Connection refused
  Description:    plxlab-n2
  BGP state:          Active
    Neighbor address: 198.18.0.12
    Neighbor AS:      0
    Local AS:         65100
    Connect delay:    2.171/5
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
`

func TestParseBirdProtocols(t *testing.T) {
	ns, err := ParseBirdProtocols(birdProtocols)
	if err != nil {
		t.Fatal(err)
	}
	up := ns[netip.MustParseAddr("198.18.0.11")]
	if up.State != "Established" || up.RemoteAS != 65001 || up.HoldTime != 240*time.Second || up.Keepalive != 80*time.Second || up.RoutesImported != 2 {
		t.Errorf("up %+v", up)
	}
	down := ns[netip.MustParseAddr("198.18.0.12")]
	if down.State != "Active" || down.LastError != "Socket: Connection refused" || down.RemoteAS != 0 {
		t.Errorf("down %+v", down)
	}
	if len(ns) != 2 {
		t.Errorf("want 2 neighbors, got %+v", ns)
	}
}
