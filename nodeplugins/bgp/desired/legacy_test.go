package desired

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

// rack1Policy is the study module's rack-1-bgp policy: nodes labelled
// rack=rack0 here, AS 65001 exporting the pod CIDR, neighbor 10.0.0.1/32
// in AS 65000, Services labelled service.cilium.io/bgp-announce=true.
func rack1Policy() ciliumv2alpha1.CiliumBGPPeeringPolicy {
	return ciliumv2alpha1.CiliumBGPPeeringPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "rack-1-bgp"},
		Spec: ciliumv2alpha1.CiliumBGPPeeringPolicySpec{
			NodeSelector: matchLabels("rack", "rack0"),
			VirtualRouters: []ciliumv2alpha1.CiliumBGPVirtualRouter{{
				LocalASN:      65001,
				ExportPodCIDR: ptr.To(true),
				ServiceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "service.cilium.io/bgp-announce", Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}}}},
				Neighbors: []ciliumv2alpha1.CiliumBGPNeighbor{{PeerAddress: "10.0.0.1/32", PeerASN: 65000}},
			}},
		},
	}
}

func announced(s corev1.Service) corev1.Service {
	s.Labels = map[string]string{"service.cilium.io/bgp-announce": "true"}
	return s
}

// B55: a policy selecting the node wins over its NodeConfig.
// B57, B59: exportPodCIDR advertises the node's pod CIDRs and the neighbor
// 10.0.0.1/32 peers with 10.0.0.1, with the same defaults as a PeerConfig.
func TestB55_B57_B59_PolicyPrecedence(t *testing.T) {
	in := baseInput()
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{rack1Policy()}
	expectText(t, "state", render(Compute(in)), lines(
		"source CiliumBGPPeeringPolicy/rack-1-bgp",
		"instance 65001 asn 65001 router-id 198.18.0.11 listen 0",
		`  peer 10.0.0.1-65000 addr 10.0.0.1 asn 65000 local - port 179 retry 2m0s hold 1m30s keepalive 30s ttl 1 gr off families ipv4/unicast,ipv6/unicast password ""`,
		"    route 10.1.0.0/24",
		"    route fd00:1::/64",
	))

	// A policy for other nodes leaves the NodeConfig in charge.
	in.PeeringPolicies[0].Spec.NodeSelector = matchLabels("rack", "rack9")
	if src := Compute(in).Source; src != "CiliumBGPNodeConfig/node-a" {
		t.Errorf("source %s, want the NodeConfig", src)
	}
}

// B57: exportPodCIDR false (the default) advertises no pod CIDR.
func TestB57_ExportPodCIDRDefault(t *testing.T) {
	in := baseInput()
	p := rack1Policy()
	p.Spec.VirtualRouters[0].ExportPodCIDR = nil
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{p}
	expectText(t, "routes", routesOf(t, Compute(in)), "")
}

// B56: two policies selecting the node: no instances at all, and the
// problem names both.
func TestB56_SeveralPolicies(t *testing.T) {
	in := baseInput()
	second := rack1Policy()
	second.Name = "all-nodes"
	second.Spec.NodeSelector = nil
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{rack1Policy(), second}
	want := State{Problems: []Problem{{Reason: ReasonSeveralPolicies,
		Message: "more than one CiliumBGPPeeringPolicy applies to this node (all-nodes, rack-1-bgp): all its BGP sessions are cleared until only one selects it"}}}
	if st := Compute(in); !reflect.DeepEqual(st, want) {
		t.Errorf("got:\n%s\nwant:\n%s", render(st), render(want))
	}
}

// B58: with a serviceSelector and no serviceAdvertisements only LB IPs are
// advertised; listing kinds advertises those.
func TestB58_ServiceAdvertisementsDefault(t *testing.T) {
	in := baseInput()
	p := rack1Policy()
	p.Spec.VirtualRouters[0].ExportPodCIDR = nil
	web := announced(lbService("web", []string{"20.0.10.1"}, "10.96.0.10"))
	web.Spec.ExternalIPs = []string{"198.51.100.7"}
	in.Services = []corev1.Service{web, lbService("quiet", []string{"20.0.10.2"})}
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{p}
	expectText(t, "default", routesOf(t, Compute(in)), lines("    route 20.0.10.1/32"))

	in.PeeringPolicies[0].Spec.VirtualRouters[0].ServiceAdvertisements = []ciliumv2alpha1.BGPServiceAddressType{"ClusterIP", "ExternalIP"}
	expectText(t, "ClusterIP+ExternalIP", routesOf(t, Compute(in)), lines("    route 10.96.0.10/32", "    route 198.51.100.7/32"))
}

