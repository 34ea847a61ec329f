package v2_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/testenv"
)

// The BGP kinds are checked against the real API server: every seed example
// is admitted, and every rule refuses a bad value with an error naming the
// field. The TestMain of this package is in
// egressgatewaypolicy_validation_test.go.

// admissionCase is one object to create and the error it must get ("" for
// admitted).
type admissionCase struct {
	name    string
	obj     client.Object
	wantErr string
}

func runAdmission(t *testing.T, cases []admissionCase) {
	t.Helper()
	testenv.Require(t, env)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(ctx, tc.obj)
			if err != nil {
				t.Log(err)
			}
			if err == nil {
				_ = env.Client.Delete(ctx, tc.obj)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("admitted; want an error with %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q lacks %q", err, tc.wantErr)
			}
		})
	}
}

// meta gives each object of a table its own name, so that a failed delete
// cannot make a later case fail with AlreadyExists.
func meta(prefix string, i int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i)}
}

// seedClusterConfig is the seed's ClusterConfig: instance-65000 with two ToR
// peers sharing the PeerConfig cilium-peer.
func seedClusterConfig() ciliumv2.CiliumBGPClusterConfigSpec {
	peer := func(name, addr string) ciliumv2.CiliumBGPPeer {
		return ciliumv2.CiliumBGPPeer{
			Name:          name,
			PeerASN:       ptr.To[int64](65000),
			PeerAddress:   ptr.To(addr),
			PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "cilium-peer"},
		}
	}
	return ciliumv2.CiliumBGPClusterConfigSpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "rack0"}},
		BGPInstances: []ciliumv2.CiliumBGPInstance{{
			Name:      "instance-65000",
			LocalASN:  ptr.To[int64](65000),
			LocalPort: ptr.To[int32](179),
			Peers:     []ciliumv2.CiliumBGPPeer{peer("peer-65000-tor1", "fd00:10:0:0::1"), peer("peer-65000-tor2", "fd00:11:0:0::1")},
		}},
	}
}

func defaultGateway(family string) *ciliumv2.BGPAutoDiscovery {
	return &ciliumv2.BGPAutoDiscovery{Mode: "DefaultGateway", DefaultGateway: &ciliumv2.DefaultGateway{AddressFamily: family}}
}

