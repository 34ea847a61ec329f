package desired

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

var podCIDRAdvert = ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPPodCIDRAdvert}

// B16 (and B24, B26): an empty PeerConfig gives port 179, connect-retry
// 120 s, hold 90 s, keepalive 30 s, TTL 1, no graceful restart, IPv4 and
// IPv6 unicast, no password and no routes.
func TestB14_B16_B24_B26_EmptyPeerConfigDefaults(t *testing.T) {
	in := baseInput()
	in.PeerConfigs = []ciliumv2.CiliumBGPPeerConfig{peerConfig("peer", ciliumv2.CiliumBGPPeerConfigSpec{})}
	st := Compute(in)
	want := State{Source: "CiliumBGPNodeConfig/node-a", Instances: []Instance{{
		Name: "instance-65001", ASN: 65001, RouterID: netip.MustParseAddr("192.168.10.1"),
		Peers: []Peer{{
			Name: "tor1", Address: netip.MustParseAddr("198.18.0.1"), ASN: 65000, Port: 179,
			ConnectRetry: 120 * time.Second, HoldTime: 90 * time.Second, Keepalive: 30 * time.Second,
			EBGPMultihopTTL: 1, Families: []Family{{"ipv4", "unicast"}, {"ipv6", "unicast"}},
			RouteGroup: "CiliumBGPPeerConfig/peer",
		}},
	}}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("got:\n%s\nwant:\n%s", render(st), render(want))
	}
}

// B14, B15, B19, B22 as the node sees them: every PeerConfig setting is
// carried to the peer.
func TestB14_B15_B19_B22_PeerConfigSettings(t *testing.T) {
	in := baseInput()
	in.PeerConfigs = []ciliumv2.CiliumBGPPeerConfig{peerConfig("peer", ciliumv2.CiliumBGPPeerConfigSpec{
		Transport:       &ciliumv2.CiliumBGPTransport{PeerPort: ptr.To[int32](1179)},
		Timers:          &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](5), HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
		EBGPMultihop:    ptr.To[int32](4),
		GracefulRestart: &ciliumv2.CiliumBGPNeighborGracefulRestart{Enabled: true},
	})}
	got := renderPeer(firstPeer(t, Compute(in)))
	expectText(t, "peer", got,
		`  peer tor1 addr 198.18.0.1 asn 65000 local - port 1179 retry 5s hold 9s keepalive 3s ttl 4 gr 2m0s families ipv4/unicast,ipv6/unicast password ""`+"\n"+
			"    route group CiliumBGPPeerConfig/peer\n")

	in.PeerConfigs[0].Spec.GracefulRestart.RestartTimeSeconds = ptr.To[int32](15)
	if gr := firstPeer(t, Compute(in)).GracefulRestart; gr != (GracefulRestart{Enabled: true, RestartTime: 15 * time.Second}) {
		t.Errorf("graceful restart %+v, want enabled with 15s", gr)
	}
	in.PeerConfigs[0].Spec.GracefulRestart.Enabled = false
	if gr := firstPeer(t, Compute(in)).GracefulRestart; gr != (GracefulRestart{}) {
		t.Errorf("disabled graceful restart %+v, want zero", gr)
	}
}

// B7: a missing Secret gives an empty password and a MissingAuthSecret
// problem naming the PeerConfig and the Secret; the peer is still there. An
// existing Secret gives its password.
func TestB7_MissingSecret(t *testing.T) {
	in := baseInput()
	in.PeerConfigs[0].Spec.AuthSecretRef = ptr.To("bgp-auth")
	st := Compute(in)
	if p := firstPeer(t, st); p.Password != "" {
		t.Errorf("password %q, want empty", p.Password)
	}
	want := []Problem{{Reason: ReasonMissingAuthSecret,
		Message: `CiliumBGPPeerConfig "peer" spec.authSecretRef: Secret "kube-system/bgp-auth" does not exist or has no key "password": sessions use an empty password`}}
	if !reflect.DeepEqual(st.Problems, want) {
		t.Errorf("problems %+v, want %+v", st.Problems, want)
	}

	in.Secrets = map[string]string{"bgp-auth": "s3cret"}
	st = Compute(in)
	noProblems(t, st)
	if p := firstPeer(t, st); p.Password != "s3cret" {
		t.Errorf("password %q, want s3cret", p.Password)
	}
}

