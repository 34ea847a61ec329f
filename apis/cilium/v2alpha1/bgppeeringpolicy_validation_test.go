package v2alpha1_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// seedPolicy is the study module's rack-1-bgp policy with the seed's path
// attributes: community 64512:100 on Service routes from selected LB pools,
// and local preference 150 plus community 64512:150 on pod CIDR routes.
func seedPolicy() ciliumv2alpha1.CiliumBGPPeeringPolicySpec {
	return ciliumv2alpha1.CiliumBGPPeeringPolicySpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "rack-1"}},
		VirtualRouters: []ciliumv2alpha1.CiliumBGPVirtualRouter{{
			LocalASN:      65001,
			ExportPodCIDR: ptr.To(true),
			ServiceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "service.cilium.io/bgp-announce", Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}},
			}},
			Neighbors: []ciliumv2alpha1.CiliumBGPNeighbor{{
				PeerAddress: "10.0.0.1/32",
				PeerASN:     65000,
				AdvertisedPathAttributes: []ciliumv2alpha1.CiliumBGPPathAttributes{
					{
						SelectorType: "CiliumLoadBalancerIPPool",
						Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"environment": "production"}},
						Communities:  &ciliumv2alpha1.BGPCommunities{Standard: []ciliumv2alpha1.BGPStandardCommunity{"64512:100"}},
					},
					{
						SelectorType:    "PodCIDR",
						LocalPreference: ptr.To[int64](150),
						Communities:     &ciliumv2alpha1.BGPCommunities{Standard: []ciliumv2alpha1.BGPStandardCommunity{"64512:150"}},
					},
				},
			}},
		}},
	}
}

// labPolicy is the study module's lab-bgp policy.
func labPolicy() ciliumv2alpha1.CiliumBGPPeeringPolicySpec {
	return ciliumv2alpha1.CiliumBGPPeeringPolicySpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/os": "linux"}},
		VirtualRouters: []ciliumv2alpha1.CiliumBGPVirtualRouter{{
			LocalASN:  65001,
			Neighbors: []ciliumv2alpha1.CiliumBGPNeighbor{{PeerAddress: "172.18.0.100/32", PeerASN: 65000}},
		}},
	}
}