func TestBGPClusterConfigAdmission(t *testing.T) {
	var cases []admissionCase
	add := func(name string, mutate func(*ciliumv2.CiliumBGPClusterConfigSpec), wantErr string) {
		spec := seedClusterConfig()
		mutate(&spec)
		cases = append(cases, admissionCase{name, &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: meta("cbgpcluster", len(cases)), Spec: spec}, wantErr})
	}
	inst := func(s *ciliumv2.CiliumBGPClusterConfigSpec) *ciliumv2.CiliumBGPInstance { return &s.BGPInstances[0] }
	peer := func(s *ciliumv2.CiliumBGPClusterConfigSpec) *ciliumv2.CiliumBGPPeer {
		return &s.BGPInstances[0].Peers[0]
	}

	add("seed example", func(*ciliumv2.CiliumBGPClusterConfigSpec) {}, "")
	add("no nodeSelector selects all", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { s.NodeSelector = nil }, "")
	add("B52 auto-discovered peer", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		p := peer(s)
		p.PeerAddress, p.AutoDiscovery = nil, defaultGateway("ipv6")
	}, "")
	add("B11 no localPort", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).LocalPort = nil }, "")
	add("largest 4-byte ASNs", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		inst(s).LocalASN = ptr.To[int64](4294967295)
		peer(s).PeerASN = ptr.To[int64](4294967295)
	}, "")
	add("instance without peers", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).Peers = nil }, "")
	add("16 instances", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		for i := 1; i < 16; i++ {
			s.BGPInstances = append(s.BGPInstances, ciliumv2.CiliumBGPInstance{Name: fmt.Sprintf("i%d", i), LocalASN: ptr.To[int64](65001)})
		}
	}, "")

	add("no instances", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { s.BGPInstances = nil }, "spec.bgpInstances")
	add("17 instances", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		for i := 1; i < 17; i++ {
			s.BGPInstances = append(s.BGPInstances, ciliumv2.CiliumBGPInstance{Name: fmt.Sprintf("i%d", i)})
		}
	}, "spec.bgpInstances: Too many")
	add("duplicate instance name", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		s.BGPInstances = append(s.BGPInstances, ciliumv2.CiliumBGPInstance{Name: "instance-65000"})
	}, "spec.bgpInstances[1]: Duplicate value")
	add("empty instance name", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).Name = "" }, "spec.bgpInstances[0].name")
	add("instance name too long", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).Name = strings.Repeat("a", 256) }, "spec.bgpInstances[0].name")
	add("localASN 0", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).LocalASN = ptr.To[int64](0) }, "spec.bgpInstances[0].localASN")
	add("localASN above 32 bits", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).LocalASN = ptr.To[int64](4294967296) }, "spec.bgpInstances[0].localASN")
	add("localPort 0", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).LocalPort = ptr.To[int32](0) }, "spec.bgpInstances[0].localPort")
	add("localPort 65536", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).LocalPort = ptr.To[int32](65536) }, "spec.bgpInstances[0].localPort")
	add("duplicate peer name", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { inst(s).Peers[1].Name = inst(s).Peers[0].Name }, "spec.bgpInstances[0].peers[1]: Duplicate value")
	add("empty peer name", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).Name = "" }, "spec.bgpInstances[0].peers[0].name")
	add("peerASN negative", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerASN = ptr.To[int64](-1) }, "spec.bgpInstances[0].peers[0].peerASN")
	add("peerASN above 32 bits", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerASN = ptr.To[int64](4294967296) }, "spec.bgpInstances[0].peers[0].peerASN")
	add("peerAddress is a CIDR", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerAddress = ptr.To("fd00:10::1/128") },
		"spec.bgpInstances[].peers[].peerAddress must be an IPv4 or IPv6 address")
	add("peerAddress is a name", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerAddress = ptr.To("tor1") },
		"spec.bgpInstances[].peers[].peerAddress must be an IPv4 or IPv6 address")
	add("peerAddress and autoDiscovery", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).AutoDiscovery = defaultGateway("ipv4") },
		"spec.bgpInstances[].peers[]: set exactly one of peerAddress and autoDiscovery")
	add("neither peerAddress nor autoDiscovery", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerAddress = nil },
		"spec.bgpInstances[].peers[]: set exactly one of peerAddress and autoDiscovery")
	add("DefaultGateway without defaultGateway", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		p := peer(s)
		p.PeerAddress, p.AutoDiscovery = nil, &ciliumv2.BGPAutoDiscovery{Mode: "DefaultGateway"}
	}, "spec.bgpInstances[].peers[].autoDiscovery.defaultGateway (with addressFamily) is required when mode is DefaultGateway")
	add("DefaultGateway without addressFamily", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		p := peer(s)
		p.PeerAddress, p.AutoDiscovery = nil, defaultGateway("")
	}, "spec.bgpInstances[0].peers[0].autoDiscovery.defaultGateway.addressFamily")
	add("unknown addressFamily", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		p := peer(s)
		p.PeerAddress, p.AutoDiscovery = nil, defaultGateway("ipv5")
	}, "spec.bgpInstances[0].peers[0].autoDiscovery.defaultGateway.addressFamily")
	add("unknown auto-discovery mode", func(s *ciliumv2.CiliumBGPClusterConfigSpec) {
		p := peer(s)
		p.PeerAddress, p.AutoDiscovery = nil, &ciliumv2.BGPAutoDiscovery{Mode: "Unnumbered"}
	}, "spec.bgpInstances[0].peers[0].autoDiscovery.mode")
	add("peerConfigRef without name", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerConfigRef.Name = "" },
		"spec.bgpInstances[0].peers[0].peerConfigRef.name")
	add("peerConfigRef to another kind", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerConfigRef.Kind = "Secret" },
		"spec.bgpInstances[0].peers[0].peerConfigRef.kind")
	add("peerConfigRef to another group", func(s *ciliumv2.CiliumBGPClusterConfigSpec) { peer(s).PeerConfigRef.Group = "example.com" },
		"spec.bgpInstances[0].peers[0].peerConfigRef.group")
	runAdmission(t, cases)
}

// seedPeerConfig is the seed's full PeerConfig example.
func seedPeerConfig() ciliumv2.CiliumBGPPeerConfigSpec {
	return ciliumv2.CiliumBGPPeerConfigSpec{
		Transport:       &ciliumv2.CiliumBGPTransport{PeerPort: ptr.To[int32](179)},
		Timers:          &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](5), HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
		AuthSecretRef:   ptr.To("bgp-auth-secret"),
		EBGPMultihop:    ptr.To[int32](4),
		GracefulRestart: &ciliumv2.CiliumBGPNeighborGracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](15)},
		Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{
			CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"},
			Advertisements:  &metav1.LabelSelector{MatchLabels: map[string]string{"advertise": "bgp"}},
		}},
	}
}

