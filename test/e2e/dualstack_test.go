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
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", IPAMMode: "cluster-pool", IPFamily: "dual", CNI: "plexus", Datapath: "plexus"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 4, nil))
	if got := labtest.NodesOf(pods); len(got) != 2 {
		t.Fatalf("pods on %v, want both nodes", got)
	}

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
		dualStackThroughBGP(t, l)
	})
	t.Run("A28_DualStackLoadBalancerThroughL2", func(t *testing.T) {
		dualStackThroughL2(t, l)
	})
}

// dualStackThroughBGP: every node peers with the router at its IPv4 and its
// IPv6 address (one PeerConfig per family); a dual-stack LoadBalancer
// Service with an address of each family off the segment is advertised
// over the session of its family, both nodes' pod CIDRs too, and the
// external client behind the router reaches the Service over both
// families.
func dualStackThroughBGP(t *testing.T, l *labtest.Lab) {
	ctx := context.Background()
	v4 := nthAddr(l.Layout.BGPPoolPrefix(), 4)
	v6 := nthAddr(l.Layout.BGPPoolPrefixV6(), 4)
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
	for _, o := range []client.Object{
		&ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "dual-bgp"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{
			Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: l.Layout.BGPPoolPrefix().String()}, {Cidr: l.Layout.BGPPoolPrefixV6().String()}}}},
		peerConfig("ipv4"), peerConfig("ipv6"),
		&ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "router", Labels: map[string]string{"advertise": "router"}},
			Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{
				{AdvertisementType: ciliumv2.BGPPodCIDRAdvert},
				{AdvertisementType: ciliumv2.BGPServiceAdvert, Selector: all,
					Service: &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPLoadBalancerIPAddr}}},
			}}},
		&ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "dual"}, Spec: ciliumv2.CiliumBGPClusterConfigSpec{
			BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "main", LocalASN: ptr.To[int64](65001), Peers: []ciliumv2.CiliumBGPPeer{
				{Name: "router-v4", PeerAddress: ptr.To(l.Layout.RouterIP().String()), PeerASN: ptr.To[int64](lab.RouterASN), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "router-ipv4"}},
				{Name: "router-v6", PeerAddress: ptr.To(l.Layout.RouterIPv6().String()), PeerASN: ptr.To[int64](lab.RouterASN), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "router-ipv6"}},
			}}},
		}},
	} {
		if err := l.Cilium.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	labtest.LoadBalancerService(t, l, "echo-bgp", "echo", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Annotations = map[string]string{"lbipam.cilium.io/ips": v4.String() + "," + v6.String()}
	})
	nodes4 := []netip.Addr{l.Layout.NodeIP(1), l.Layout.NodeIP(2)}
	nodes6 := []netip.Addr{l.Layout.NodeIPv6(1), l.Layout.NodeIPv6(2)}
	waitRouterEstablished(t, l, append(slices.Clone(nodes4), nodes6...), 2*time.Minute)
	for _, want := range []struct {
		prefix netip.Prefix
		via    []netip.Addr
	}{{netip.PrefixFrom(v4, 32), nodes4}, {netip.PrefixFrom(v6, 128), nodes6}} {
		l.EventuallyIn(t, time.Minute, fmt.Sprintf("router has %s via both nodes", want.prefix), func() error {
			if got := labtest.NextHops(l.RouterRoutes(t, want.prefix)); !slices.Equal(got, want.via) {
				return fmt.Errorf("next hops %v, want %v", got, want.via)
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
			l.EventuallyIn(t, time.Minute, fmt.Sprintf("router has %s's pod CIDR %s", node, p), func() error {
				if got := labtest.NextHops(l.RouterRoutes(t, p)); !slices.Equal(got, want) {
					return fmt.Errorf("next hops %v, want %v", got, want)
				}
				return nil
			})
		}
	}
	for _, ip := range []netip.Addr{v4, v6} {
		l.EventuallyIn(t, 30*time.Second, "the external client reaches the Service at "+ip.String(), func() error {
			a, err := extFetch(l, "http://"+labtest.HostPort(ip.String(), 80)+"/")
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
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "vxlan", IPAMMode: "multi-pool", IPFamily: "dual", CNI: "plexus", Datapath: "plexus"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 4, nil))
	if got := labtest.NodesOf(pods); len(got) != 2 {
		t.Fatalf("pods on %v, want both nodes", got)
	}
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