// B24: a PeerConfig without families negotiates IPv4 and IPv6 unicast.
func TestB24_DefaultFamilies(t *testing.T) {
	in := baseInput()
	in.PeerConfigs[0].Spec.Families = nil
	want := []Family{{"ipv4", "unicast"}, {"ipv6", "unicast"}}
	if got := firstPeer(t, Compute(in)).Families; !reflect.DeepEqual(got, want) {
		t.Errorf("families %v, want %v", got, want)
	}
	// A peer without peerConfigRef too.
	in.NodeConfig.Spec.BGPInstances[0].Peers[0].PeerConfigRef = nil
	if got := firstPeer(t, Compute(in)).Families; !reflect.DeepEqual(got, want) {
		t.Errorf("families without peerConfigRef %v, want %v", got, want)
	}
}

// B25: families=[ipv4/unicast] negotiates only IPv4, and only IPv4 routes
// are sent.
func TestB25_FamilyRestriction(t *testing.T) {
	in := baseInput()
	in.PeerConfigs[0].Spec.Families = []ciliumv2.CiliumBGPFamilyWithAdverts{advertFamily("ipv4")}
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", podCIDRAdvert)}
	p := firstPeer(t, Compute(in))
	if want := []Family{{"ipv4", "unicast"}}; !reflect.DeepEqual(p.Families, want) {
		t.Errorf("families %v, want %v", p.Families, want)
	}
	expectText(t, "routes", renderRoutes(p.Routes), lines("    route 10.1.0.0/24"))
}

// B26: a family without an advertisements selector advertises nothing,
// even when advertisements exist; so does a selector matching none.
func TestB26_NoAdvertWithoutSelector(t *testing.T) {
	in := baseInput()
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", podCIDRAdvert)}
	in.PeerConfigs[0].Spec.Families = []ciliumv2.CiliumBGPFamilyWithAdverts{
		{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}},
		{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv6", Safi: "unicast"}, Advertisements: matchLabels("advertise", "other")},
	}
	st := Compute(in)
	noProblems(t, st)
	expectText(t, "routes", routesOf(t, st), "")
}

// B27: a PodCIDR advert advertises the node's own pod CIDRs: the
// CiliumNode's in cluster-pool mode, the Node's in kubernetes mode.
func TestB27_PodCIDR(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want string
	}{
		{IPAMClusterPool, lines("    route 10.1.0.0/24 communities 65000:99 local-pref 99", "    route fd00:1::/64 communities 65000:99 local-pref 99")},
		{IPAMKubernetes, lines("    route 10.244.1.0/24 communities 65000:99 local-pref 99", "    route fd00:244:1::/64 communities 65000:99 local-pref 99")},
	} {
		in := baseInput()
		in.IPAMMode = tc.mode
		// The seed's example advert with attributes.
		a := podCIDRAdvert
		a.Attributes = &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{Standard: []ciliumv2.BGPStandardCommunity{"65000:99"}},
			LocalPreference: ptr.To[int64](99)}
		in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", a)}
		st := Compute(in)
		noProblems(t, st)
		expectText(t, tc.mode, routesOf(t, st), tc.want)
	}
}

// B28: in modes without node pod CIDRs a PodCIDR advert advertises nothing
// and is no error.
func TestB28_PodCIDRUnsupportedModes(t *testing.T) {
	for _, mode := range []string{IPAMMultiPool, "crd", "eni", ""} {
		in := baseInput()
		in.IPAMMode = mode
		in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", podCIDRAdvert)}
		st := Compute(in)
		noProblems(t, st)
		expectText(t, mode, routesOf(t, st), "")
	}
}