// B60: the node annotation sets router ID and listen port of the virtual
// router with that ASN, the last repeated key winning; a malformed one
// keeps that router from running and is reported.
func TestB60_NodeAnnotation(t *testing.T) {
	in := baseInput()
	p := rack1Policy()
	p.Spec.VirtualRouters = append(p.Spec.VirtualRouters, ciliumv2alpha1.CiliumBGPVirtualRouter{LocalASN: 64512,
		Neighbors: []ciliumv2alpha1.CiliumBGPNeighbor{{PeerAddress: "fd00:10::1/128", PeerASN: 65000}}})
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{p}
	in.Node.Annotations = map[string]string{
		"cilium.io/bgp-virtual-router.64512": "router-id=10.0.0.9,local-port=1790, router-id=10.0.0.2,local-port=179,future-key=x",
	}
	st := Compute(in)
	noProblems(t, st)
	if got := []Instance{st.Instances[0], st.Instances[1]}; got[0].Name != "64512" || got[0].RouterID.String() != "10.0.0.2" || got[0].ListenPort != 179 ||
		got[1].Name != "65001" || got[1].RouterID.String() != "198.18.0.11" || got[1].ListenPort != 0 {
		t.Errorf("got:\n%s", render(st))
	}

	in.Node.Annotations["cilium.io/bgp-virtual-router.64512"] = "router-id=fd00::2"
	st = Compute(in)
	if len(st.Instances) != 1 || st.Instances[0].Name != "65001" {
		t.Errorf("got:\n%s\nwant only 65001", render(st))
	}
	want := []Problem{{Reason: ReasonInvalidAnnotation,
		Message: `Node annotation cilium.io/bgp-virtual-router.64512: router-id "fd00::2" is not an IPv4 address: virtual router 64512 is not run`}}
	if !reflect.DeepEqual(st.Problems, want) {
		t.Errorf("problems %+v, want %+v", st.Problems, want)
	}

	for _, bad := range []string{"router-id", "local-port=0", "local-port=70000", "=1"} {
		in.Node.Annotations["cilium.io/bgp-virtual-router.64512"] = bad
		if st := Compute(in); len(st.Problems) != 1 || st.Problems[0].Reason != ReasonInvalidAnnotation {
			t.Errorf("annotation %q: problems %+v, want one InvalidAnnotation", bad, st.Problems)
		}
	}
}

// Legacy on an IPv6-only node: without a router-id annotation the virtual
// router cannot run.
func TestLegacyRouterIDRequiredOnIPv6Only(t *testing.T) {
	in := baseInput()
	in.Node.Status.Addresses = in.Node.Status.Addresses[:2]
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{rack1Policy()}
	want := State{Source: "CiliumBGPPeeringPolicy/rack-1-bgp", Problems: []Problem{{Reason: ReasonNoRouterID,
		Message: `CiliumBGPPeeringPolicy "rack-1-bgp" virtual router 65001: the node has no IPv4 InternalIP: set router-id=<IPv4> in Node annotation cilium.io/bgp-virtual-router.65001 (required on IPv6-only nodes); the virtual router is not run`}}}
	if st := Compute(in); !reflect.DeepEqual(st, want) {
		t.Errorf("got:\n%s\nwant:\n%s", render(st), render(want))
	}
}

