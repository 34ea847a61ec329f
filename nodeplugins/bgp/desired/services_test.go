package desired

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

const (
	lbIP      = ciliumv2.BGPLoadBalancerIPAddr
	clusterIP = ciliumv2.BGPClusterIPAddr
	extIP     = ciliumv2.BGPExternalIPAddr
)

// serviceRoutes computes the routes of the only peer with one Service
// advertisement over the given Services and slices.
func serviceRoutes(t *testing.T, a ciliumv2.BGPAdvertisement, svcs []corev1.Service, slices ...discoveryv1.EndpointSlice) string {
	t.Helper()
	in := baseInput()
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("svc", a)}
	in.Services, in.EndpointSlices = svcs, slices
	st := Compute(in)
	noProblems(t, st)
	return routesOf(t, st)
}

// B31: a selected Service's LB-IPAM addresses are advertised as host
// routes; Services that do not match, or have no ingress IP yet, are not.
func TestB31_ServiceLoadBalancerIP(t *testing.T) {
	svcs := []corev1.Service{
		lbService("web", []string{"20.0.10.1", "2004::1"}, "10.96.0.10"),
		lbService("pending", nil, "10.96.0.11"),
		lbService("other", []string{"20.0.10.9"}),
	}
	svcs[1].Labels["app"] = "web"
	got := serviceRoutes(t, serviceAdvert(matchLabels("app", "web"), lbIP), svcs)
	expectText(t, "routes", got, lines("    route 20.0.10.1/32", "    route 2004::1/128"))
}

// B32: ClusterIP advertises spec.clusterIPs of every type; a headless
// Service's "None" is never advertised.
func TestB32_ServiceClusterIP(t *testing.T) {
	web := lbService("web", []string{"20.0.10.1"}, "10.96.0.10", "fd00:96::10")
	web.Spec.Type = corev1.ServiceTypeClusterIP
	web.Status = corev1.ServiceStatus{}
	headless := lbService("headless", nil, "None")
	headless.Spec.Type = corev1.ServiceTypeClusterIP
	got := serviceRoutes(t, serviceAdvert(selectAll(), clusterIP), []corev1.Service{web, headless})
	expectText(t, "routes", got, lines("    route 10.96.0.10/32", "    route fd00:96::10/128"))
}

// B33: ExternalIP advertises every spec.externalIPs entry (and, asked only
// for those, not the LB IP).
func TestB33_ServiceExternalIP(t *testing.T) {
	web := lbService("web", []string{"20.0.10.1"}, "10.96.0.10")
	web.Spec.ExternalIPs = []string{"198.51.100.7", "198.51.100.8"}
	got := serviceRoutes(t, serviceAdvert(selectAll(), extIP), []corev1.Service{web})
	expectText(t, "routes", got, lines("    route 198.51.100.7/32", "    route 198.51.100.8/32"))
}

// B34: the special namespace and name keys select Services as labels do.
func TestB34_ServiceSpecialKeys(t *testing.T) {
	a := lbService("web", []string{"20.0.10.1"})
	b := lbService("web", []string{"20.0.20.1"})
	b.Namespace = "prod"
	c := lbService("api", []string{"20.0.20.2"})
	c.Namespace = "prod"
	svcs := []corev1.Service{a, b, c}
	expectText(t, "namespace", serviceRoutes(t, serviceAdvert(matchLabels("io.kubernetes.service.namespace", "prod"), lbIP), svcs),
		lines("    route 20.0.20.1/32", "    route 20.0.20.2/32"))
	expectText(t, "namespace+name", serviceRoutes(t, serviceAdvert(matchLabels("io.kubernetes.service.namespace", "prod", "io.kubernetes.service.name", "web"), lbIP), svcs),
		lines("    route 20.0.20.1/32"))
}

