package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/bench/benchutil"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// BenchmarkBGPServiceToRouter measures, on a 3-node lab whose nodes all
// peer with the lab's FRR router, the time from a LoadBalancer Service
// getting its address (LB-IPAM's status write, seen through a watch) to the
// router's kernel installing the route to it (zebra's netlink message, seen
// by a netlink subscription in the router's namespace): LB-IPAM's write, the
// node plugins' watch, GoBGP's UPDATE, FRR's best path and zebra together.
// Each iteration creates one Service with an address from the BGP-only
// pool, then deletes it and waits for the withdrawal (not timed).
func BenchmarkBGPServiceToRouter(b *testing.B) {
	labtest.RequireRouter(b)
	l := labtest.Start(b, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	ctx := context.Background()
	router := l.Router(b)
	var nodes []netip.Addr
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, l.Layout.NodeIP(i))
	}
	bl := &bgpLab{Lab: l, c: l.Cilium, router: router}
	bl.create(b,
		&ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "lab-bgp"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{
			Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: l.Layout.BGPPoolPrefix().String()}}}},
		&ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{
			Timers: &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](1)},
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"},
				Advertisements: &metav1.LabelSelector{MatchLabels: map[string]string{"advertise": "router"}}}},
		}},
		&ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "router", Labels: map[string]string{"advertise": "router"}},
			Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{{
				AdvertisementType: ciliumv2.BGPServiceAdvert,
				Service:           &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPLoadBalancerIPAddr}},
				Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "bgp"}},
			}}}},
		&ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "lab"}, Spec: ciliumv2.CiliumBGPClusterConfigSpec{
			BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "main", LocalASN: ptr.To[int64](65001), Peers: []ciliumv2.CiliumBGPPeer{{
				Name: "router", PeerAddress: ptr.To(router.IP.String()), PeerASN: ptr.To[int64](int64(router.ASN)),
				PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "router"}}}}},
		}},
	)
	waitRouterEstablished(b, l, nodes, time.Minute)

	h, err := netns.GetFromName(router.Netns)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	updates, done := make(chan netlink.RouteUpdate, 256), make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &h}); err != nil {
		b.Fatal(err)
	}
	// routeEvent waits for the router's kernel to add (or delete) a route
	// to prefix and returns when the message arrived.
	routeEvent := func(prefix netip.Prefix, add bool) time.Time {
		deadline := time.After(30 * time.Second)
		for {
			select {
			case u := <-updates:
				if u.Dst == nil || u.Dst.String() != prefix.String() {
					continue
				}
				if (u.Type == unix.RTM_NEWROUTE) == add {
					return time.Now()
				}
			case <-deadline:
				b.Fatalf("no route %s (add %t) at the router within 30s", prefix, add)
			}
		}
	}

	var samples []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		ip := bl.poolAddr(i%20 + 1)
		name := fmt.Sprintf("bench-%d", i)
		i++
		w, err := l.Client.CoreV1().Services(labtest.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		if err != nil {
			b.Fatal(err)
		}
		labtest.LoadBalancerService(b, l, name, "none", func(s *corev1.Service) {
			s.Labels = map[string]string{"bench": "bgp"}
			s.Annotations = map[string]string{"lbipam.cilium.io/ips": ip.String()}
		})
		b.StartTimer()
		got := addressAssigned(b, w.ResultChan())
		w.Stop()
		installed := routeEvent(netip.PrefixFrom(ip, 32), true)
		b.StopTimer()
		samples = append(samples, installed.Sub(got))
		if err := l.Client.CoreV1().Services(labtest.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		routeEvent(netip.PrefixFrom(ip, 32), false)
		b.StartTimer()
	}
	b.ReportMetric(float64(benchutil.Median(samples).Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(benchutil.Percentile(samples, 0.99).Microseconds())/1000, "ms-p99")
	b.Logf("address to route at the router over %d Services: median %v, p99 %v, min %v", len(samples),
		benchutil.Median(samples), benchutil.Percentile(samples, 0.99), benchutil.Percentile(samples, 0.0001))
}

// addressAssigned returns when a watched Service first shows an ingress
// address.
func addressAssigned(b *testing.B, events <-chan watch.Event) time.Time {
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				b.Fatal("watch closed")
			}
			if s, isSvc := ev.Object.(*corev1.Service); isSvc && len(s.Status.LoadBalancer.Ingress) > 0 {
				return time.Now()
			}
		case <-deadline:
			b.Fatal("no address within 30s")
		}
	}
}
