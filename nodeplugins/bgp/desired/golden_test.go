package desired

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// richInput exercises most of the package at once: two instances, peers
// sharing and not sharing PeerConfigs, pod CIDR, pool and Service adverts
// with attributes, a missing Secret and a missing PeerConfig.
func richInput() Input {
	in := multiPoolInput()
	in.IPAMMode = IPAMClusterPool
	in.CiliumNode.Spec.IPAM.PodCIDRs = []string{"10.1.0.0/24", "fd00:1::/64"}
	in.NodeConfig = nodeConfig(
		ciliumv2.CiliumBGPNodeInstance{Name: "instance-65000", LocalASN: ptr.To[int64](65000), LocalPort: ptr.To[int32](179),
			Peers: []ciliumv2.CiliumBGPNodePeer{
				{Name: "peer-65000-tor2", PeerAddress: ptr.To("fd00:11::1"), PeerASN: ptr.To[int64](65000), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "cilium-peer"}},
				{Name: "peer-65000-tor1", PeerAddress: ptr.To("fd00:10::1"), PeerASN: ptr.To[int64](65000), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "cilium-peer"}},
			}},
		ciliumv2.CiliumBGPNodeInstance{Name: "instance-64512", LocalASN: ptr.To[int64](64512), RouterID: ptr.To("192.168.10.1"),
			Peers: []ciliumv2.CiliumBGPNodePeer{
				{Name: "edge", PeerAddress: ptr.To("198.18.0.1"), PeerASN: ptr.To[int64](65100), LocalAddress: ptr.To("198.18.0.11"),
					PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "edge-peer"}},
				{Name: "rs", PeerAddress: ptr.To("198.18.5.1"), PeerASN: ptr.To[int64](0), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "missing"}},
			}},
	)
	in.PeerConfigs = []ciliumv2.CiliumBGPPeerConfig{
		peerConfig("edge-peer", ciliumv2.CiliumBGPPeerConfigSpec{
			AuthSecretRef: ptr.To("edge-auth"), EBGPMultihop: ptr.To[int32](4),
			Timers:   &ciliumv2.CiliumBGPTimers{HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}, Advertisements: matchLabels("to", "edge")}},
		}),
		peerConfig("cilium-peer", ciliumv2.CiliumBGPPeerConfigSpec{
			AuthSecretRef:   ptr.To("tor-auth"),
			GracefulRestart: &ciliumv2.CiliumBGPNeighborGracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](15)},
			Families:        []ciliumv2.CiliumBGPFamilyWithAdverts{advertFamily("ipv6"), advertFamily("ipv4")},
		}),
	}
	in.Secrets = map[string]string{"tor-auth": "tor-password", "unrelated": "x"}

	pods := podCIDRAdvert
	pods.Attributes = &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{Standard: []ciliumv2.BGPStandardCommunity{"65000:99"}}, LocalPreference: ptr.To[int64](99)}
	svc := serviceAdvert(selectAll(), lbIP, extIP)
	svc.Service.AggregationLengthIPv4 = ptr.To[int32](28)
	svc.Attributes = &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{WellKnown: []ciliumv2.BGPWellKnownCommunity{"no-export"}}}
	edge := advert("edge", serviceAdvert(matchLabels("io.kubernetes.service.namespace", "prod"), clusterIP, lbIP))
	edge.Labels = map[string]string{"to": "edge"}
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{
		advert("services", svc),
		advert("pods", pods, ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPCiliumPodIPPoolAdvert, Selector: matchLabels("color", "blue"),
			Attributes: &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{Large: []ciliumv2.BGPLargeCommunity{"64512:1:2"}}}}),
		edge,
		advert("unselected-by-anyone", podCIDRAdvert),
	}
	in.Advertisements[3].Labels = map[string]string{"advertise": "never"}

	web := lbService("web", []string{"20.0.10.1", "2004::1"}, "10.96.0.10", "fd00:96::10")
	web.Spec.ExternalIPs = []string{"198.51.100.7"}
	local := lbService("local", []string{"20.0.10.2"}, "10.96.0.11")
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	api := lbService("api", []string{"20.0.20.1"}, "10.96.0.12")
	api.Namespace = "prod"
	away := lbService("away", []string{"20.0.10.3"})
	away.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	in.Services = []corev1.Service{web, local, api, away}
	in.EndpointSlices = append(in.EndpointSlices, endpointSlice("local", true, "node-b", self), endpointSlice("away", true, "node-b"))
	return in
}

