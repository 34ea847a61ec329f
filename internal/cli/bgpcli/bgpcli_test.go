package bgpcli

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	now   = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	ipv4  = ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}
	ipv6  = ciliumv2.CiliumBGPFamily{Afi: "ipv6", Safi: "unicast"}
	since = metav1.NewTime(now.Add(-90 * time.Minute))
)

// fixture is two selected nodes, one established with routes and one whose
// session is down, and a node whose plugin has not reported yet.
func fixture() []ciliumv2.CiliumBGPNodeConfig {
	pod := ciliumv2.BGPRoute{CiliumBGPFamily: ipv4, Prefix: "10.244.1.0/24", NextHop: "0.0.0.0"}
	lb := ciliumv2.BGPRoute{CiliumBGPFamily: ipv4, Prefix: "198.18.0.240/32", NextHop: "0.0.0.0"}
	lbOut := ciliumv2.BGPRoute{CiliumBGPFamily: ipv4, Prefix: "198.18.0.240/32", NextHop: "198.18.0.11",
		Communities: []string{"65000:99", "65535:65281"}, LargeCommunities: []string{"64512:100:50"}}
	podOut := ciliumv2.BGPRoute{CiliumBGPFamily: ipv4, Prefix: "10.244.1.0/24", NextHop: "198.18.0.11", LocalPreference: ptr.To[int64](150)}
	return []ciliumv2.CiliumBGPNodeConfig{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "node-b"},
			Status: ciliumv2.CiliumBGPNodeStatus{BGPInstances: []ciliumv2.CiliumBGPNodeInstanceStatus{{
				Name: "main", LocalASN: ptr.To[int64](65001),
				Peers: []ciliumv2.CiliumBGPNodePeerStatus{{
					Name: "tor", PeerAddress: "198.18.0.254", PeerASN: ptr.To[int64](65000),
					PeeringState: ciliumv2.BGPPeeringStateActive, LastError: "dial tcp 198.18.0.254:179: i/o timeout",
					RouteCount: []ciliumv2.BGPFamilyRouteCount{{CiliumBGPFamily: ipv4}},
				}},
			}}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
			Status: ciliumv2.CiliumBGPNodeStatus{BGPInstances: []ciliumv2.CiliumBGPNodeInstanceStatus{{
				Name: "main", LocalASN: ptr.To[int64](65001), Routes: []ciliumv2.BGPRoute{pod, lb}, RoutesTotal: 3,
				Peers: []ciliumv2.CiliumBGPNodePeerStatus{
					{
						Name: "tor", PeerAddress: "198.18.0.254", PeerASN: ptr.To[int64](65000),
						PeeringState: ciliumv2.BGPPeeringStateEstablished, EstablishedTime: &since,
						RouteCount: []ciliumv2.BGPFamilyRouteCount{
							{CiliumBGPFamily: ipv4, Received: 1, Advertised: 2},
							{CiliumBGPFamily: ipv6, Received: 0, Advertised: 0},
						},
						AdvertisedRoutes: []ciliumv2.BGPRoute{lbOut},
					},
					{
						Name: "rr", PeerAddress: "198.18.0.253", PeerASN: ptr.To[int64](65001),
						PeeringState: ciliumv2.BGPPeeringStateEstablished, EstablishedTime: &since,
						RouteCount:       []ciliumv2.BGPFamilyRouteCount{{CiliumBGPFamily: ipv4, Received: 0, Advertised: 1}},
						AdvertisedRoutes: []ciliumv2.BGPRoute{podOut},
					},
				},
			}}},
		},
		{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// TestB62_Peers prints one row per node, peer and family with the seed's
// columns; a node without status says why.
func TestB62_Peers(t *testing.T) {
	var b bytes.Buffer
	if err := Peers(&b, fixture(), now); err != nil {
		t.Fatal(err)
	}
	golden(t, "peers.txt", b.Bytes())
}

// TestB40_B41_B42_B63_Routes prints the local RIB and per-peer advertised routes with
// their attributes (B40 communities, B41 well-known and large, B42 local
// preference), filtered by peer and virtual router.
func TestB40_B41_B42_B63_Routes(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    RouteFilter
	}{
		{"routes-available.txt", RouteFilter{Family: ipv4}},
		{"routes-advertised.txt", RouteFilter{Advertised: true, Family: ipv4}},
		{"routes-advertised-peer.txt", RouteFilter{Advertised: true, Family: ipv4, Peer: netip.MustParseAddr("198.18.0.253")}},
		{"routes-available-other-vrouter.txt", RouteFilter{Family: ipv4, VRouter: 64999}},
		{"routes-available-ipv6.txt", RouteFilter{Family: ipv6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Routes(&b, fixture(), tc.f); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

func TestParseFamily(t *testing.T) {
	if _, err := ParseFamily("ipv4", "multicast"); err == nil {
		t.Error("ipv4 multicast accepted")
	}
	if _, err := ParseFamily("l2vpn", "unicast"); err == nil {
		t.Error("l2vpn accepted")
	}
	if f, err := ParseFamily("ipv6", "unicast"); err != nil || f != ipv6 {
		t.Errorf("ipv6 unicast: %v %v", f, err)
	}
}
