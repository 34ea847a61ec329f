package desired

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

const self = "node-a"

// baseInput is a dual-stack node in cluster-pool mode with one instance
// (AS 65001) peering with 198.18.0.1 (AS 65000) through PeerConfig "peer"
// that sends adverts labelled advertise=bgp in both families. Tests add the
// advertisements and objects they are about.
func baseInput() Input {
	return Input{
		NodeName: self,
		Node: &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: self, Labels: map[string]string{"rack": "rack0"}},
			Spec:       corev1.NodeSpec{PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: self},
				{Type: corev1.NodeInternalIP, Address: "fd00:18::11"},
				{Type: corev1.NodeInternalIP, Address: "198.18.0.11"},
			}},
		},
		CiliumNode: &ciliumv2.CiliumNode{
			ObjectMeta: metav1.ObjectMeta{Name: self},
			Spec:       ciliumv2.NodeSpec{IPAM: ciliumv2.IPAMSpec{PodCIDRs: []string{"10.1.0.0/24", "fd00:1::/64"}}},
		},
		IPAMMode:    IPAMClusterPool,
		IPv4Enabled: true,
		IPv6Enabled: true,
		NodeConfig: nodeConfig(ciliumv2.CiliumBGPNodeInstance{
			Name: "instance-65001", LocalASN: ptr.To[int64](65001), RouterID: ptr.To("192.168.10.1"),
			Peers: []ciliumv2.CiliumBGPNodePeer{{Name: "tor1", PeerAddress: ptr.To("198.18.0.1"), PeerASN: ptr.To[int64](65000),
				PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "peer"}}},
		}),
		PeerConfigs: []ciliumv2.CiliumBGPPeerConfig{peerConfig("peer", ciliumv2.CiliumBGPPeerConfigSpec{
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{advertFamily("ipv4"), advertFamily("ipv6")},
		})},
		SecretsNamespace: "kube-system",
	}
}

func nodeConfig(instances ...ciliumv2.CiliumBGPNodeInstance) *ciliumv2.CiliumBGPNodeConfig {
	return &ciliumv2.CiliumBGPNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: self},
		Spec: ciliumv2.CiliumBGPNodeSpec{BGPInstances: instances}}
}

func peerConfig(name string, spec ciliumv2.CiliumBGPPeerConfigSpec) ciliumv2.CiliumBGPPeerConfig {
	return ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// advertFamily selects the adverts labelled advertise=bgp in a family.
func advertFamily(afi string) ciliumv2.CiliumBGPFamilyWithAdverts {
	return ciliumv2.CiliumBGPFamilyWithAdverts{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: afi, Safi: "unicast"},
		Advertisements: &metav1.LabelSelector{MatchLabels: map[string]string{"advertise": "bgp"}}}
}

// advert is an advertisement labelled advertise=bgp.
func advert(name string, entries ...ciliumv2.BGPAdvertisement) ciliumv2.CiliumBGPAdvertisement {
	return ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"advertise": "bgp"}},
		Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: entries}}
}

func serviceAdvert(sel *metav1.LabelSelector, addrs ...ciliumv2.BGPServiceAddressType) ciliumv2.BGPAdvertisement {
	return ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPServiceAdvert, Selector: sel,
		Service: &ciliumv2.BGPServiceOptions{Addresses: addrs}}
}

func matchLabels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// selectAll is the seed's "everything" idiom (B35).
func selectAll() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "somekey", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"never-used-value"}}}}
}

// lbService is a LoadBalancer Service in namespace "default" labelled
// app=<name>, with the given ingress IPs and cluster IPs.
func lbService(name string, lbIPs []string, clusterIPs ...string) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: clusterIPs,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
	}
	if len(clusterIPs) > 0 {
		s.Spec.ClusterIP = clusterIPs[0]
	}
	for _, ip := range lbIPs {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

// endpointSlice has one endpoint of default/<svc> per node given, ready or
// not.
func endpointSlice(svc string, ready bool, nodes ...string) discoveryv1.EndpointSlice {
	es := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-abc",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	for i, n := range nodes {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.1.0.%d", i+10)},
			NodeName: ptr.To(n), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}})
	}
	return es
}