// richPolicyInput is the same world under two legacy policies, one of
// which selects the node.
func richPolicyInput() Input {
	in := richInput()
	p := rack1Policy()
	vr := &p.Spec.VirtualRouters[0]
	vr.PodIPPoolSelector = matchLabels("color", "red")
	vr.ServiceSelector = selectAll()
	vr.ServiceAdvertisements = []ciliumv2alpha1.BGPServiceAddressType{"LoadBalancerIP", "ExternalIP"}
	vr.Neighbors = append(vr.Neighbors, ciliumv2alpha1.CiliumBGPNeighbor{PeerAddress: "fd00:10::1/128", PeerASN: 65001,
		Families: []ciliumv2alpha1.CiliumBGPFamily{{Afi: "ipv6", Safi: "unicast"}},
		AdvertisedPathAttributes: []ciliumv2alpha1.CiliumBGPPathAttributes{{SelectorType: "PodCIDR",
			Communities: &ciliumv2alpha1.BGPCommunities{Large: []ciliumv2alpha1.BGPLargeCommunity{"65001:0:1"}}}}})
	other := rack1Policy()
	other.Name = "rack-9"
	other.Spec.NodeSelector = matchLabels("rack", "rack9")
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{other, p}
	in.Node.Annotations = map[string]string{"cilium.io/bgp-virtual-router.65001": "local-port=1790"}
	return in
}

func TestGolden(t *testing.T) {
	for name, in := range map[string]Input{"nodeconfig": richInput(), "legacy": richPolicyInput()} {
		t.Run(name, func(t *testing.T) {
			got := render(Compute(in))
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			expectText(t, path, got, string(want))
		})
	}
}

// Compute gives the same State whatever the order of its input lists.
func TestDeterminism(t *testing.T) {
	for name, build := range map[string]func() Input{"nodeconfig": richInput, "legacy": richPolicyInput} {
		want := Compute(build())
		for seed := range uint64(20) {
			in := build()
			shuffleInput(rand.New(rand.NewPCG(seed, seed*7+1)), &in)
			if got := Compute(in); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s, seed %d: got:\n%s\nwant:\n%s", name, seed, render(got), render(want))
			}
		}
	}
}

func shuffleInput(r *rand.Rand, in *Input) {
	shuffle(r, in.NodeConfig.Spec.BGPInstances)
	for i := range in.NodeConfig.Spec.BGPInstances {
		shuffle(r, in.NodeConfig.Spec.BGPInstances[i].Peers)
	}
	shuffle(r, in.PeerConfigs)
	for i := range in.PeerConfigs {
		shuffle(r, in.PeerConfigs[i].Spec.Families)
	}
	shuffle(r, in.Advertisements)
	for i := range in.Advertisements {
		shuffle(r, in.Advertisements[i].Spec.Advertisements)
	}
	shuffle(r, in.PeeringPolicies)
	for i := range in.PeeringPolicies {
		for j := range in.PeeringPolicies[i].Spec.VirtualRouters {
			shuffle(r, in.PeeringPolicies[i].Spec.VirtualRouters[j].Neighbors)
		}
	}
	shuffle(r, in.PodIPPools)
	shuffle(r, in.LoadBalancerIPPools)
	shuffle(r, in.Services)
	shuffle(r, in.EndpointSlices)
	shuffle(r, in.CiliumNode.Spec.IPAM.Pools.Allocated)
	for i := range in.CiliumNode.Spec.IPAM.Pools.Allocated {
		shuffle(r, in.CiliumNode.Spec.IPAM.Pools.Allocated[i].CIDRs)
	}
	for i := range in.Services {
		s := &in.Services[i].Spec
		shuffle(r, s.ExternalIPs)
		shuffle(r, in.Services[i].Status.LoadBalancer.Ingress)
	}
}

func shuffle[T any](r *rand.Rand, s []T) {
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}