func TestBGPPeerConfigAdmission(t *testing.T) {
	var cases []admissionCase
	add := func(name string, mutate func(*ciliumv2.CiliumBGPPeerConfigSpec), wantErr string) {
		spec := seedPeerConfig()
		mutate(&spec)
		cases = append(cases, admissionCase{name, &ciliumv2.CiliumBGPPeerConfig{ObjectMeta: meta("cbgppeer", len(cases)), Spec: spec}, wantErr})
	}
	add("seed example", func(*ciliumv2.CiliumBGPPeerConfigSpec) {}, "")
	add("empty spec", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { *s = ciliumv2.CiliumBGPPeerConfigSpec{} }, "")
	add("B14 peer port 1179", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Transport.PeerPort = ptr.To[int32](1179) }, "")
	add("B25 both unicast families", func(s *ciliumv2.CiliumBGPPeerConfigSpec) {
		s.Families = append(s.Families, ciliumv2.CiliumBGPFamilyWithAdverts{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv6", Safi: "unicast"}})
	}, "")
	add("B26 family without advertisements", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Families[0].Advertisements = nil }, "")
	add("GR with the longest restart time", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.GracefulRestart.RestartTimeSeconds = ptr.To[int32](4095) }, "")

	add("authSecretRef not a Secret name", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.AuthSecretRef = ptr.To("BGP_secret") }, "spec.authSecretRef must be a Secret name")
	add("connectRetry 0", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Timers.ConnectRetryTimeSeconds = ptr.To[int32](0) }, "spec.timers.connectRetryTimeSeconds")
	add("hold above 65535", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Timers.HoldTimeSeconds = ptr.To[int32](65536) }, "spec.timers.holdTimeSeconds")
	add("keepalive above 65535", func(s *ciliumv2.CiliumBGPPeerConfigSpec) {
		s.Timers.HoldTimeSeconds, s.Timers.KeepAliveTimeSeconds = ptr.To[int32](65535), ptr.To[int32](65536)
	}, "spec.timers.keepAliveTimeSeconds")
	add("ebgpMultihop 0", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.EBGPMultihop = ptr.To[int32](0) }, "spec.ebgpMultihop")
	add("ebgpMultihop 256", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.EBGPMultihop = ptr.To[int32](256) }, "spec.ebgpMultihop")
	add("restartTime 0", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.GracefulRestart.RestartTimeSeconds = ptr.To[int32](0) }, "spec.gracefulRestart.restartTimeSeconds")
	add("restartTime 4096", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.GracefulRestart.RestartTimeSeconds = ptr.To[int32](4096) }, "spec.gracefulRestart.restartTimeSeconds")
	add("peerPort 0", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Transport.PeerPort = ptr.To[int32](0) }, "spec.transport.peerPort")
	add("peerPort 65536", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Transport.PeerPort = ptr.To[int32](65536) }, "spec.transport.peerPort")
	add("unsupported afi", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Families[0].Afi = "l2vpn" }, "spec.families[0].afi")
	add("unsupported safi", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Families[0].Safi = "multicast" }, "spec.families[0].safi")
	add("duplicate family", func(s *ciliumv2.CiliumBGPPeerConfigSpec) { s.Families = append(s.Families, s.Families[0]) }, "spec.families[1]: Duplicate value")
	runAdmission(t, cases)
}

// B18: the API server refuses a hold time under 3, a keepalive under 1 and
// a keepalive longer than the hold time, also against the default hold time.
func TestB18_TimerValidation(t *testing.T) {
	timers := func(hold, keepalive *int32) ciliumv2.CiliumBGPPeerConfigSpec {
		return ciliumv2.CiliumBGPPeerConfigSpec{Timers: &ciliumv2.CiliumBGPTimers{HoldTimeSeconds: hold, KeepAliveTimeSeconds: keepalive}}
	}
	var cases []admissionCase
	add := func(name string, spec ciliumv2.CiliumBGPPeerConfigSpec, wantErr string) {
		cases = append(cases, admissionCase{name, &ciliumv2.CiliumBGPPeerConfig{ObjectMeta: meta("b18", len(cases)), Spec: spec}, wantErr})
	}
	add("minimum 3/1", timers(ptr.To[int32](3), ptr.To[int32](1)), "")
	add("B15 9/3", timers(ptr.To[int32](9), ptr.To[int32](3)), "")
	add("keepalive equal to hold", timers(ptr.To[int32](9), ptr.To[int32](9)), "")
	add("hold 2", timers(ptr.To[int32](2), ptr.To[int32](1)), "spec.timers.holdTimeSeconds")
	add("keepalive 0", timers(ptr.To[int32](9), ptr.To[int32](0)), "spec.timers.keepAliveTimeSeconds")
	add("keepalive above hold", timers(ptr.To[int32](9), ptr.To[int32](10)), "spec.timers.keepAliveTimeSeconds must not exceed spec.timers.holdTimeSeconds")
	add("keepalive above default hold", timers(nil, ptr.To[int32](100)), "spec.timers.keepAliveTimeSeconds must not exceed spec.timers.holdTimeSeconds")
	add("hold below default keepalive", timers(ptr.To[int32](10), nil), "spec.timers.keepAliveTimeSeconds must not exceed spec.timers.holdTimeSeconds")
	runAdmission(t, cases)
}

