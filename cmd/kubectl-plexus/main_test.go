package main

import (
	"flag"
	"net/netip"
	"slices"
	"testing"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/cli/bgpcli"
)

func TestParse(t *testing.T) {
	v4 := ciliumv2.CiliumBGPFamily{Afi: "ipv4", Safi: "unicast"}
	v6 := ciliumv2.CiliumBGPFamily{Afi: "ipv6", Safi: "unicast"}
	for _, tc := range []struct {
		args []string
		want command
	}{
		{[]string{"bgp", "peers"}, command{peers: true}},
		{[]string{"bgp", "routes"}, command{routes: bgpcli.RouteFilter{Family: v4}}},
		{[]string{"bgp", "routes", "available", "ipv6", "unicast"}, command{routes: bgpcli.RouteFilter{Family: v6}}},
		{[]string{"bgp", "routes", "advertised", "ipv4", "unicast", "peer", "198.18.0.254"},
			command{routes: bgpcli.RouteFilter{Advertised: true, Family: v4, Peer: netip.MustParseAddr("198.18.0.254")}}},
		{[]string{"bgp", "routes", "available", "ipv4", "unicast", "vrouter", "65001"},
			command{routes: bgpcli.RouteFilter{Family: v4, VRouter: 65001}}},
		{[]string{"policy", "get", "backend-1"}, command{pod: "backend-1"}},
		{[]string{"status"}, command{status: true}},
		{[]string{"gateway", "status", "my-gateway"}, command{gateway: "my-gateway"}},
	} {
		got, err := parse(tc.args)
		if err != nil || got != tc.want {
			t.Errorf("parse(%v) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, bad := range [][]string{
		{}, {"bgp"}, {"lb", "peers"}, {"bgp", "peers", "x"}, {"bgp", "routes", "available", "ipv4", "multicast"},
		{"bgp", "routes", "available", "peer", "198.18.0.254"}, {"bgp", "routes", "advertised", "peer", "nope"},
		{"bgp", "routes", "vrouter", "-1"}, {"bgp", "routes", "vrouter"}, {"bgp", "routes", "sideways"},
		{"policy"}, {"policy", "get"}, {"policy", "list", "x"}, {"policy", "get", "a", "b"}, {"status", "now"},
		{"gateway"}, {"gateway", "status"}, {"gateway", "get", "x"}, {"gateway", "status", "a", "b"},
	} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%v) accepted", bad)
		}
	}
}

// Flags may follow the words, as with kubectl.
func TestFlagsAfterWords(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	ns := fs.String("n", "default", "")
	node := fs.String("node", "", "")
	words, err := parseInterleaved(fs, []string{"policy", "get", "web-1", "-n", "shop", "--node", "n2"})
	if err != nil || !slices.Equal(words, []string{"policy", "get", "web-1"}) || *ns != "shop" || *node != "n2" {
		t.Errorf("words %v, -n %q, --node %q, %v", words, *ns, *node, err)
	}
}
