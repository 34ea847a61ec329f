package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// A dual-stack lab (--ip-family dual): an IPv6 underlay beside the IPv4
// one, cluster-pool IPAM with both families, native routing by the Plexus
// datapath, and dual-stack Services, reached from outside over both
// families through BGP routes at the FRR router, and over IPv4 through L2
// announcements (which are IPv4 only, as in the seed: the Service says so).
func TestDualStack(t *testing.T) {
	labtest.RequireRouter(t)
	l, pods := echoOnTwoNodes(t, "native", "cluster-pool", "dual")

	t.Run("I3_EveryPodHasAnAddressOfEachFamilyFromItsNode", func(t *testing.T) {
		for _, p := range pods {
			cidrs := ciliumNode(t, l, p.Spec.NodeName).Spec.IPAM.PodCIDRs
			if len(cidrs) != 2 {
				t.Fatalf("node %s holds %v, want one CIDR per family", p.Spec.NodeName, cidrs)
			}
			for _, v6 := range []bool{false, true} {
				ip, err := netip.ParseAddr(labtest.PodIP(&p, v6))
				if err != nil {
					t.Errorf("pod %s has no address of the family (IPv6: %v): %v", p.Name, v6, p.Status.PodIPs)
					continue
				}
				inside := false
				for _, c := range cidrs {
					inside = inside || netip.MustParsePrefix(c).Contains(ip)
				}
				if !inside {
					t.Errorf("pod %s on %s has %s, outside its node's %v", p.Name, p.Spec.NodeName, ip, cidrs)
				}
			}
		}
	})
	t.Run("PodToPodIPv6SameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, true) })
	t.Run("PodToPodIPv4SameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, false) })
	t.Run("DualStackClusterIP", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "echo-dual", Namespace: labtest.Namespace},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "echo"}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
			},
		}
		svc, err := l.Client.CoreV1().Services(labtest.Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Spec.ClusterIPs) != 2 {
			t.Fatalf("ClusterIPs %v, want one per family", svc.Spec.ClusterIPs)
		}
		for _, ip := range svc.Spec.ClusterIPs {
			seen := map[string]bool{}
			l.Eventually(time.Minute, "answers from both nodes through ClusterIP "+ip, func() error {
				a, err := l.Fetch(&pods[0], "http://"+labtest.HostPort(ip, 80)+"/")
				if err != nil {
					return err
				}
				seen[a.Node] = true
				if len(seen) < 2 {
					return fmt.Errorf("answers so far from %v", seen)
				}
				return nil
			})
		}
	})

	t.Run("DualStackLoadBalancerThroughBGP", func(t *testing.T) {
		loadBalancerThroughBGP(t, l, true, true)
	})
	t.Run("A28_DualStackLoadBalancerThroughL2", func(t *testing.T) {
		dualStackThroughL2(t, l)
	})
}