// B35: the NotIn idiom selects every Service; an absent selector none.
func TestB35_SelectAllServices(t *testing.T) {
	svcs := []corev1.Service{lbService("a", []string{"20.0.10.1"}), lbService("b", []string{"20.0.10.2"})}
	expectText(t, "all", serviceRoutes(t, serviceAdvert(selectAll(), lbIP), svcs), lines("    route 20.0.10.1/32", "    route 20.0.10.2/32"))
	expectText(t, "none", serviceRoutes(t, serviceAdvert(nil, lbIP), svcs), "")
}

// B36: LB IPs of a Service with a foreign loadBalancerClass are not
// advertised; unset or io.cilium/bgp-control-plane are.
func TestB36_LoadBalancerClass(t *testing.T) {
	unset := lbService("unset", []string{"20.0.10.1"})
	bgp := lbService("bgp", []string{"20.0.10.2"})
	bgp.Spec.LoadBalancerClass = ptr.To("io.cilium/bgp-control-plane")
	l2 := lbService("l2", []string{"20.0.10.3"})
	l2.Spec.LoadBalancerClass = ptr.To("io.cilium/l2-announcer")
	foreign := lbService("foreign", []string{"20.0.10.4"})
	foreign.Spec.LoadBalancerClass = ptr.To("example.com/lb")
	got := serviceRoutes(t, serviceAdvert(selectAll(), lbIP), []corev1.Service{unset, bgp, l2, foreign})
	expectText(t, "routes", got, lines("    route 20.0.10.1/32", "    route 20.0.10.2/32"))
}

// B37: with eTP=Cluster the LB and external IPs are advertised from every
// node, even with no endpoint at all.
func TestB37_ETPCluster(t *testing.T) {
	web := lbService("web", []string{"20.0.10.1"})
	web.Spec.ExternalIPs = []string{"198.51.100.7"}
	got := serviceRoutes(t, serviceAdvert(selectAll(), lbIP, extIP), []corev1.Service{web})
	expectText(t, "routes", got, lines("    route 20.0.10.1/32", "    route 198.51.100.7/32"))
}

// B38: with eTP=Local the LB and external IPs are advertised only while
// this node has a ready endpoint; ClusterIPs are not affected by eTP.
func TestB38_ETPLocal(t *testing.T) {
	web := lbService("web", []string{"20.0.10.1"}, "10.96.0.10")
	web.Spec.ExternalIPs = []string{"198.51.100.7"}
	web.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svcs := []corev1.Service{web}
	a := serviceAdvert(selectAll(), lbIP, extIP, clusterIP)
	all := lines("    route 10.96.0.10/32", "    route 20.0.10.1/32", "    route 198.51.100.7/32")
	only := lines("    route 10.96.0.10/32")
	for _, tc := range []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		want   string
	}{
		{"no endpoints", nil, only},
		{"endpoint on another node", []discoveryv1.EndpointSlice{endpointSlice("web", true, "node-b")}, only},
		{"local endpoint not ready", []discoveryv1.EndpointSlice{endpointSlice("web", false, self)}, only},
		{"local ready endpoint", []discoveryv1.EndpointSlice{endpointSlice("web", false, self), endpointSlice("web", true, "node-b", self)}, all},
		{"ready condition unknown", []discoveryv1.EndpointSlice{func() discoveryv1.EndpointSlice {
			es := endpointSlice("web", true, self)
			es.Endpoints[0].Conditions.Ready = nil
			return es
		}()}, all},
		{"another Service's endpoint", []discoveryv1.EndpointSlice{endpointSlice("api", true, self)}, only},
	} {
		expectText(t, tc.name, serviceRoutes(t, a, svcs, tc.slices...), tc.want)
	}
}