// B16, B14, B19, B22, B10: what the user leaves out, the API server fills in
// with the documented defaults, so that controllers and `kubectl get` see
// the values in effect.
func TestB10_B14_B16_B19_B22_SessionDefaults(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()

	pc := &ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "b16-defaults"}}
	pc.Spec.GracefulRestart = &ciliumv2.CiliumBGPNeighborGracefulRestart{Enabled: true}
	if err := env.Client.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, pc) }()
	var got ciliumv2.CiliumBGPPeerConfig
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	for _, c := range []struct {
		field string
		got   *int32
		want  int32
	}{
		{"transport.peerPort (B14)", ptrOrNil(s.Transport, func(t *ciliumv2.CiliumBGPTransport) *int32 { return t.PeerPort }), 179},
		{"timers.connectRetryTimeSeconds", ptrOrNil(s.Timers, func(t *ciliumv2.CiliumBGPTimers) *int32 { return t.ConnectRetryTimeSeconds }), 120},
		{"timers.holdTimeSeconds", ptrOrNil(s.Timers, func(t *ciliumv2.CiliumBGPTimers) *int32 { return t.HoldTimeSeconds }), 90},
		{"timers.keepAliveTimeSeconds", ptrOrNil(s.Timers, func(t *ciliumv2.CiliumBGPTimers) *int32 { return t.KeepAliveTimeSeconds }), 30},
		{"ebgpMultihop (B19)", s.EBGPMultihop, 1},
		{"gracefulRestart.restartTimeSeconds (B22)", s.GracefulRestart.RestartTimeSeconds, 120},
	} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("spec.%s = %v, want %d", c.field, c.got, c.want)
		}
	}
	if len(s.Families) != 0 {
		t.Errorf("spec.families = %v, want none (meaning IPv4 and IPv6 unicast, B24)", s.Families)
	}

	// B10: a peer without peerASN gets 0 (accept any AS); a peerConfigRef
	// gets the only group and kind it may have.
	cc := &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "b10-defaults"}, Spec: seedClusterConfig()}
	cc.Spec.BGPInstances[0].Peers[0].PeerASN = nil
	if err := env.Client.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, cc) }()
	var gotCC ciliumv2.CiliumBGPClusterConfig
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cc), &gotCC); err != nil {
		t.Fatal(err)
	}
	p := gotCC.Spec.BGPInstances[0].Peers[0]
	if p.PeerASN == nil || *p.PeerASN != 0 {
		t.Errorf("peerASN = %v, want 0", p.PeerASN)
	}
	if ref := p.PeerConfigRef; ref.Group != "cilium.io" || ref.Kind != "CiliumBGPPeerConfig" {
		t.Errorf("peerConfigRef = %+v, want group cilium.io and kind CiliumBGPPeerConfig", *ref)
	}
}

func ptrOrNil[T any](parent *T, field func(*T) *int32) *int32 {
	if parent == nil {
		return nil
	}
	return field(parent)
}

// seedAdvertisement holds the seed's advertisements: PodCIDR with a
// community and local preference, LoadBalancer IPs of every Service (the
// NotIn idiom) with communities of all three kinds, the blue pod pool, and
// aggregated Service addresses.
func seedAdvertisement() ciliumv2.CiliumBGPAdvertisementSpec {
	selectAll := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "somekey", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"never-used-value"}}}}
	return ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{
		{
			AdvertisementType: ciliumv2.BGPPodCIDRAdvert,
			Attributes: &ciliumv2.BGPAttributes{
				Communities:     &ciliumv2.BGPCommunities{Standard: []ciliumv2.BGPStandardCommunity{"65000:99"}},
				LocalPreference: ptr.To[int64](99),
			},
		},
		{
			AdvertisementType: ciliumv2.BGPServiceAdvert,
			Service:           &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPLoadBalancerIPAddr}},
			Selector:          selectAll,
			Attributes: &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{
				Standard:  []ciliumv2.BGPStandardCommunity{"64512:100", "4294967295", "0:0", "65535:65535"},
				WellKnown: []ciliumv2.BGPWellKnownCommunity{"no-export", "route-filter-translated-v4", "route-filter-translated-v6"},
				Large:     []ciliumv2.BGPLargeCommunity{"64512:100:50", "4294967295:0:4294967295"},
			}},
		},
		{
			AdvertisementType: ciliumv2.BGPCiliumPodIPPoolAdvert,
			Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"io.cilium.podippool.name": "blue"}},
		},
		{
			AdvertisementType: ciliumv2.BGPServiceAdvert,
			Service: &ciliumv2.BGPServiceOptions{
				Addresses:             []ciliumv2.BGPServiceAddressType{ciliumv2.BGPLoadBalancerIPAddr, ciliumv2.BGPClusterIPAddr, ciliumv2.BGPExternalIPAddr},
				AggregationLengthIPv4: ptr.To[int32](24),
				AggregationLengthIPv6: ptr.To[int32](120),
			},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"io.kubernetes.service.namespace": "tenant-a"}},
		},
	}}
}

