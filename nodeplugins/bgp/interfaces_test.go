package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/testenv"
)

// readInterfaces reads what the kernel has: addresses of both families,
// up or down (a loopback is "unknown", which counts as up), and nothing for
// a missing interface.
func TestReadInterfacesFromTheKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "bgpif")
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	netnstest.Run(t, "ip", "-n", ns, "addr", "add", "198.18.77.1/32", "dev", "lo")
	netnstest.Run(t, "ip", "-n", ns, "addr", "add", "2001:db8:77::1/128", "dev", "lo")
	netnstest.Run(t, "ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "down0")
	netnstest.Run(t, "ip", "-n", ns, "addr", "add", "198.18.78.1/24", "dev", "down0")
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "up0", "up")
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "down0", "up")
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "up0", "down")
	var got map[string]desired.Interface
	if err := netnstest.Do(ns, func() (err error) {
		got, err = readInterfaces([]string{"lo", "down0", "missing0"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lo := got["lo"]
	if !lo.Up || !slices.Contains(lo.Addrs, netip.MustParseAddr("198.18.77.1")) || !slices.Contains(lo.Addrs, netip.MustParseAddr("2001:db8:77::1")) ||
		!slices.Contains(lo.Addrs, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("lo = %+v, want up with 127.0.0.1, 198.18.77.1 and 2001:db8:77::1", lo)
	}
	// down0 is administratively up but its peer is down: no carrier.
	if d, ok := got["down0"]; !ok || d.Up || !slices.Contains(d.Addrs, netip.MustParseAddr("198.18.78.1")) {
		t.Errorf("down0 = %+v (present %v), want down with 198.18.78.1", d, ok)
	}
	if _, ok := got["missing0"]; ok || len(got) != 2 {
		t.Errorf("got %v, want lo and down0 only", got)
	}
}

// fakeInterfaces is a node's interfaces that a test changes.
type fakeInterfaces struct {
	mu     sync.Mutex
	ifaces map[string]desired.Interface
}

func (f *fakeInterfaces) set(name string, iface desired.Interface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ifaces = map[string]desired.Interface{name: iface}
}

func (f *fakeInterfaces) read(names []string) (map[string]desired.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]desired.Interface{}
	for _, n := range names {
		if i, ok := f.ifaces[n]; ok {
			out[n] = i
		}
	}
	return out, nil
}

// An Interface advertisement follows the interface with no API change:
// its address reaches the router, a changed address replaces it, and an
// interface going down withdraws it and says so in the node's status.
func TestInterfaceAdvertisementFollowsTheInterface(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	c := env.Client
	port := freePort(t)
	rcv := startReceiver(t, port)
	node := "bgp-iface-node"
	objs := []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}},
		&ciliumv2.CiliumBGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp-iface", Labels: map[string]string{"test": "bgp-iface"}},
			Spec: ciliumv2.CiliumBGPAdvertisementSpec{Advertisements: []ciliumv2.BGPAdvertisement{{
				AdvertisementType: ciliumv2.BGPInterfaceAdvert, Interface: &ciliumv2.BGPInterfaceOptions{Name: "anycast0"},
			}}}},
		&ciliumv2.CiliumBGPPeerConfig{ObjectMeta: metav1.ObjectMeta{Name: "bgp-iface"}, Spec: ciliumv2.CiliumBGPPeerConfigSpec{
			Transport: &ciliumv2.CiliumBGPTransport{PeerPort: ptr.To(int32(port))},
			Timers:    &ciliumv2.CiliumBGPTimers{ConnectRetryTimeSeconds: ptr.To[int32](1), HoldTimeSeconds: ptr.To[int32](9), KeepAliveTimeSeconds: ptr.To[int32](3)},
			Families: []ciliumv2.CiliumBGPFamilyWithAdverts{{CiliumBGPFamily: ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"},
				Advertisements: &metav1.LabelSelector{MatchLabels: map[string]string{"test": "bgp-iface"}}}},
		}},
		&ciliumv2.CiliumBGPNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: ciliumv2.CiliumBGPNodeSpec{BGPInstances: []ciliumv2.CiliumBGPNodeInstance{{
			Name: "main", LocalASN: ptr.To[int64](65001), RouterID: ptr.To("127.0.0.1"),
			Peers: []ciliumv2.CiliumBGPNodePeer{{Name: "router", PeerAddress: ptr.To("127.0.0.2"), PeerASN: ptr.To[int64](65000),
				LocalAddress: ptr.To("127.0.0.1"), PeerConfigRef: &ciliumv2.PeerConfigReference{Name: "bgp-iface"}}},
		}}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
	ifaces := &fakeInterfaces{}
	ifaces.set("anycast0", desired.Interface{Up: true, Addrs: []netip.Addr{netip.MustParseAddr("198.18.77.1")}})
	cfg := Config{NodeName: node, IPAMMode: desired.IPAMClusterPool, IPv4: true, SecretNamespace: "kube-system",
		StatusReport: true, RouteLimit: 10, StatusInterval: time.Second, InterfacePoll: 100 * time.Millisecond}
	stop := runPlugin(t, cfg, func(p *Plugin) { p.Interfaces = ifaces.read })
	defer stop()

	received := func(want ...string) func() error {
		return func() error {
			var got []string
			err := rcv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}},
				func(d *api.Destination) { got = append(got, d.Prefix) })
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("the router holds %v, want %v", got, want)
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "the interface's address at the router", received("198.18.77.1/32"))
	ifaces.set("anycast0", desired.Interface{Up: true, Addrs: []netip.Addr{netip.MustParseAddr("198.18.77.2"), netip.MustParseAddr("fe80::1")}})
	eventually(t, 10*time.Second, "the changed address replaces the old one", received("198.18.77.2/32"))
	ifaces.set("anycast0", desired.Interface{Up: false, Addrs: []netip.Addr{netip.MustParseAddr("198.18.77.2")}})
	eventually(t, 10*time.Second, "a down interface is withdrawn", received())
	eventually(t, 10*time.Second, "the node's status says why", func() error {
		var nc ciliumv2.CiliumBGPNodeConfig
		if err := c.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
			return err
		}
		if cond := condition(&nc, ciliumv2.BGPNodeConditionReady); cond == nil || cond.Reason != desired.ReasonInterfaceUnavailable {
			return fmt.Errorf("Ready %+v, want reason %s", cond, desired.ReasonInterfaceUnavailable)
		}
		return nil
	})
}
