package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// The BGP tests run on one 3-node lab (native routing, cluster-pool, Plexus
// CNI and datapath) with the BGP controller and plexus-bgp-node on every
// node. The lab's router (FRR, AS 65000) peers with every node; a
// ClusterConfig selects nodes 1 and 2 (label bgp=true) as AS 65001, with
// the router and the lab's BIRD (AS 65100) as peers. LoadBalancer addresses
// come from a pool that only BGP makes reachable, and the external client
// behind the router reaches them over the routes the nodes advertise.
// Subtests are named after the BGP checklist rows and run in order.

const bgpPlugin = lab.BGPNode

type bgpLab struct {
	*labtest.Lab
	c        client.Client
	router   labtest.Router
	selected []netip.Addr // node addresses of the selected nodes (1 and 2)
	nodeIP   map[string]netip.Addr
}

func TestBGP(t *testing.T) {
	labtest.RequireRouter(t)
	l := labtest.Start(t, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	for i := 1; i <= 3; i++ {
		if n := l.Layout.NodeName(i); !l.Running(n, bgpPlugin) {
			t.Fatalf("%s does not run on %s: the lab did not start it (see its output above)", bgpPlugin, n)
		}
	}
	b := &bgpLab{Lab: l, c: l.Cilium, router: l.Router(t), nodeIP: map[string]netip.Addr{}}
	for i := 1; i <= 3; i++ {
		b.nodeIP[l.Layout.NodeName(i)] = l.Layout.NodeIP(i)
	}
	n1, n2, n3 := l.Layout.NodeName(1), l.Layout.NodeName(2), l.Layout.NodeName(3)
	b.selected = []netip.Addr{b.nodeIP[n1], b.nodeIP[n2]}
	ctx := context.Background()
	for _, n := range []string{n1, n2} {
		b.LabelNode(t, n, "bgp", "true")
	}
	labtest.Deploy(t, l, labtest.Echo("web", 3, nil))
	b.create(t,
		&ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "lab-bgp"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{
			Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: l.Layout.BGPPoolPrefix().String()}}}},
		&ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{
			Timers:          &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](1), HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
			GracefulRestart: &ciliumv2.CiliumBGPNeighborGracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](60)},
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{
				CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"},
				Advertisements:  &metav1.LabelSelector{MatchLabels: map[string]string{"advertise": "router"}},
			}},
		}},
		&ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "router", Labels: map[string]string{"advertise": "router"}},
			Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{
				{AdvertisementType: ciliumv2.BGPPodCIDRAdvert, Attributes: &ciliumv2.BGPAttributes{
					Communities: &ciliumv2.BGPCommunities{Standard: []ciliumv2.BGPStandardCommunity{"65000:100"}}}},
				{AdvertisementType: ciliumv2.BGPServiceAdvert,
					Service: &ciliumv2.BGPServiceOptions{Addresses: []ciliumv2.BGPServiceAddressType{ciliumv2.BGPLoadBalancerIPAddr}},
					Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "never-set", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"}}}},
					Attributes: &ciliumv2.BGPAttributes{Communities: &ciliumv2.BGPCommunities{
						Standard: []ciliumv2.BGPStandardCommunity{"65000:200"}, WellKnown: []ciliumv2.BGPWellKnownCommunity{"no-export"},
						Large: []ciliumv2.BGPLargeCommunity{"64512:100:50"}}}},
			}}},
	)
	peers := []ciliumv2.CiliumBGPPeer{{Name: "router", PeerAddress: ptr.To(b.router.IP.String()), PeerASN: ptr.To[int64](int64(b.router.ASN)),
		PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "router"}}}
	bird, haveBird := b.bird(t)
	if haveBird {
		peers = append(peers, ciliumv2.CiliumBGPPeer{Name: "bird", PeerAddress: ptr.To(bird.IP.String()), PeerASN: ptr.To[int64](int64(bird.ASN)),
			PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "router"}})
	}
	b.create(t, &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "lab"}, Spec: ciliumv2.CiliumBGPClusterConfigSpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bgp": "true"}},
		BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "main", LocalASN: ptr.To[int64](65001), Peers: peers}},
	}})

	t.Run("B2_B8_B15_B64_SessionsEstablished", func(t *testing.T) {
		waitRouterEstablished(t, l, b.selected, time.Minute)
		for _, n := range []string{n1, n2} {
			nc := b.waitNodeReady(t, n, time.Minute)
			p := peerStatus(t, nc, "router")
			if p.PeeringState != ciliumv2.BGPPeeringStateEstablished || p.EstablishedTime == nil {
				t.Errorf("%s: router session %s since %v", n, p.PeeringState, p.EstablishedTime)
			}
			if p.Timers == nil || ptr.Deref(p.Timers.AppliedHoldTimeSeconds, 0) != 9 || ptr.Deref(p.Timers.AppliedKeepaliveSeconds, 0) != 3 {
				t.Errorf("%s: applied timers %+v, want hold 9 keepalive 3", n, p.Timers)
			}
		}
		var nc ciliumv2.CiliumBGPNodeConfig
		if err := b.c.Get(ctx, client.ObjectKey{Name: n3}, &nc); err == nil {
			t.Errorf("%s is not selected but has a CiliumBGPNodeConfig", n3)
		}
		if st := b.routerNeighbors(t)[b.nodeIP[n3]].State; st == "Established" {
			t.Errorf("router has an established session with unselected %s", n3)
		}
		l.EventuallyIn(t, 30*time.Second, "ClusterConfig lab Ready with every session established", func() error {
			var cc ciliumv2.CiliumBGPClusterConfig
			if err := b.c.Get(ctx, client.ObjectKey{Name: "lab"}, &cc); err != nil {
				return err
			}
			want := int32(2 * len(peers))
			if c := meta.FindStatusCondition(cc.Status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue || cc.Status.PeersEstablished != want {
				return fmt.Errorf("Ready %+v, %d of %d established (want %d)", c, cc.Status.PeersEstablished, cc.Status.PeersTotal, want)
			}
			return nil
		})
	})

	t.Run("B67_LogsTagged", func(t *testing.T) {
		for _, f := range []string{n1 + "-" + bgpPlugin + ".log", "plexus-bgp-controller.log"} {
			raw, err := os.ReadFile(filepath.Join(l.Layout.LogDir(), f))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"plexus-bgp-controller.log": `"subsys":"bgp-cp-operator"`}[f]
			if want == "" {
				want = `"subsys":"bgp-control-plane"`
			}
			if !strings.Contains(string(raw), want) {
				t.Errorf("%s has no line tagged %s", f, want)
			}
		}
	})

	t.Run("B62_CLIPeers", func(t *testing.T) {
		out := l.Kubectl(t, "kubectl-plexus", "bgp", "peers")
		for _, n := range []string{n1, n2} {
			if !hasRow(out, n, "65001", "65000", b.router.IP.String(), "established", "ipv4/unicast") {
				t.Errorf("no established row for %s and the router in:\n%s", n, out)
			}
		}
		if strings.Contains(out, n3) {
			t.Errorf("unselected %s listed:\n%s", n3, out)
		}
	})

	t.Run("B27_B40_PodCIDRs", func(t *testing.T) {
		for _, n := range []string{n1, n2} {
			cidr := b.podCIDR(t, n)
			paths := waitRouterPrefix(t, l, cidr, []netip.Addr{b.nodeIP[n]}, 30*time.Second)
			if !slices.Contains(paths[0].Communities, "65000:100") {
				t.Errorf("%s from %s: communities %v, want 65000:100", cidr, n, paths[0].Communities)
			}
		}
		third := b.podCIDR(t, n3)
		if paths := l.RouterRoutes(t, third); len(paths) > 0 {
			t.Errorf("unselected %s's pod CIDR %s is at the router: %+v", n3, third, paths)
		}
	})

	lbIP := b.poolAddr(4)
	t.Run("B31_B37_B41_LoadBalancerReachedOverBGP", func(t *testing.T) {
		labtest.LoadBalancerService(t, l, "web", "web", func(s *corev1.Service) {
			s.Annotations = map[string]string{"lbipam.cilium.io/ips": lbIP.String()}
		})
		if got := l.LoadBalancerIP(t, "web", 30*time.Second); got != lbIP {
			t.Fatalf("web got %s, want %s", got, lbIP)
		}
		host := netip.PrefixFrom(lbIP, 32)
		paths := waitRouterPrefix(t, l, host, b.selected, 30*time.Second)
		for _, p := range paths {
			if !slices.Contains(p.Communities, "65000:200") || !slices.ContainsFunc(p.Communities, isNoExport) ||
				!slices.Contains(p.LargeCommunities, "64512:100:50") || p.LocalPref != nil {
				t.Errorf("path via %s: communities %v large %v local-pref %v; want 65000:200, no-export, 64512:100:50 and no local preference (eBGP, B42)",
					p.NextHop, p.Communities, p.LargeCommunities, p.LocalPref)
			}
		}
		if haveBird {
			l.EventuallyIn(t, 30*time.Second, "BIRD learns "+host.String()+" from both nodes", func() error {
				if got := labtest.NextHops(l.BirdRoutes(t, host)); !slices.Equal(got, b.selected) {
					return fmt.Errorf("BIRD next hops %v", got)
				}
				return nil
			})
		}
		l.EventuallyIn(t, 30*time.Second, "the external client reaches "+lbIP.String(), func() error {
			_, err := extFetch(l, "http://"+lbIP.String()+"/")
			return err
		})
	})

	t.Run("B63_CLIRoutes", func(t *testing.T) {
		out := l.Kubectl(t, "kubectl-plexus", "bgp", "routes", "advertised", "ipv4", "unicast", "peer", b.router.IP.String())
		for _, n := range []string{n1, n2} {
			if !hasRow(out, n, "65001", netip.PrefixFrom(lbIP, 32).String(), "65000:200", "65535:65281", "64512:100:50") {
				t.Errorf("no advertised %s row with its communities for %s:\n%s", lbIP, n, out)
			}
		}
		out = l.Kubectl(t, "kubectl-plexus", "bgp", "routes", "available", "ipv4", "unicast")
		if !hasRow(out, n1, b.podCIDR(t, n1).String()) {
			t.Errorf("%s's pod CIDR missing from the local RIB listing:\n%s", n1, out)
		}
	})

	t.Run("B38_ETPLocalFollowsEndpoints", func(t *testing.T) {
		d := labtest.Echo("local", 1, nil)
		d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": n1}
		labtest.Deploy(t, l, d)
		ip := b.poolAddr(5)
		labtest.LoadBalancerService(t, l, "local", "local", func(s *corev1.Service) {
			s.Annotations = map[string]string{"lbipam.cilium.io/ips": ip.String()}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		})
		host := netip.PrefixFrom(ip, 32)
		waitRouterPrefix(t, l, host, []netip.Addr{b.nodeIP[n1]}, 30*time.Second)
		l.EventuallyIn(t, 30*time.Second, "the external client reaches the local-only Service", func() error {
			a, err := extFetch(l, "http://"+ip.String()+"/")
			if err == nil && a.Node != n1 {
				return fmt.Errorf("answered on %s", a.Node)
			}
			return err
		})
		scale(t, l, "local", 0)
		waitRouterNoPrefix(t, l, host, 30*time.Second)
	})

	t.Run("B23_GracefulRestartKeepsRoutesAndConnection", func(t *testing.T) {
		host := netip.PrefixFrom(lbIP, 32)
		var dials atomic.Int32
		c := l.ExternalClientHTTP()
		c.Timeout = 2 * time.Second
		tr := c.Transport.(*http.Transport)
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dial(ctx, network, addr)
		}
		tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = 1, 1
		url := "http://" + lbIP.String() + "/"
		if _, err := labtest.FetchWith(c, url); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		failures := make(chan error, 1000)
		var requests atomic.Int32
		// The router's paths to the address while the plugins restart:
		// kept (stale) for both nodes, never withdrawn.
		fewest, ribDone := make(chan int, 1), make(chan struct{})
		go func() {
			least := len(b.selected)
			defer func() { fewest <- least }()
			for {
				select {
				case <-ribDone:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if rib, err := l.RouterRIB("ipv4"); err == nil {
					least = min(least, len(rib[host]))
				}
			}
		}()
		go func() {
			for {
				select {
				case <-stop:
					close(failures)
					return
				case <-time.After(50 * time.Millisecond):
				}
				requests.Add(1)
				if _, err := labtest.FetchWith(c, url); err != nil {
					failures <- err
				}
			}
		}()
		before := b.routerNeighbors(t)
		for _, n := range []string{n1, n2} {
			if err := lab.Restart(l.StateRoot, l.Options.Name, n, bgpPlugin, testLog{t}); err != nil {
				t.Fatal(err)
			}
		}
		// The restarted plugins open new sessions: the router counts one
		// more establishment per node, and until then kept the routes.
		l.EventuallyIn(t, time.Minute, "the router re-establishes both sessions", func() error {
			now := b.routerNeighbors(t)
			for _, a := range b.selected {
				if now[a].State != "Established" || now[a].Established <= before[a].Established {
					return fmt.Errorf("%s: %s, %d establishments (before: %d)", a, now[a].State, now[a].Established, before[a].Established)
				}
			}
			return nil
		})
		waitRouterPrefix(t, l, host, b.selected, 30*time.Second)
		close(ribDone)
		if n := <-fewest; n < len(b.selected) {
			t.Errorf("the router held only %d paths to %s during the restart; graceful restart should keep all %d", n, host, len(b.selected))
		}
		close(stop)
		var errs []error
		for err := range failures {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			t.Errorf("%d of %d requests failed across the restart, first: %v", len(errs), requests.Load(), errs[0])
		}
		if d := dials.Load(); d != 1 {
			t.Errorf("the client dialled %d connections; the first one should have carried every request", d)
		}
		for _, p := range l.RouterRoutes(t, host) {
			if p.Stale {
				t.Errorf("path via %s still stale after the restart", p.NextHop)
			}
		}
		t.Logf("%d requests over one connection while both plugins restarted", requests.Load())
	})

	t.Run("B20_MD5", func(t *testing.T) {
		if _, err := l.Client.CoreV1().Secrets(lab.BGPSecretNamespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "bgp-router"}, StringData: map[string]string{"password": "s3cret"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, a := range b.selected {
			l.SetRouterPassword(t, a, "s3cret")
		}
		b.patchPeerConfig(t, `{"spec":{"authSecretRef":"bgp-router"}}`)
		t.Cleanup(func() {
			b.patchPeerConfig(t, `{"spec":{"authSecretRef":null}}`)
			for _, a := range b.selected {
				l.SetRouterPassword(t, a, "")
			}
		})
		waitRouterEstablished(t, l, b.selected, time.Minute)
		// A wrong key on the router's side for node 2: its segments are
		// dropped, so the session never comes back; node 1 is unaffected.
		l.SetRouterPassword(t, b.selected[1], "wrong")
		l.EventuallyIn(t, 30*time.Second, "node 2's session drops", func() error {
			if st := b.routerNeighbors(t)[b.selected[1]].State; st == "Established" {
				return fmt.Errorf("still %s", st)
			}
			return nil
		})
		time.Sleep(5 * time.Second) // five connect retries: none may succeed
		nb := b.routerNeighbors(t)
		if nb[b.selected[1]].State == "Established" {
			t.Errorf("session with a mismatched key established")
		}
		if nb[b.selected[0]].State != "Established" {
			t.Errorf("node 1's session (matching key) is %s", nb[b.selected[0]].State)
		}
		nc := b.nodeConfig(t, n2)
		if p := peerStatus(t, nc, "router"); p.PeeringState == ciliumv2.BGPPeeringStateEstablished {
			t.Errorf("%s reports the mismatched session established", n2)
		}
		l.SetRouterPassword(t, b.selected[1], "s3cret")
		waitRouterEstablished(t, l, b.selected, time.Minute)
	})

	t.Run("B66_UnselectedNodeWithdraws", func(t *testing.T) {
		b.LabelNode(t, n2, "bgp", "")
		l.EventuallyIn(t, 30*time.Second, n2+"'s NodeConfig deleted", func() error {
			var nc ciliumv2.CiliumBGPNodeConfig
			if err := b.c.Get(ctx, client.ObjectKey{Name: n2}, &nc); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
		l.EventuallyIn(t, 30*time.Second, "the router's session with "+n2+" closes", func() error {
			if st := b.routerNeighbors(t)[b.nodeIP[n2]].State; st == "Established" {
				return fmt.Errorf("still %s", st)
			}
			return nil
		})
		waitRouterPrefix(t, l, netip.PrefixFrom(lbIP, 32), []netip.Addr{b.nodeIP[n1]}, 30*time.Second)
	})

	t.Run("B69_ControllerDownKeepsSessions", func(t *testing.T) {
		if err := lab.KillComponent(l.StateRoot, l.Options.Name, "", "plexus-bgp-controller", testLog{t}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lab.StartComponent(l.StateRoot, l.Options.Name, "", "plexus-bgp-controller", testLog{t}) })
		// A config for node 3 while the controller is down: not provisioned.
		b.create(t, &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "late"}, Spec: ciliumv2.CiliumBGPClusterConfigSpec{
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n3}},
			BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "main", LocalASN: ptr.To[int64](65001), Peers: peers[:1]}},
		}})
		time.Sleep(5 * time.Second)
		var nc ciliumv2.CiliumBGPNodeConfig
		if err := b.c.Get(ctx, client.ObjectKey{Name: n3}, &nc); err == nil {
			t.Errorf("%s got a NodeConfig with the controller down", n3)
		}
		if st := b.routerNeighbors(t)[b.nodeIP[n1]].State; st != "Established" {
			t.Errorf("%s's session is %s with the controller down", n1, st)
		}
		waitRouterPrefix(t, l, netip.PrefixFrom(lbIP, 32), []netip.Addr{b.nodeIP[n1]}, time.Second)
		if err := lab.StartComponent(l.StateRoot, l.Options.Name, "", "plexus-bgp-controller", testLog{t}); err != nil {
			t.Fatal(err)
		}
		waitRouterEstablished(t, l, []netip.Addr{b.nodeIP[n1], b.nodeIP[n3]}, time.Minute)
	})
}