// multiPoolInput is a multi-pool node holding CIDRs of pools blue and red
// (and of a pool that no longer exists).
func multiPoolInput() Input {
	in := baseInput()
	in.IPAMMode = IPAMMultiPool
	in.CiliumNode.Spec.IPAM.PodCIDRs = nil
	in.CiliumNode.Spec.IPAM.Pools.Allocated = []ciliumv2.IPAMPoolAllocation{
		{Pool: "red", CIDRs: []string{"10.30.0.64/26"}},
		{Pool: "blue", CIDRs: []string{"10.20.1.0/26", "fd00:20::100/120", "10.20.0.0/26"}},
		{Pool: "gone", CIDRs: []string{"10.40.0.0/26"}},
	}
	in.PodIPPools = []ciliumv2alpha1.CiliumPodIPPool{
		podPoolObj("red", map[string]string{"color": "red"}),
		podPoolObj("blue", map[string]string{"color": "blue"}),
		podPoolObj("green", map[string]string{"color": "green"}),
	}
	return in
}

// B29, B30: a CiliumPodIPPool advert selecting pool blue, by label or by
// the special name key, advertises exactly the blue CIDRs this node holds.
func TestB29_B30_PodIPPool(t *testing.T) {
	for name, sel := range map[string]*metav1.LabelSelector{
		"B29 label":       matchLabels("color", "blue"),
		"B30 special key": matchLabels(PodIPPoolNameKey, "blue"),
	} {
		in := multiPoolInput()
		in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pools",
			ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPCiliumPodIPPoolAdvert, Selector: sel})}
		st := Compute(in)
		noProblems(t, st)
		expectText(t, name, routesOf(t, st), lines("    route 10.20.0.0/26", "    route 10.20.1.0/26", "    route fd00:20::100/120"))
	}
}

// B35 for pools, and the absent selector selecting nothing: the NotIn idiom
// selects every existing pool (not the deleted one the node still holds).
func TestB35_SelectAllPools(t *testing.T) {
	in := multiPoolInput()
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pools",
		ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPCiliumPodIPPoolAdvert, Selector: selectAll()})}
	expectText(t, "all pools", routesOf(t, Compute(in)),
		lines("    route 10.20.0.0/26", "    route 10.20.1.0/26", "    route 10.30.0.64/26", "    route fd00:20::100/120"))

	in.Advertisements[0].Spec.Advertisements[0].Selector = nil
	expectText(t, "no selector", routesOf(t, Compute(in)), "")
}

// B40, B41, B42: standard, well-known and large communities are converted
// to their values; local preference is carried on the route (the speaker
// sends it to iBGP peers only).
func TestB40_B41_B42_Attributes(t *testing.T) {
	in := baseInput()
	in.IPv6Enabled = false
	a := podCIDRAdvert
	a.Attributes = &ciliumv2.BGPAttributes{
		Communities: &ciliumv2.BGPCommunities{
			Standard:  []ciliumv2.BGPStandardCommunity{"65000:99", "4259840100"}, // 65000:100 as one number
			WellKnown: []ciliumv2.BGPWellKnownCommunity{"no-export", "blackhole", "internet"},
			Large:     []ciliumv2.BGPLargeCommunity{"64512:100:50"},
		},
		LocalPreference: ptr.To[int64](150),
	}
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", a)}
	st := Compute(in)
	noProblems(t, st)
	r := firstPeer(t, st).Routes
	want := []Route{{
		Prefix:           netip.MustParsePrefix("10.1.0.0/24"),
		Communities:      []uint32{0, 65000<<16 | 99, 65000<<16 | 100, 65535<<16 | 666, 65535<<16 | 65281},
		LargeCommunities: []LargeCommunity{{64512, 100, 50}},
		LocalPreference:  ptr.To[uint32](150),
	}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("routes:\n%s\nwant:\n%s", renderRoutes(r), renderRoutes(want))
	}
}

// Every well-known name maps to the value the API documents.
func TestWellKnownCommunityValues(t *testing.T) {
	want := map[string]string{
		"internet": "0:0", "planned-shut": "65535:0", "accept-own": "65535:1", "route-filter-translated-v4": "65535:2",
		"route-filter-v4": "65535:3", "route-filter-translated-v6": "65535:4", "route-filter-v6": "65535:5",
		"llgr-stale": "65535:6", "no-llgr": "65535:7", "blackhole": "65535:666", "no-export": "65535:65281",
		"no-advertise": "65535:65282", "no-export-subconfed": "65535:65283", "no-peer": "65535:65284",
	}
	if len(wellKnownCommunities) != len(want) {
		t.Fatalf("%d well-known communities, want %d", len(wellKnownCommunities), len(want))
	}
	for name, pair := range want {
		v, err := parseStandardCommunity(pair)
		if err != nil || wellKnownCommunities[name] != v {
			t.Errorf("%s = %#x, want %s (%#x, %v)", name, wellKnownCommunities[name], pair, v, err)
		}
	}
}