// loadBalancerThroughBGP: every node peers with the router at its address
// of each family the lab runs (one PeerConfig per family); a LoadBalancer
// Service with an address of each of those families off the segment is
// advertised over the session of its family, the nodes' pod CIDRs too, and
// the external client behind the router reaches the Service over each
// family.
func loadBalancerThroughBGP(t *testing.T, l *labtest.Lab, ipv4, ipv6 bool) {
	ctx := context.Background()
	type family struct {
		afi   string
		pool  netip.Prefix
		addr  netip.Addr
		peer  netip.Addr
		nodes []netip.Addr
	}
	var fams []family
	if ipv4 {
		fams = append(fams, family{"ipv4", l.Layout.BGPPoolPrefix(), nthAddr(l.Layout.BGPPoolPrefix(), 4), l.Layout.RouterIP(), []netip.Addr{l.Layout.NodeIP(1), l.Layout.NodeIP(2)}})
	}
	if ipv6 {
		fams = append(fams, family{"ipv6", l.Layout.BGPPoolPrefixV6(), nthAddr(l.Layout.BGPPoolPrefixV6(), 4), l.Layout.RouterIPv6(), []netip.Addr{l.Layout.NodeIPv6(1), l.Layout.NodeIPv6(2)}})
	}
	peerConfig := func(afi string) *ciliumv2.CiliumBGPPeerConfig {
		return &ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "router-" + afi}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{
			Timers: &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](1), HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{
				CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: afi, Safi: "unicast"},
				Advertisements:  &metav1.LabelSelector{MatchLabels: map[string]string{"advertise": "router"}},
			}},
		}}
	}
	all := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "never-set", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"}}}}
	pool := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}}
	var peers []ciliumv2.CiliumBGPPeer
	var addrs, nodes []string
	var objs []client.Object
	for _, f := range fams {
		pool.Spec.Blocks = append(pool.Spec.Blocks, ciliumv2.CiliumLoadBalancerIPPoolIPBlock{Cidr: f.pool.String()})
		peers = append(peers, ciliumv2.CiliumBGPPeer{Name: "router-" + f.afi, PeerAddress: ptr.To(f.peer.String()), PeerASN: ptr.To[int64](lab.RouterASN),
			PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "router-" + f.afi}})
		objs = append(objs, peerConfig(f.afi))
		addrs = append(addrs, f.addr.String())
		for _, n := range f.nodes {
			nodes = append(nodes, n.String())
		}
	}
	for _, o := range append(objs, pool,
		&ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "router", Labels: map[string]string{"advertise": "router"}},
			Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{
				{AdvertisementType: ciliumv2.BGPPodCIDRAdvert},
				{AdvertisementType: ciliumv2.BGPServiceAdvert, Selector: all,
					Service: &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPLoadBalancerIPAddr}}},
			}}},
		&ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "lab"}, Spec: ciliumv2.CiliumBGPClusterConfigSpec{
			BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "main", LocalASN: ptr.To[int64](65001), Peers: peers}},
		}},
	) {
		if err := l.Cilium.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	labtest.LoadBalancerService(t, l, "echo-bgp", "echo", func(s *corev1.Service) {
		if len(fams) == 2 {
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		}
		s.Annotations = map[string]string{"lbipam.cilium.io/ips": strings.Join(addrs, ",")}
	})
	var established []netip.Addr
	for _, f := range fams {
		established = append(established, f.nodes...)
	}
	waitRouterEstablished(t, l, established, 2*time.Minute)
	for _, f := range fams {
		prefix := netip.PrefixFrom(f.addr, f.addr.BitLen())
		l.EventuallyIn(t, time.Minute, fmt.Sprintf("router has %s via both nodes", prefix), func() error {
			if got := labtest.NextHops(l.RouterRoutes(t, prefix)); !slices.Equal(got, f.nodes) {
				return fmt.Errorf("next hops %v, want %v", got, f.nodes)
			}
			return nil
		})
	}
	for i := 1; i <= 2; i++ {
		node := l.Layout.NodeName(i)
		for _, c := range ciliumNode(t, l, node).Spec.IPAM.PodCIDRs {
			p := netip.MustParsePrefix(c)
			want := []netip.Addr{l.Layout.NodeIP(i)}
			if p.Addr().Is6() {
				want = []netip.Addr{l.Layout.NodeIPv6(i)}
			}
			if p.Addr().Is4() && !ipv4 || p.Addr().Is6() && !ipv6 {
				t.Errorf("%s holds %s, of a family the lab does not run", node, p)
			}
			l.EventuallyIn(t, time.Minute, fmt.Sprintf("router has %s's pod CIDR %s", node, p), func() error {
				if got := labtest.NextHops(l.RouterRoutes(t, p)); !slices.Equal(got, want) {
					return fmt.Errorf("next hops %v, want %v", got, want)
				}
				return nil
			})
		}
	}
	for _, f := range fams {
		l.EventuallyIn(t, 30*time.Second, "the external client reaches the Service at "+f.addr.String(), func() error {
			a, err := extFetch(l, "http://"+labtest.HostPort(f.addr.String(), 80)+"/")
			if err == nil && a.Pod == "" {
				err = fmt.Errorf("answer without a pod: %+v", a)
			}
			return err
		})
	}
}