// B61: community 64512:100 on Services from the selected LB pools only,
// local preference 150 and community 64512:150 on pod CIDR routes, and
// attributes for a selected pod pool; neighbor settings carry over.
func TestB61_PathAttributes(t *testing.T) {
	in := multiPoolInput()
	in.IPv6Enabled = false
	p := rack1Policy()
	vr := &p.Spec.VirtualRouters[0]
	vr.PodIPPoolSelector = selectAll()
	n := &vr.Neighbors[0]
	n.PeerPort, n.EBGPMultihopTTL = ptr.To[int32](1179), ptr.To[int32](3)
	n.ConnectRetryTimeSeconds, n.HoldTimeSeconds, n.KeepAliveTimeSeconds = ptr.To[int32](5), ptr.To[int32](9), ptr.To[int32](3)
	n.GracefulRestart = &ciliumv2alpha1.CiliumBGPNeighborGracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](30)}
	n.Families = []ciliumv2alpha1.CiliumBGPFamily{{Afi: "ipv4", Safi: "unicast"}}
	n.AuthSecretRef = ptr.To("legacy-auth")
	n.AdvertisedPathAttributes = []ciliumv2alpha1.CiliumBGPPathAttributes{
		{SelectorType: "CiliumLoadBalancerIPPool", Selector: matchLabels("pool", "blue"),
			Communities: &ciliumv2alpha1.BGPCommunities{Standard: []ciliumv2alpha1.BGPStandardCommunity{"64512:100"}}},
		{SelectorType: "PodCIDR", LocalPreference: ptr.To[int64](150),
			Communities: &ciliumv2alpha1.BGPCommunities{Standard: []ciliumv2alpha1.BGPStandardCommunity{"64512:150"}}},
		{SelectorType: "CiliumPodIPPool", Selector: matchLabels(PodIPPoolNameKey, "red"),
			Communities: &ciliumv2alpha1.BGPCommunities{WellKnown: []ciliumv2alpha1.BGPWellKnownCommunity{"no-export"}}},
		{SelectorType: "PodCIDR", Selector: matchLabels("rack", "rack9"), LocalPreference: ptr.To[int64](999)},
	}
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{p}
	in.IPAMMode = IPAMClusterPool // pod CIDR and pool CIDRs at once, to see both tagged
	in.CiliumNode.Spec.IPAM.PodCIDRs = []string{"10.1.0.0/24"}
	in.LoadBalancerIPPools = []ciliumv2.CiliumLoadBalancerIPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "blue", Labels: map[string]string{"pool": "blue"}},
			Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "20.0.10.0/24"}, {Start: "20.0.30.5", Stop: "20.0.30.6"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "red", Labels: map[string]string{"pool": "red"}},
			Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "20.0.20.0/24"}}}},
	}
	in.Services = []corev1.Service{
		announced(lbService("blue", []string{"20.0.10.1"})),
		announced(lbService("blue-range", []string{"20.0.30.6"})),
		announced(lbService("red", []string{"20.0.20.1"})),
	}
	in.Secrets = map[string]string{"legacy-auth": "pw"}
	st := Compute(in)
	noProblems(t, st)
	expectText(t, "peer", renderPeer(firstPeer(t, st)), lines(
		`  peer 10.0.0.1-65000 addr 10.0.0.1 asn 65000 local - port 1179 retry 5s hold 9s keepalive 3s ttl 3 gr 30s families ipv4/unicast password "pw"`,
		"    route 10.1.0.0/24 communities 64512:150 local-pref 150",
		"    route 10.20.0.0/26",
		"    route 10.20.1.0/26",
		"    route 10.30.0.64/26 communities 65535:65281",
		"    route 20.0.10.1/32 communities 64512:100",
		"    route 20.0.20.1/32",
		"    route 20.0.30.6/32 communities 64512:100",
	))
}

// A legacy neighbor with a missing Secret behaves as B7.
func TestB7_LegacyMissingSecret(t *testing.T) {
	in := baseInput()
	p := rack1Policy()
	p.Spec.VirtualRouters[0].Neighbors[0].AuthSecretRef = ptr.To("nope")
	in.PeeringPolicies = []ciliumv2alpha1.CiliumBGPPeeringPolicy{p}
	st := Compute(in)
	want := []Problem{{Reason: ReasonMissingAuthSecret,
		Message: `CiliumBGPPeeringPolicy "rack-1-bgp" virtual router 65001 neighbor 10.0.0.1/32 authSecretRef: Secret "kube-system/nope" does not exist or has no key "password": sessions use an empty password`}}
	if !reflect.DeepEqual(st.Problems, want) || firstPeer(t, st).Password != "" {
		t.Errorf("got:\n%s", render(st))
	}
}