// A malformed community keeps the entry's routes back (rather than sending
// them without, say, no-export) and is reported.
func TestInvalidCommunity(t *testing.T) {
	in := baseInput()
	a := podCIDRAdvert
	a.Attributes = &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{Standard: []ciliumv2.BGPStandardCommunity{"65536:1"}}}
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", a)}
	st := Compute(in)
	expectText(t, "routes", routesOf(t, st), "")
	want := []Problem{{Reason: ReasonInvalidAdvertising,
		Message: `CiliumBGPAdvertisement "pods" spec.advertisements[0].attributes: standard community "65536:1" is not two 16-bit numbers AS:value: its routes are not advertised`}}
	if !reflect.DeepEqual(st.Problems, want) {
		t.Errorf("problems %+v, want %+v", st.Problems, want)
	}
}

// B68: an IPv4-only node never advertises IPv6 prefixes, an IPv6-only node
// never IPv4 ones, whatever the PeerConfig negotiates.
func TestB68_FamiliesOnlyConfigured(t *testing.T) {
	in := baseInput()
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", podCIDRAdvert)}
	in.IPv6Enabled = false
	p := firstPeer(t, Compute(in))
	expectText(t, "IPv4-only", renderRoutes(p.Routes), lines("    route 10.1.0.0/24"))
	if len(p.Families) != 2 {
		t.Errorf("families %v: the negotiated families stay as configured", p.Families)
	}
	in.IPv4Enabled, in.IPv6Enabled = false, true
	expectText(t, "IPv6-only", routesOf(t, Compute(in)), lines("    route fd00:1::/64"))
}

// The router ID is the NodeConfig's, else the node's IPv4 InternalIP; with
// neither the instance is not run and NoRouterID is reported.
func TestB45_RouterID(t *testing.T) {
	in := baseInput()
	if id := Compute(in).Instances[0].RouterID; id != netip.MustParseAddr("192.168.10.1") {
		t.Errorf("router ID %s, want the configured 192.168.10.1", id)
	}
	in.NodeConfig.Spec.BGPInstances[0].RouterID = nil
	if id := Compute(in).Instances[0].RouterID; id != netip.MustParseAddr("198.18.0.11") {
		t.Errorf("router ID %s, want the node's IPv4 198.18.0.11", id)
	}
	in.Node.Status.Addresses = in.Node.Status.Addresses[:2] // IPv6 only
	st := Compute(in)
	want := State{Source: "CiliumBGPNodeConfig/node-a", Problems: []Problem{{Reason: ReasonNoRouterID,
		Message: `CiliumBGPNodeConfig instance "instance-65001" has no routerID, and the node has neither an IPv4 InternalIP nor a MAC address to derive one from: set one in the node's CiliumBGPNodeConfigOverride; the instance is not run`}}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got:\n%s\nwant:\n%s", render(st), render(want))
	}
}

// TestB46_DerivedRouterIDOnIPv6OnlyNode: an IPv6-only node runs with the
// router ID it derived itself; a configured one and an IPv4 InternalIP
// still come first.
func TestB46_DerivedRouterIDOnIPv6OnlyNode(t *testing.T) {
	in := baseInput()
	in.DerivedRouterID = netip.MustParseAddr("0.17.34.51")
	if id := Compute(in).Instances[0].RouterID; id != netip.MustParseAddr("192.168.10.1") {
		t.Errorf("router ID %s, want the configured 192.168.10.1", id)
	}
	in.NodeConfig.Spec.BGPInstances[0].RouterID = nil
	if id := Compute(in).Instances[0].RouterID; id != netip.MustParseAddr("198.18.0.11") {
		t.Errorf("router ID %s, want the node's IPv4 198.18.0.11", id)
	}
	in.Node.Status.Addresses = in.Node.Status.Addresses[:2] // IPv6 only
	st := Compute(in)
	if len(st.Problems) > 0 || len(st.Instances) != 1 || st.Instances[0].RouterID != in.DerivedRouterID {
		t.Errorf("IPv6-only node: instances %+v, problems %+v; want the derived router ID", st.Instances, st.Problems)
	}
}