// B39: ClusterIPs follow iTP: with iTP=Local only nodes with a ready local
// endpoint advertise them; eTP does not matter for them.
func TestB39_ITPForClusterIP(t *testing.T) {
	web := lbService("web", []string{"20.0.10.1"}, "10.96.0.10")
	web.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	svcs := []corev1.Service{web}
	a := serviceAdvert(selectAll(), lbIP, clusterIP)
	expectText(t, "no local endpoint", serviceRoutes(t, a, svcs), lines("    route 20.0.10.1/32"))
	expectText(t, "local endpoint", serviceRoutes(t, a, svcs, endpointSlice("web", true, self)),
		lines("    route 10.96.0.10/32", "    route 20.0.10.1/32"))
}

// B43: two adverts matching one Service give its route the union of their
// communities and the highest local preference.
func TestB43_OverlappingAdverts(t *testing.T) {
	in := baseInput()
	in.IPv6Enabled = false
	vpc := func(name, label, large string, standard ciliumv2.BGPStandardCommunity, lp int64) ciliumv2.CiliumBGPAdvertisement {
		a := serviceAdvert(matchLabels(label, ""), lbIP)
		a.Attributes = &ciliumv2.BGPAttributes{LocalPreference: ptr.To(lp), Communities: &ciliumv2.BGPCommunities{
			Large: []ciliumv2.BGPLargeCommunity{ciliumv2.BGPLargeCommunity(large)}, Standard: []ciliumv2.BGPStandardCommunity{standard, "65000:1"}}}
		return advert(name, a)
	}
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{
		vpc("vpc2", "vpc2", "2222:2222:2222", "65000:2", 200),
		vpc("vpc1", "vpc1", "1111:1111:1111", "65000:1", 100),
	}
	both := lbService("both", []string{"20.0.10.1"})
	both.Labels = map[string]string{"vpc1": "", "vpc2": ""}
	one := lbService("one", []string{"20.0.10.2"})
	one.Labels = map[string]string{"vpc1": ""}
	in.Services = []corev1.Service{both, one}
	st := Compute(in)
	noProblems(t, st)
	expectText(t, "routes", routesOf(t, st), lines(
		"    route 20.0.10.1/32 communities 65000:1,65000:2 large 1111:1111:1111,2222:2222:2222 local-pref 200",
		"    route 20.0.10.2/32 communities 65000:1 large 1111:1111:1111 local-pref 100",
	))
}

// B44: with aggregationLengthIPv4 24 (IPv6 120) addresses in one /24 are
// advertised as that /24 once; eTP=Local Services keep host routes.
func TestB44_Aggregation(t *testing.T) {
	a := serviceAdvert(selectAll(), lbIP)
	a.Service.AggregationLengthIPv4 = ptr.To[int32](24)
	a.Service.AggregationLengthIPv6 = ptr.To[int32](120)
	local := lbService("local", []string{"20.0.10.9", "2004::9"})
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svcs := []corev1.Service{
		lbService("a", []string{"20.0.10.1", "2004::1"}),
		lbService("b", []string{"20.0.10.2"}),
		lbService("c", []string{"20.0.11.1"}),
		local,
	}
	got := serviceRoutes(t, a, svcs, endpointSlice("local", true, self))
	expectText(t, "routes", got, lines(
		"    route 20.0.10.0/24",
		"    route 20.0.10.9/32",
		"    route 20.0.11.0/24",
		"    route 2004::/120",
		"    route 2004::9/128",
	))
}

// Services reach peers only in families the peer config selects adverts
// for: an advert selected by the ipv4 family only sends IPv4 addresses.
func TestServiceRoutesPerFamily(t *testing.T) {
	in := baseInput()
	in.PeerConfigs[0].Spec.Families[1].Advertisements = &metav1.LabelSelector{MatchLabels: map[string]string{"advertise": "v6-only"}}
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("svc", serviceAdvert(selectAll(), lbIP))}
	in.Services = []corev1.Service{lbService("web", []string{"20.0.10.1", "2004::1"})}
	expectText(t, "routes", routesOf(t, Compute(in)), lines("    route 20.0.10.1/32"))
}