func podPoolObj(name string, lbls map[string]string) ciliumv2alpha1.CiliumPodIPPool {
	return ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

// render prints a State one fact per line, so that tests compare it
// exactly and show readable differences.
func render(st State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "source %s\n", st.Source)
	for _, in := range st.Instances {
		fmt.Fprintf(&b, "instance %s asn %d router-id %s listen %d\n", in.Name, in.ASN, addrOrDash(in.RouterID.String()), in.ListenPort)
		for _, p := range in.Peers {
			b.WriteString(renderPeer(p))
		}
	}
	for _, p := range st.Problems {
		fmt.Fprintf(&b, "problem %s: %s\n", p.Reason, p.Message)
	}
	return b.String()
}

func renderPeer(p Peer) string {
	var b strings.Builder
	addr := addrOrDash(p.Address.String())
	if p.AutoDiscovery != nil {
		addr = "auto:" + p.AutoDiscovery.Family
	}
	fams := make([]string, len(p.Families))
	for i, f := range p.Families {
		fams[i] = f.AFI + "/" + f.SAFI
	}
	gr := "off"
	if p.GracefulRestart.Enabled {
		gr = p.GracefulRestart.RestartTime.String()
	}
	fmt.Fprintf(&b, "  peer %s addr %s asn %d local %s port %d retry %s hold %s keepalive %s ttl %d gr %s families %s password %q\n",
		p.Name, addr, p.ASN, addrOrDash(p.LocalAddress.String()), p.Port, p.ConnectRetry, p.HoldTime, p.Keepalive,
		p.EBGPMultihopTTL, gr, strings.Join(fams, ","), p.Password)
	if p.RouteGroup != "" {
		fmt.Fprintf(&b, "    route group %s\n", p.RouteGroup)
	}
	b.WriteString(renderRoutes(p.Routes))
	return b.String()
}

func renderRoutes(rs []Route) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "    route %s", r.Prefix)
		if len(r.Communities) > 0 {
			cs := make([]string, len(r.Communities))
			for i, c := range r.Communities {
				cs[i] = fmt.Sprintf("%d:%d", c>>16, c&0xffff)
			}
			fmt.Fprintf(&b, " communities %s", strings.Join(cs, ","))
		}
		if len(r.LargeCommunities) > 0 {
			cs := make([]string, len(r.LargeCommunities))
			for i, c := range r.LargeCommunities {
				cs[i] = fmt.Sprintf("%d:%d:%d", c.Global, c.Local1, c.Local2)
			}
			fmt.Fprintf(&b, " large %s", strings.Join(cs, ","))
		}
		if r.LocalPreference != nil {
			fmt.Fprintf(&b, " local-pref %d", *r.LocalPreference)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func addrOrDash(s string) string {
	if s == "invalid IP" {
		return "-"
	}
	return s
}

// firstPeer is the only peer of the only instance, failing otherwise.
func firstPeer(t *testing.T, st State) Peer {
	t.Helper()
	if len(st.Instances) != 1 || len(st.Instances[0].Peers) != 1 {
		t.Fatalf("want one instance with one peer, got:\n%s", render(st))
	}
	return st.Instances[0].Peers[0]
}

// routesOf renders the routes of the only peer.
func routesOf(t *testing.T, st State) string {
	t.Helper()
	return renderRoutes(firstPeer(t, st).Routes)
}

func lines(ls ...string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

func expectText(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got:\n%s\nwant:\n%s", what, got, want)
	}
}

func noProblems(t *testing.T, st State) {
	t.Helper()
	if len(st.Problems) > 0 {
		t.Errorf("unexpected problems: %+v", st.Problems)
	}
}