func TestBGPAdvertisementAdmission(t *testing.T) {
	var cases []admissionCase
	add := func(name string, mutate func(*ciliumv2.CiliumBGPAdvertisementSpec), wantErr string) {
		spec := seedAdvertisement()
		mutate(&spec)
		m := meta("cbgpadvert", len(cases))
		m.Labels = map[string]string{"advertise": "bgp"}
		cases = append(cases, admissionCase{name, &ciliumv2.CiliumBGPAdvertisement{ObjectMeta: m, Spec: spec}, wantErr})
	}
	pod := func(s *ciliumv2.CiliumBGPAdvertisementSpec) *ciliumv2.BGPAdvertisement { return &s.Advertisements[0] }
	svc := func(s *ciliumv2.CiliumBGPAdvertisementSpec) *ciliumv2.BGPAdvertisement { return &s.Advertisements[1] }
	comm := func(s *ciliumv2.CiliumBGPAdvertisementSpec) *ciliumv2.BGPCommunities {
		return svc(s).Attributes.Communities
	}

	add("seed examples", func(*ciliumv2.CiliumBGPAdvertisementSpec) {}, "")
	add("Service without selector (advertises nothing)", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { svc(s).Selector = nil }, "")

	add("no advertisements", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { s.Advertisements = nil }, "spec.advertisements")
	add("unknown type", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { pod(s).AdvertisementType = "NodeIP" }, "spec.advertisements[0].advertisementType")
	add("Service without service", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { svc(s).Service = nil },
		"spec.advertisements[].service (with addresses) is required when advertisementType is Service")
	add("service without addresses", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { svc(s).Service.Addresses = nil }, "spec.advertisements[1].service.addresses")
	add("unknown service address", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		svc(s).Service.Addresses = []ciliumv2.BGPServiceAddressType{"NodeIP"}
	}, "spec.advertisements[1].service.addresses[0]")
	add("duplicate service address", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		svc(s).Service.Addresses = []ciliumv2.BGPServiceAddressType{"ClusterIP", "ClusterIP"}
	}, "spec.advertisements[1].service.addresses[1]: Duplicate value")
	add("service on PodCIDR", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { pod(s).Service = svc(s).Service },
		"spec.advertisements[].service is only for advertisementType Service")
	add("selector on PodCIDR", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { pod(s).Selector = &metav1.LabelSelector{} },
		"spec.advertisements[].selector does not apply to advertisementType PodCIDR")
	iface := func(s *ciliumv2.CiliumBGPAdvertisementSpec) *ciliumv2.BGPAdvertisement {
		s.Advertisements = append(s.Advertisements, ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPInterfaceAdvert,
			Interface: &ciliumv2.BGPInterfaceOptions{Name: "lo"}})
		return &s.Advertisements[len(s.Advertisements)-1]
	}
	add("Interface (Cilium 1.19)", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { iface(s) }, "")
	add("Interface without interface", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { iface(s).Interface = nil },
		"spec.advertisements[].interface (with name) is required when advertisementType is Interface")
	add("interface on PodCIDR", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		pod(s).Interface = &ciliumv2.BGPInterfaceOptions{Name: "lo"}
	},
		"spec.advertisements[].interface is only for advertisementType Interface")
	add("interface name too long", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { iface(s).Interface.Name = "a-very-long-interface" },
		"spec.advertisements[4].interface.name")
	add("aggregationLengthIPv4 32", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		s.Advertisements[3].Service.AggregationLengthIPv4 = ptr.To[int32](32)
	},
		"spec.advertisements[3].service.aggregationLengthIPv4")
	add("aggregationLengthIPv6 128", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		s.Advertisements[3].Service.AggregationLengthIPv6 = ptr.To[int32](128)
	},
		"spec.advertisements[3].service.aggregationLengthIPv6")
	add("localPreference negative", func(s *ciliumv2.CiliumBGPAdvertisementSpec) { pod(s).Attributes.LocalPreference = ptr.To[int64](-1) },
		"spec.advertisements[0].attributes.localPreference")
	add("localPreference above 32 bits", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		pod(s).Attributes.LocalPreference = ptr.To[int64](4294967296)
	},
		"spec.advertisements[0].attributes.localPreference")
	add("unknown well-known community", func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
		comm(s).WellKnown = []ciliumv2.BGPWellKnownCommunity{"no-such"}
	},
		"spec.advertisements[1].attributes.communities.wellKnown[0]")
	for _, bad := range []string{"65536:1", "1:65536", "4294967296", "64512:", ":100", "064512:100", "no-export", "1:2:3", "-1"} {
		add("standard community "+bad, func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
			comm(s).Standard = []ciliumv2.BGPStandardCommunity{ciliumv2.BGPStandardCommunity(bad)}
		},
			"spec.advertisements[].attributes.communities.standard[] must be a 32-bit number or two 16-bit numbers")
	}
	for _, bad := range []string{"64512:100", "4294967296:1:1", "1:1:4294967296", "1:01:1", "a:b:c", "1:2:3:4"} {
		add("large community "+bad, func(s *ciliumv2.CiliumBGPAdvertisementSpec) {
			comm(s).Large = []ciliumv2.BGPLargeCommunity{ciliumv2.BGPLargeCommunity(bad)}
		},
			"spec.advertisements[].attributes.communities.large[] must be three 32-bit numbers")
	}
	runAdmission(t, cases)
}