// The API server admits the seed's policies and refuses each bad value with
// an error naming the field.
func TestBGPPeeringPolicyAdmission(t *testing.T) {
	testenv.Require(t, env)
	vr := func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) *ciliumv2alpha1.CiliumBGPVirtualRouter {
		return &s.VirtualRouters[0]
	}
	nb := func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) *ciliumv2alpha1.CiliumBGPNeighbor {
		return &s.VirtualRouters[0].Neighbors[0]
	}
	attrs := func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) *ciliumv2alpha1.CiliumBGPPathAttributes {
		return &s.VirtualRouters[0].Neighbors[0].AdvertisedPathAttributes[0]
	}
	type tcase struct {
		name    string
		spec    func() ciliumv2alpha1.CiliumBGPPeeringPolicySpec
		mutate  func(*ciliumv2alpha1.CiliumBGPPeeringPolicySpec)
		wantErr string
	}
	same := func(*ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {}
	cases := []tcase{
		{"seed rack-1-bgp", seedPolicy, same, ""},
		{"seed lab-bgp", labPolicy, same, ""},
		{"every option", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			v := vr(s)
			v.PodIPPoolSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"io.cilium.podippool.name": "blue"}}
			v.ServiceAdvertisements = []ciliumv2alpha1.BGPServiceAddressType{"LoadBalancerIP", "ClusterIP", "ExternalIP"}
			n := nb(s)
			n.PeerPort, n.EBGPMultihopTTL, n.AuthSecretRef = ptr.To[int32](1179), ptr.To[int32](4), ptr.To("bgp-auth-secret")
			n.ConnectRetryTimeSeconds, n.HoldTimeSeconds, n.KeepAliveTimeSeconds = ptr.To[int32](5), ptr.To[int32](9), ptr.To[int32](3)
			n.GracefulRestart = &ciliumv2alpha1.CiliumBGPNeighborGracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](15)}
			n.Families = []ciliumv2alpha1.CiliumBGPFamily{{Afi: "ipv4", Safi: "unicast"}, {Afi: "ipv6", Safi: "unicast"}}
			a := attrs(s)
			a.Communities.WellKnown = []ciliumv2alpha1.BGPWellKnownCommunity{"no-export", "blackhole"}
			a.Communities.Large = []ciliumv2alpha1.BGPLargeCommunity{"64512:100:50"}
			n.AdvertisedPathAttributes = append(n.AdvertisedPathAttributes, ciliumv2alpha1.CiliumBGPPathAttributes{SelectorType: "CiliumPodIPPool"})
			s.VirtualRouters = append(s.VirtualRouters, ciliumv2alpha1.CiliumBGPVirtualRouter{
				LocalASN: 4294967295, Neighbors: []ciliumv2alpha1.CiliumBGPNeighbor{{PeerAddress: "fd00:10::1/128", PeerASN: 0}},
			})
		}, ""},

		{"no virtual routers", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { s.VirtualRouters = nil }, "spec.virtualRouters"},
		{"duplicate localASN", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			s.VirtualRouters = append(s.VirtualRouters, s.VirtualRouters[0])
		},
			"spec.virtualRouters[1]: Duplicate value"},
		{"localASN negative", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { vr(s).LocalASN = -1 }, "spec.virtualRouters[0].localASN"},
		{"localASN above 32 bits", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { vr(s).LocalASN = 4294967296 }, "spec.virtualRouters[0].localASN"},
		{"unknown service address", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			vr(s).ServiceAdvertisements = []ciliumv2alpha1.BGPServiceAddressType{"NodeIP"}
		}, "spec.virtualRouters[0].serviceAdvertisements[0]"},
		{"no neighbors", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { vr(s).Neighbors = nil }, "spec.virtualRouters[0].neighbors"},
		{"duplicate neighbor", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			vr(s).Neighbors = append(vr(s).Neighbors, vr(s).Neighbors[0])
		},
			"spec.virtualRouters[0].neighbors[1]: Duplicate value"},
		{"peerASN above 32 bits", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).PeerASN = 4294967296 }, "spec.virtualRouters[0].neighbors[0].peerASN"},
		{"peerPort 0", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).PeerPort = ptr.To[int32](0) }, "spec.virtualRouters[0].neighbors[0].peerPort"},
		{"peerPort 65536", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).PeerPort = ptr.To[int32](65536) }, "spec.virtualRouters[0].neighbors[0].peerPort"},
		{"eBGPMultihopTTL 0", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).EBGPMultihopTTL = ptr.To[int32](0) },
			"spec.virtualRouters[0].neighbors[0].eBGPMultihopTTL"},
		{"authSecretRef not a Secret name", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).AuthSecretRef = ptr.To("Secret!") },
			"spec.virtualRouters[].neighbors[].authSecretRef must be a Secret name"},
		{"B18 hold 2", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			nb(s).HoldTimeSeconds, nb(s).KeepAliveTimeSeconds = ptr.To[int32](2), ptr.To[int32](1)
		}, "spec.virtualRouters[0].neighbors[0].holdTimeSeconds"},
		{"B18 keepalive 0", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).KeepAliveTimeSeconds = ptr.To[int32](0) },
			"spec.virtualRouters[0].neighbors[0].keepAliveTimeSeconds"},
		{"B18 keepalive above hold", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			nb(s).HoldTimeSeconds, nb(s).KeepAliveTimeSeconds = ptr.To[int32](9), ptr.To[int32](10)
		}, "spec.virtualRouters[].neighbors[].keepAliveTimeSeconds must not exceed holdTimeSeconds"},
		{"B18 keepalive above default hold", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).KeepAliveTimeSeconds = ptr.To[int32](91) },
			"spec.virtualRouters[].neighbors[].keepAliveTimeSeconds must not exceed holdTimeSeconds"},
		{"connectRetry 0", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { nb(s).ConnectRetryTimeSeconds = ptr.To[int32](0) },
			"spec.virtualRouters[0].neighbors[0].connectRetryTimeSeconds"},
		{"restartTime 4096", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			nb(s).GracefulRestart = &ciliumv2alpha1.CiliumBGPNeighborGracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](4096)}
		}, "spec.virtualRouters[0].neighbors[0].gracefulRestart.restartTimeSeconds"},
		{"unsupported family", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			nb(s).Families = []ciliumv2alpha1.CiliumBGPFamily{{Afi: "l2vpn", Safi: "evpn"}}
		}, "spec.virtualRouters[0].neighbors[0].families[0].afi"},
		{"duplicate family", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			nb(s).Families = []ciliumv2alpha1.CiliumBGPFamily{{Afi: "ipv4", Safi: "unicast"}, {Afi: "ipv4", Safi: "unicast"}}
		}, "spec.virtualRouters[0].neighbors[0].families[1]: Duplicate value"},
		{"unknown selectorType", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { attrs(s).SelectorType = "Service" },
			"spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].selectorType"},
		{"localPreference negative", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) { attrs(s).LocalPreference = ptr.To[int64](-1) },
			"spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].localPreference"},
		{"bad standard community", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			attrs(s).Communities.Standard = []ciliumv2alpha1.BGPStandardCommunity{"65536:100"}
		}, "communities.standard[] must be a 32-bit number or two 16-bit numbers"},
		{"bad large community", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			attrs(s).Communities.Large = []ciliumv2alpha1.BGPLargeCommunity{"64512:100"}
		}, "communities.large[] must be three 32-bit numbers"},
		{"bad well-known community", seedPolicy, func(s *ciliumv2alpha1.CiliumBGPPeeringPolicySpec) {
			attrs(s).Communities.WellKnown = []ciliumv2alpha1.BGPWellKnownCommunity{"no-exports"}
		}, "spec.virtualRouters[0].neighbors[0].advertisedPathAttributes[0].communities.wellKnown[0]"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec()
			tc.mutate(&spec)
			p := &ciliumv2alpha1.CiliumBGPPeeringPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bgpp-%d", i)}, Spec: spec}
			expectAdmission(t, p, tc.wantErr)
		})
	}
}