func (b *bgpLab) bird(t *testing.T) (labtest.Bird, bool) {
	s, _, err := lab.Open(b.StateRoot, b.Options.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Bird == "" {
		t.Log("the lab runs no BIRD: the second peer is left out")
		return labtest.Bird{}, false
	}
	return b.Bird(t), true
}

func (b *bgpLab) create(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := b.c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func (b *bgpLab) patchPeerConfig(t *testing.T, patch string) {
	t.Helper()
	pc := &ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "router"}}
	if err := b.c.Patch(context.Background(), pc, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func (b *bgpLab) nodeConfig(t *testing.T, node string) *ciliumv2.CiliumBGPNodeConfig {
	t.Helper()
	var nc ciliumv2.CiliumBGPNodeConfig
	if err := b.c.Get(context.Background(), client.ObjectKey{Name: node}, &nc); err != nil {
		t.Fatal(err)
	}
	return &nc
}

// waitNodeReady waits until node's NodeConfig reports Ready for its
// current generation.
func (b *bgpLab) waitNodeReady(t *testing.T, node string, timeout time.Duration) *ciliumv2.CiliumBGPNodeConfig {
	t.Helper()
	var nc ciliumv2.CiliumBGPNodeConfig
	b.EventuallyIn(t, timeout, node+"'s CiliumBGPNodeConfig Ready", func() error {
		if err := b.c.Get(context.Background(), client.ObjectKey{Name: node}, &nc); err != nil {
			return err
		}
		c := meta.FindStatusCondition(nc.Status.Conditions, "Ready")
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != nc.Generation {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
	return &nc
}

func peerStatus(t *testing.T, nc *ciliumv2.CiliumBGPNodeConfig, name string) ciliumv2.CiliumBGPNodePeerStatus {
	t.Helper()
	for _, inst := range nc.Status.BGPInstances {
		for _, p := range inst.Peers {
			if p.Name == name {
				return p
			}
		}
	}
	t.Fatalf("%s: no status for peer %s in %+v", nc.Name, name, nc.Status)
	return ciliumv2.CiliumBGPNodePeerStatus{}
}

func (b *bgpLab) routerNeighbors(t *testing.T) map[netip.Addr]labtest.RouterNeighbor {
	t.Helper()
	n, err := b.RouterNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// podCIDR is node's IPv4 pod CIDR from its CiliumNode.
func (b *bgpLab) podCIDR(t *testing.T, node string) netip.Prefix {
	t.Helper()
	var cn ciliumv2.CiliumNode
	if err := b.c.Get(context.Background(), client.ObjectKey{Name: node}, &cn); err != nil {
		t.Fatal(err)
	}
	for _, c := range cn.Spec.IPAM.PodCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
			return p
		}
	}
	t.Fatalf("%s has no IPv4 pod CIDR: %+v", node, cn.Spec.IPAM)
	return netip.Prefix{}
}

// poolAddr is the i-th address of the BGP-only LoadBalancer pool.
func (b *bgpLab) poolAddr(i int) netip.Addr {
	a := b.Layout.BGPPoolPrefix().Addr()
	for range i {
		a = a.Next()
	}
	return a
}

// hasRow reports whether a line of a table holds every field.
func hasRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(fields, func(f string) bool { return !strings.Contains(line, f) }) {
			return true
		}
	}
	return false
}

// isNoExport matches no-export as FRR names it.
func isNoExport(c string) bool { return c == "noExport" || c == "65535:65281" }

func scale(t *testing.T, l *labtest.Lab, name string, replicas int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := l.Client.AppsV1().Deployments(labtest.Namespace).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