// seedOverride is the seed's override for one node of a multi-homed setup.
func seedOverride() ciliumv2.CiliumBGPNodeConfigOverrideSpec {
	return ciliumv2.CiliumBGPNodeConfigOverrideSpec{BGPInstances: []ciliumv2.CiliumBGPNodeConfigInstanceOverride{{
		Name:      "instance-65000",
		RouterID:  ptr.To("192.168.10.1"),
		LocalPort: ptr.To[int32](1790),
		LocalASN:  ptr.To[int64](65010),
		Peers: []ciliumv2.CiliumBGPNodeConfigPeerOverride{
			{Name: "peer-65000-tor1", LocalAddress: ptr.To("fd00:10:0:2::2")},
			{Name: "peer-65000-tor2", LocalAddress: ptr.To("fd00:11:0:2::2")},
		},
	}}}
}

// B48, B49, B50, B13: the override fields are admitted with good values and
// refused with bad ones.
func TestB13_B48_B49_B50_NodeConfigOverrideAdmission(t *testing.T) {
	var cases []admissionCase
	add := func(name string, mutate func(*ciliumv2.CiliumBGPNodeConfigOverrideSpec), wantErr string) {
		spec := seedOverride()
		mutate(&spec)
		cases = append(cases, admissionCase{name, &ciliumv2.CiliumBGPNodeConfigOverride{ObjectMeta: meta("cbgpnodeoverride", len(cases)), Spec: spec}, wantErr})
	}
	inst := func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) *ciliumv2.CiliumBGPNodeConfigInstanceOverride {
		return &s.BGPInstances[0]
	}
	add("seed example", func(*ciliumv2.CiliumBGPNodeConfigOverrideSpec) {}, "")
	add("deprecated peer localPort is kept", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { inst(s).Peers[0].LocalPort = ptr.To[int32](0) }, "")

	add("no instances", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { s.BGPInstances = nil }, "spec.bgpInstances")
	add("duplicate instance", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) {
		s.BGPInstances = append(s.BGPInstances, s.BGPInstances[0])
	},
		"spec.bgpInstances[1]: Duplicate value")
	add("B48 routerID IPv6", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { inst(s).RouterID = ptr.To("fd00::1") },
		"spec.bgpInstances[].routerID must be an IPv4 address")
	add("B48 routerID CIDR", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { inst(s).RouterID = ptr.To("192.168.10.1/32") },
		"spec.bgpInstances[].routerID must be an IPv4 address")
	add("B49 localASN 0", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { inst(s).LocalASN = ptr.To[int64](0) }, "spec.bgpInstances[0].localASN")
	add("B13 localPort 0", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { inst(s).LocalPort = ptr.To[int32](0) }, "spec.bgpInstances[0].localPort")
	add("B50 localAddress not an IP", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) {
		inst(s).Peers[0].LocalAddress = ptr.To("fd00:10:0:2::2/64")
	},
		"spec.bgpInstances[].peers[].localAddress must be an IPv4 or IPv6 address")
	add("duplicate peer", func(s *ciliumv2.CiliumBGPNodeConfigOverrideSpec) { inst(s).Peers[1].Name = inst(s).Peers[0].Name },
		"spec.bgpInstances[0].peers[1]: Duplicate value")
	runAdmission(t, cases)
}