// B59: a legacy neighbor address is a host prefix; a bare address or a
// shorter prefix is refused.
func TestB59_LegacyPeerAddressIsHostPrefix(t *testing.T) {
	testenv.Require(t, env)
	const msg = "spec.virtualRouters[].neighbors[].peerAddress must be a host prefix"
	for i, tc := range []struct{ addr, wantErr string }{
		{"10.0.0.1/32", ""},
		{"fd00:10::1/128", ""},
		{"10.0.0.1", msg},
		{"10.0.0.0/24", msg},
		{"fd00:10::1/64", msg},
		{"router1", msg},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			spec := labPolicy()
			spec.VirtualRouters[0].Neighbors[0].PeerAddress = tc.addr
			p := &ciliumv2alpha1.CiliumBGPPeeringPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("b59-%d", i)}, Spec: spec}
			expectAdmission(t, p, tc.wantErr)
		})
	}
}

// B58, B57 and the neighbor defaults: what the user leaves out is filled in
// with the documented defaults.
func TestB57_B58_LegacyDefaults(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	spec := labPolicy()
	spec.VirtualRouters[0].Neighbors[0].GracefulRestart = &ciliumv2alpha1.CiliumBGPNeighborGracefulRestart{Enabled: true}
	p := &ciliumv2alpha1.CiliumBGPPeeringPolicy{ObjectMeta: metav1.ObjectMeta{Name: "b58-defaults"}, Spec: spec}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, p) }()
	var got ciliumv2alpha1.CiliumBGPPeeringPolicy
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
		t.Fatal(err)
	}
	vr := got.Spec.VirtualRouters[0]
	if !slices.Equal(vr.ServiceAdvertisements, []ciliumv2alpha1.BGPServiceAddressType{"LoadBalancerIP"}) {
		t.Errorf("serviceAdvertisements = %v, want [LoadBalancerIP] (B58)", vr.ServiceAdvertisements)
	}
	if vr.ExportPodCIDR == nil || *vr.ExportPodCIDR {
		t.Errorf("exportPodCIDR = %v, want false (B57)", vr.ExportPodCIDR)
	}
	n := vr.Neighbors[0]
	for _, c := range []struct {
		field string
		got   *int32
		want  int32
	}{
		{"peerPort", n.PeerPort, 179},
		{"eBGPMultihopTTL", n.EBGPMultihopTTL, 1},
		{"connectRetryTimeSeconds", n.ConnectRetryTimeSeconds, 120},
		{"holdTimeSeconds", n.HoldTimeSeconds, 90},
		{"keepAliveTimeSeconds", n.KeepAliveTimeSeconds, 30},
		{"gracefulRestart.restartTimeSeconds", n.GracefulRestart.RestartTimeSeconds, 120},
	} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("neighbors[0].%s = %v, want %d", c.field, c.got, c.want)
		}
	}
}

func expectAdmission(t *testing.T, obj client.Object, wantErr string) {
	t.Helper()
	ctx := context.Background()
	err := env.Client.Create(ctx, obj)
	if err != nil {
		t.Log(err)
	} else {
		_ = env.Client.Delete(ctx, obj)
	}
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case wantErr != "" && err == nil:
		t.Fatalf("admitted; want an error with %q", wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Fatalf("error %q lacks %q", err, wantErr)
	}
}
