package desired

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func interfaceAdvert(name string) ciliumv2.BGPAdvertisement {
	return ciliumv2.BGPAdvertisement{AdvertisementType: ciliumv2.BGPInterfaceAdvert, Interface: &ciliumv2.BGPInterfaceOptions{Name: name}}
}

// Cilium 1.19's Interface advertisement: each usable address of an up
// interface is a host route (global unicast, and IPv4 link-local; not
// loopback, multicast or IPv6 link-local), in the peer's families; a
// missing or down interface advertises nothing and says so.
func TestInterfaceAdvertisement(t *testing.T) {
	in := baseInput()
	in.Advertisements = []ciliumv2.CiliumBGPAdvertisement{advert("lo-addrs", interfaceAdvert("lo"))}
	in.Interfaces = map[string]Interface{"lo": {Up: true, Addrs: addrs(
		"127.0.0.1", "::1", "198.18.100.1", "169.254.0.7", "fe80::1", "2001:db8::1", "198.18.100.1")}}
	st := Compute(in)
	noProblems(t, st)
	expectText(t, "routes", routesOf(t, st), lines(
		"    route 169.254.0.7/32", "    route 198.18.100.1/32", "    route 2001:db8::1/128"))

	in.PeerConfigs[0].Spec.Families = []ciliumv2.CiliumBGPFamilyWithAdverts{advertFamily("ipv6")}
	expectText(t, "ipv6 peer", routesOf(t, Compute(in)), lines("    route 2001:db8::1/128"))

	for name, ifaces := range map[string]map[string]Interface{
		`interface "lo" is down`:          {"lo": {Up: false, Addrs: addrs("198.18.100.1")}},
		`this node has no interface "lo"`: {},
	} {
		in.Interfaces = ifaces
		st := Compute(in)
		expectText(t, name, routesOf(t, st), "")
		want := []Problem{{Reason: ReasonInterfaceUnavailable,
			Message: `CiliumBGPAdvertisement "lo-addrs" spec.advertisements[0].interface: ` + name + `: nothing is advertised for it`}}
		if !reflect.DeepEqual(st.Problems, want) {
			t.Errorf("%s: problems %+v, want %+v", name, st.Problems, want)
		}
		if len(st.Instances) != 1 || len(st.Instances[0].Peers) != 1 {
			t.Errorf("%s: the peer must still run", name)
		}
	}
}

// Cilium 1.19's transport.sourceInterface: the interface's one usable
// address of the peer's family is the session's source; a node override's
// localAddress wins; no such address, or several, skip the peer with a
// problem that names them.
func TestPeerSourceInterface(t *testing.T) {
	in := baseInput()
	in.PeerConfigs[0].Spec.Transport = &ciliumv2.CiliumBGPTransport{SourceInterface: ptr.To("lo")}
	in.Interfaces = map[string]Interface{"lo": {Up: true, Addrs: addrs("127.0.0.1", "198.18.100.1", "2001:db8::1")}}
	st := Compute(in)
	noProblems(t, st)
	if got := firstPeer(t, st).LocalAddress; got != netip.MustParseAddr("198.18.100.1") {
		t.Errorf("local address %s, want 198.18.100.1 (the peer is IPv4)", got)
	}

	in.NodeConfig.Spec.BGPInstances[0].Peers[0].LocalAddress = ptr.To("198.18.0.11")
	if got := firstPeer(t, Compute(in)).LocalAddress; got != netip.MustParseAddr("198.18.0.11") {
		t.Errorf("local address %s, want the override's 198.18.0.11", got)
	}
	in.NodeConfig.Spec.BGPInstances[0].Peers[0].LocalAddress = nil

	for why, iface := range map[string]Interface{
		`interface "lo" has no usable ipv4 address`:                                       {Up: true, Addrs: addrs("127.0.0.1", "2001:db8::1")},
		`interface "lo" has several ipv4 addresses (198.18.100.1, 198.18.100.2), so none`: {Up: true, Addrs: addrs("198.18.100.2", "198.18.100.1")},
	} {
		in.Interfaces = map[string]Interface{"lo": iface}
		st := Compute(in)
		if len(st.Instances) != 1 || len(st.Instances[0].Peers) != 0 {
			t.Errorf("%s: peers %+v, want the peer skipped", why, st.Instances)
		}
		if len(st.Problems) != 1 || st.Problems[0].Reason != ReasonInterfaceUnavailable || !strings.Contains(st.Problems[0].Message, why) ||
			!strings.Contains(st.Problems[0].Message, "spec.transport.sourceInterface") {
			t.Errorf("%s: problems %+v", why, st.Problems)
		}
	}
}

func TestReferencedInterfaces(t *testing.T) {
	ads := []ciliumv2.CiliumBGPAdvertisement{advert("a", interfaceAdvert("lo"), podCIDRAdvert), advert("b", interfaceAdvert("eth1"))}
	pcs := []ciliumv2.CiliumBGPPeerConfig{
		peerConfig("p", ciliumv2.CiliumBGPPeerConfigSpec{Transport: &ciliumv2.CiliumBGPTransport{SourceInterface: ptr.To("lo")}}),
		peerConfig("q", ciliumv2.CiliumBGPPeerConfigSpec{}),
	}
	if got := ReferencedInterfaces(ads, pcs); !reflect.DeepEqual(got, []string{"eth1", "lo"}) {
		t.Errorf("got %v, want [eth1 lo]", got)
	}
}