// seedNodeConfig is what the controller writes for the seed's cluster
// config merged with the seed's override.
func seedNodeConfig() ciliumv2.CiliumBGPNodeSpec {
	peer := func(name, addr, local string) ciliumv2.CiliumBGPNodePeer {
		return ciliumv2.CiliumBGPNodePeer{
			Name: name, PeerAddress: ptr.To(addr), PeerASN: ptr.To[int64](65000), LocalAddress: ptr.To(local),
			PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "cilium-peer"},
		}
	}
	return ciliumv2.CiliumBGPNodeSpec{BGPInstances: []ciliumv2.CiliumBGPNodeInstance{{
		Name:      "instance-65000",
		LocalASN:  ptr.To[int64](65010),
		RouterID:  ptr.To("192.168.10.1"),
		LocalPort: ptr.To[int32](1790),
		Peers: []ciliumv2.CiliumBGPNodePeer{
			peer("peer-65000-tor1", "fd00:10:0:0::1", "fd00:10:0:2::2"),
			peer("peer-65000-tor2", "fd00:11:0:0::1", "fd00:11:0:2::2"),
		},
	}}}
}

func TestBGPNodeConfigAdmission(t *testing.T) {
	var cases []admissionCase
	add := func(name string, mutate func(*ciliumv2.CiliumBGPNodeSpec), wantErr string) {
		spec := seedNodeConfig()
		mutate(&spec)
		cases = append(cases, admissionCase{name, &ciliumv2.CiliumBGPNodeConfig{ObjectMeta: meta("cbgpnode", len(cases)), Spec: spec}, wantErr})
	}
	peer := func(s *ciliumv2.CiliumBGPNodeSpec) *ciliumv2.CiliumBGPNodePeer { return &s.BGPInstances[0].Peers[0] }
	add("merged seed example", func(*ciliumv2.CiliumBGPNodeSpec) {}, "")
	add("auto-discovered peer", func(s *ciliumv2.CiliumBGPNodeSpec) {
		p := peer(s)
		p.PeerAddress, p.LocalAddress, p.AutoDiscovery = nil, nil, defaultGateway("ipv4")
	}, "")

	add("no instances", func(s *ciliumv2.CiliumBGPNodeSpec) { s.BGPInstances = nil }, "spec.bgpInstances")
	add("routerID IPv6", func(s *ciliumv2.CiliumBGPNodeSpec) { s.BGPInstances[0].RouterID = ptr.To("fd00::1") }, "spec.bgpInstances[].routerID must be an IPv4 address")
	add("localASN 0", func(s *ciliumv2.CiliumBGPNodeSpec) { s.BGPInstances[0].LocalASN = ptr.To[int64](0) }, "spec.bgpInstances[0].localASN")
	add("peer without address", func(s *ciliumv2.CiliumBGPNodeSpec) { peer(s).PeerAddress = nil },
		"spec.bgpInstances[].peers[]: set exactly one of peerAddress and autoDiscovery")
	add("peerAddress CIDR", func(s *ciliumv2.CiliumBGPNodeSpec) { peer(s).PeerAddress = ptr.To("10.0.0.1/32") },
		"spec.bgpInstances[].peers[].peerAddress must be an IPv4 or IPv6 address")
	add("localAddress not an IP", func(s *ciliumv2.CiliumBGPNodeSpec) { peer(s).LocalAddress = ptr.To("eth0") },
		"spec.bgpInstances[].peers[].localAddress must be an IPv4 or IPv6 address")
	runAdmission(t, cases)
}