// dualStackThroughL2: the lab pool has a segment range of each family; a
// dual-stack Service gets one address of each, the client on the segment
// reaches the IPv4 one through the node that answers ARP, and the
// Service's L2Announced condition says the IPv6 one is not announced.
func dualStackThroughL2(t *testing.T, l *labtest.Lab) {
	for i := 1; i <= 2; i++ {
		if n := l.Layout.NodeName(i); !l.Running(n, l2Plugin) {
			t.Fatalf("%s does not run on %s: the lab did not start it (see its output above)", l2Plugin, n)
		}
	}
	ctx := context.Background()
	first4, _ := l.Layout.LBPoolRange()
	first6, _ := l.Layout.LBPoolRangeV6()
	v4, v6 := first4.Next().Next(), first6.Next().Next()
	policy := &ciliumv2alpha1.CiliumL2AnnouncementPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "dual"},
		Spec:       ciliumv2alpha1.L2AnnouncementPolicySpec{Interfaces: []string{"^eth0$"}, LoadBalancerIPs: true},
	}
	if err := l.Cilium.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	labtest.LoadBalancerService(t, l, "echo-l2", "echo", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Annotations = map[string]string{"lbipam.cilium.io/ips": v4.String() + "," + v6.String()}
	})
	l.EventuallyIn(t, time.Minute, "the L2Announced condition names the IPv6 address as not announced", func() error {
		svc, err := l.Client.CoreV1().Services(labtest.Namespace).Get(ctx, "echo-l2", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range svc.Status.Conditions {
			if c.Type == "plexus.dev/L2Announced" && strings.Contains(c.Message, v6.String()+" is not announced") && strings.Contains(c.Message, v4.String()+" by node") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", svc.Status.Conditions)
	})
	c := clientHTTP(l, 3*time.Second)
	l.EventuallyIn(t, 30*time.Second, "the segment's client reaches the Service at "+v4.String(), func() error {
		_, err := labtest.FetchWith(c, "http://"+labtest.HostPort(v4.String(), 80)+"/")
		return err
	})
}

// echoOnTwoNodes starts a two-node lab with the Plexus CNI and datapath in
// the given routing, IPAM mode and IP family, and four echo pods over both
// nodes.
func echoOnTwoNodes(t *testing.T, routing, ipam, family string) (*labtest.Lab, []corev1.Pod) {
	t.Helper()
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: routing, IPAMMode: ipam, IPFamily: family, CNI: "plexus", Datapath: "plexus"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 4, nil))
	if got := labtest.NodesOf(pods); len(got) != 2 {
		t.Fatalf("pods on %v, want both nodes", got)
	}
	return l, pods
}

// nthAddr is the n-th address of p.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// Dual stack with VXLAN between the nodes (IPv4 underlay, both families of
// pod traffic inside) and multi-pool IPAM: the "default" pool has CIDRs of
// both families and every pod gets one address of each.
func TestDualStackVXLANMultiPool(t *testing.T) {
	l, pods := echoOnTwoNodes(t, "vxlan", "multi-pool", "dual")
	t.Run("I19_PodsGetBothFamiliesFromTheDefaultPool", func(t *testing.T) {
		v6 := netip.MustParsePrefix(lab.MultiPoolDefaultCIDRv6)
		for _, p := range pods {
			if ip, err := netip.ParseAddr(labtest.PodIP(&p, true)); err != nil || !v6.Contains(ip) {
				t.Errorf("pod %s: IPv6 address %v (%v), want one in %s", p.Name, ip, err, v6)
			}
		}
	})
	t.Run("PodToPodIPv6SameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, true) })
	t.Run("PodToPodIPv4SameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, false) })
}

// An IPv6-only lab (--ip-family ipv6): nodes, pods, Services and the API
// server have IPv6 addresses only; pods reach each other and a ClusterIP,
// and a LoadBalancer Service advertised over IPv6 BGP sessions answers the
// external client. L2 announcements and the egress gateway are IPv4 only
// and do not run.
func TestIPv6Only(t *testing.T) {
	labtest.RequireRouter(t)
	l, pods := echoOnTwoNodes(t, "native", "cluster-pool", "ipv6")
	t.Run("PodsHaveOnlyIPv6AddressesFromTheirNode", func(t *testing.T) {
		for _, p := range pods {
			cidrs := ciliumNode(t, l, p.Spec.NodeName).Spec.IPAM.PodCIDRs
			if len(cidrs) != 1 || !netip.MustParsePrefix(cidrs[0]).Addr().Is6() {
				t.Fatalf("node %s holds %v, want one IPv6 CIDR", p.Spec.NodeName, cidrs)
			}
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || len(p.Status.PodIPs) != 1 || !netip.MustParsePrefix(cidrs[0]).Contains(ip) {
				t.Errorf("pod %s has %v, want one address in %s", p.Name, p.Status.PodIPs, cidrs[0])
			}
		}
		n, err := l.Client.CoreV1().Nodes().Get(context.Background(), l.Layout.NodeName(1), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
				t.Errorf("Node %s has the IPv4 address %s", n.Name, a.Address)
			}
		}
	})
	t.Run("PodToPodSameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, true) })
	t.Run("PodToClusterIP", func(t *testing.T) {
		svc := labtest.Service(t, l, "echo")
		if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err != nil || !ip.Is6() {
			t.Fatalf("ClusterIP %q, want IPv6", svc.Spec.ClusterIP)
		}
		labtest.ReachesAllNodesThrough(t, l, &pods[0], svc, 2)
	})
	t.Run("LoadBalancerThroughBGP", func(t *testing.T) { loadBalancerThroughBGP(t, l, false, true) })
}