// A peerConfigRef to a missing PeerConfig gives the default settings, no
// routes, and a problem; localPort, localAddress and auto-discovery carry
// over; a peer without address is skipped.
func TestNodeConfigPeers(t *testing.T) {
	in := baseInput()
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("pods", podCIDRAdvert)}
	in.NodeConfig = nodeConfig(ciliumv2.CiliumBGPNodeInstance{
		Name: "instance-65001", LocalASN: ptr.To[int64](65001), LocalPort: ptr.To[int32](1790),
		Peers: []ciliumv2.CiliumBGPNodePeer{
			{Name: "tor2", PeerAddress: ptr.To("fd00:11::1"), PeerASN: ptr.To[int64](65000), LocalAddress: ptr.To("fd00:11::2"),
				PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "typo"}},
			{Name: "gw", AutoDiscovery: &ciliumv2.BGPAutoDiscovery{Mode: ciliumv2.BGPAutoDiscoveryDefaultGateway,
				DefaultGateway: &ciliumv2.DefaultGateway{AddressFamily: "ipv6"}}, PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "peer"}},
			{Name: "broken"},
		},
	}, ciliumv2.CiliumBGPNodeInstance{Name: "no-asn"})
	expectText(t, "state", render(Compute(in)), lines(
		"source CiliumBGPNodeConfig/node-a",
		"instance instance-65001 asn 65001 router-id 198.18.0.11 listen 1790",
		`  peer gw addr auto:ipv6 asn 0 local - port 179 retry 2m0s hold 1m30s keepalive 30s ttl 1 gr off families ipv4/unicast,ipv6/unicast password ""`,
		"    route group CiliumBGPPeerConfig/peer",
		"    route 10.1.0.0/24",
		"    route fd00:1::/64",
		`  peer tor2 addr fd00:11::1 asn 65000 local fd00:11::2 port 179 retry 2m0s hold 1m30s keepalive 30s ttl 1 gr off families ipv4/unicast,ipv6/unicast password ""`,
		`problem InvalidInstance: CiliumBGPNodeConfig instance "no-asn" has no valid localASN (1-4294967295): the instance is not run`,
		`problem InvalidPeer: CiliumBGPNodeConfig instance "instance-65001" peer "broken" has neither peerAddress nor autoDiscovery: the peer is skipped`,
		`problem MissingPeerConfig: CiliumBGPNodeConfig instance "instance-65001" peer "tor2": CiliumBGPPeerConfig "typo" (peerConfigRef) does not exist: the peer uses default settings and is sent no routes`,
	))
}

// Two peers of one instance at one address cannot both run; the first by
// name stays.
func TestDuplicatePeerAddress(t *testing.T) {
	in := baseInput()
	peers := &in.NodeConfig.Spec.BGPInstances[0].Peers
	*peers = append(*peers, ciliumv2.CiliumBGPNodePeer{Name: "tor0", PeerAddress: ptr.To("198.18.0.1")})
	st := Compute(in)
	if p := firstPeer(t, st); p.Name != "tor0" {
		t.Errorf("kept %s, want tor0", p.Name)
	}
	want := []Problem{{Reason: ReasonInvalidPeer,
		Message: `instance "instance-65001": peers "tor0" and "tor1" have the same address 198.18.0.1: "tor1" is skipped`}}
	if !reflect.DeepEqual(st.Problems, want) {
		t.Errorf("problems %+v, want %+v", st.Problems, want)
	}
}

// No NodeConfig and no policy: the zero State, every instance stopped.
func TestNothingSelectsTheNode(t *testing.T) {
	in := baseInput()
	in.NodeConfig = nil
	if st := Compute(in); !reflect.DeepEqual(st, State{}) {
		t.Errorf("got:\n%s", render(st))
	}
}