// B64, B15: the node's report (session state, time established, applied
// timers, route counts per family, last error) is stored through the status
// subresource, and bad values are refused.
func TestB15_B64_NodeConfigStatus(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	nc := &ciliumv2.CiliumBGPNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "b64-node"}, Spec: seedNodeConfig()}
	if err := env.Client.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, nc) }()

	established := metav1.NewTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	count := func(afi string, received, advertised int32) ciliumv2.BGPFamilyRouteCount {
		return ciliumv2.BGPFamilyRouteCount{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: afi, Safi: "unicast"}, Received: received, Advertised: advertised}
	}
	nc.Status = ciliumv2.CiliumBGPNodeStatus{
		ObservedGeneration: nc.Generation,
		PeersTotal:         2,
		PeersEstablished:   1,
		BGPInstances: []ciliumv2.CiliumBGPNodeInstanceStatus{{
			Name: "instance-65000", LocalASN: ptr.To[int64](65010), RouterID: "192.168.10.1",
			Peers: []ciliumv2.CiliumBGPNodePeerStatus{
				{
					Name: "peer-65000-tor1", PeerAddress: "fd00:10::1", PeerASN: ptr.To[int64](65000),
					PeeringState:    ciliumv2.BGPPeeringStateEstablished,
					EstablishedTime: &established,
					Timers:          &ciliumv2.CiliumBGPTimersState{AppliedHoldTimeSeconds: ptr.To[int32](9), AppliedKeepaliveSeconds: ptr.To[int32](3)},
					RouteCount:      []ciliumv2.BGPFamilyRouteCount{count("ipv4", 2, 2), count("ipv6", 0, 2)},
				},
				{
					Name: "peer-65000-tor2", PeerAddress: "fd00:11::1", PeeringState: ciliumv2.BGPPeeringStateActive,
					LastError: "sent notification: as number mismatch expected 65003, received 65000",
				},
			},
		}},
		Conditions: []metav1.Condition{
			{Type: ciliumv2.BGPNodeConditionReconcileError, Status: metav1.ConditionFalse, Reason: "Reconciled", LastTransitionTime: established},
			{Type: ciliumv2.BGPNodeConditionReady, Status: metav1.ConditionFalse, Reason: "PeersDown", Message: "1 of 2 peers established", LastTransitionTime: established},
		},
	}
	if err := env.Client.Status().Update(ctx, nc); err != nil {
		t.Fatalf("status refused: %v", err)
	}
	var got ciliumv2.CiliumBGPNodeConfig
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(nc), &got); err != nil {
		t.Fatal(err)
	}
	p := got.Status.BGPInstances[0].Peers[0]
	if p.PeeringState != "established" || p.EstablishedTime == nil || !p.EstablishedTime.Equal(&established) ||
		*p.Timers.AppliedHoldTimeSeconds != 9 || len(p.RouteCount) != 2 || p.RouteCount[1].Received != 0 || p.RouteCount[1].Advertised != 2 {
		t.Fatalf("peer status not kept: %+v", p)
	}
	if got.Status.BGPInstances[0].Peers[1].LastError == "" || got.Status.PeersEstablished != 1 || got.Status.PeersTotal != 2 {
		t.Fatalf("status not kept: %+v", got.Status)
	}

	for _, bad := range []struct {
		name    string
		mutate  func(*ciliumv2.CiliumBGPNodeStatus)
		wantErr string
	}{
		{"unknown session state", func(s *ciliumv2.CiliumBGPNodeStatus) { s.BGPInstances[0].Peers[0].PeeringState = "up" }, "status.bgpInstances[0].peers[0].peeringState"},
		{"unsupported family", func(s *ciliumv2.CiliumBGPNodeStatus) { s.BGPInstances[0].Peers[0].RouteCount[0].Afi = "l2vpn" }, "status.bgpInstances[0].peers[0].routeCount[0].afi"},
		{"duplicate family count", func(s *ciliumv2.CiliumBGPNodeStatus) {
			rc := &s.BGPInstances[0].Peers[0].RouteCount
			*rc = append(*rc, (*rc)[0])
		}, "status.bgpInstances[0].peers[0].routeCount[2]: Duplicate value"},
		{"duplicate condition", func(s *ciliumv2.CiliumBGPNodeStatus) { s.Conditions = append(s.Conditions, s.Conditions[0]) }, "status.conditions[2]: Duplicate value"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			obj := got.DeepCopy()
			bad.mutate(&obj.Status)
			err := env.Client.Status().Update(ctx, obj)
			if err == nil || !strings.Contains(err.Error(), bad.wantErr) {
				t.Fatalf("err = %v, want one with %q", err, bad.wantErr)
			}
		})
	}
}

// All BGP kinds are cluster-scoped, carry the seed's short names, and are
// listed by `kubectl get ciliumbgp`.
func TestBGPKindsDiscovery(t *testing.T) {
	testenv.Require(t, env)
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion("cilium.io/v2")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ciliumbgpclusterconfigs":      "cbgpcluster",
		"ciliumbgppeerconfigs":         "cbgppeer",
		"ciliumbgpadvertisements":      "cbgpadvert",
		"ciliumbgpnodeconfigoverrides": "cbgpnodeoverride",
		"ciliumbgpnodeconfigs":         "cbgpnode",
	}
	for _, r := range list.APIResources {
		short, ok := want[r.Name]
		if !ok {
			continue
		}
		delete(want, r.Name)
		if r.Namespaced || !slices.Contains(r.ShortNames, short) || !slices.Contains(r.Categories, "ciliumbgp") {
			t.Errorf("%s: namespaced=%v shortNames=%v categories=%v; want cluster-scoped, %s, ciliumbgp", r.Name, r.Namespaced, r.ShortNames, r.Categories, short)
		}
	}
	for r := range want {
		t.Errorf("%s is not served", r)
	}
}
