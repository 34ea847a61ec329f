// Package bgpcli prints BGP state the way `cilium bgp peers` and `cilium bgp
// routes` do, read from the status the node plugins write into each
// CiliumBGPNodeConfig. It only formats: the command fetches the objects.
package bgpcli

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// Peers prints one row per node, instance, peer and address family, with
// the session state and the route counts. A node that is not selected by
// any config has no NodeConfig and so no row, as in the seed's command.
func Peers(w io.Writer, configs []ciliumv2.CiliumBGPNodeConfig, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "Node\tLocal AS\tPeer AS\tPeer Address\tSession State\tUptime\tFamily\tReceived\tAdvertised")
	var notes []string
	for _, nc := range sortedByName(configs) {
		if len(nc.Status.BGPInstances) == 0 {
			notes = append(notes, nc.Name+": "+noStatusReason(nc))
			continue
		}
		for _, inst := range nc.Status.BGPInstances {
			for _, p := range inst.Peers {
				families := p.RouteCount
				if len(families) == 0 {
					families = []ciliumv2.BGPFamilyRouteCount{{}}
				}
				for _, f := range families {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
						nc.Name, asn(inst.LocalASN), asn(p.PeerASN), peerAddress(p), state(p.PeeringState),
						uptime(p.EstablishedTime, now), family(f.CiliumBGPFamily), count(f, f.Received), count(f, f.Advertised))
				}
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// RouteFilter chooses what Routes prints.
type RouteFilter struct {
	// Advertised prints each peer's Adj-RIB-Out; otherwise the local RIB.
	Advertised bool
	Family     ciliumv2.CiliumBGPFamily
	// Peer, when valid, keeps only that peer's routes (advertised only).
	Peer netip.Addr
	// VRouter, when non-zero, keeps only the instance with that local ASN.
	VRouter int64
}

// Routes prints the local RIB (available) or the per-peer advertised
// routes of every node, with their path attributes. Lists in status are
// limited; a line says how many routes were left out.
func Routes(w io.Writer, configs []ciliumv2.CiliumBGPNodeConfig, f RouteFilter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	if f.Advertised {
		fmt.Fprintln(tw, "Node\tVRouter\tPeer\tPrefix\tNextHop\tAttrs")
	} else {
		fmt.Fprintln(tw, "Node\tVRouter\tPrefix\tNextHop\tAttrs")
	}
	var notes []string
	for _, nc := range sortedByName(configs) {
		for _, inst := range nc.Status.BGPInstances {
			if f.VRouter != 0 && (inst.LocalASN == nil || *inst.LocalASN != f.VRouter) {
				continue
			}
			if !f.Advertised {
				shown := 0
				for _, r := range inst.Routes {
					if r.CiliumBGPFamily != f.Family {
						continue
					}
					shown++
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", nc.Name, asn(inst.LocalASN), r.Prefix, dash(r.NextHop), Attrs(r))
				}
				if int(inst.RoutesTotal) > len(inst.Routes) {
					notes = append(notes, fmt.Sprintf("%s/%s: %d of %d routes listed in status (all families); raise the node plugin's --status-route-limit to see more",
						nc.Name, asn(inst.LocalASN), len(inst.Routes), inst.RoutesTotal))
				}
				continue
			}
			for _, p := range inst.Peers {
				if f.Peer.IsValid() && p.PeerAddress != f.Peer.String() {
					continue
				}
				for _, r := range p.AdvertisedRoutes {
					if r.CiliumBGPFamily != f.Family {
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", nc.Name, asn(inst.LocalASN), peerAddress(p), r.Prefix, dash(r.NextHop), Attrs(r))
				}
				if total := advertisedTotal(p, f.Family); total > listed(p.AdvertisedRoutes, f.Family) {
					notes = append(notes, fmt.Sprintf("%s/%s peer %s: %d of %d advertised routes listed in status; raise the node plugin's --status-route-limit to see more",
						nc.Name, asn(inst.LocalASN), peerAddress(p), listed(p.AdvertisedRoutes, f.Family), total))
				}
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// Attrs renders a route's attributes in the seed's style:
// [{Nexthop: 198.18.0.11} {Communities: 65000:99} {LocalPref: 150}].
func Attrs(r ciliumv2.BGPRoute) string {
	var parts []string
	if r.NextHop != "" {
		parts = append(parts, "{Nexthop: "+r.NextHop+"}")
	}
	if len(r.Communities) > 0 {
		parts = append(parts, "{Communities: "+strings.Join(r.Communities, ", ")+"}")
	}
	if len(r.LargeCommunities) > 0 {
		parts = append(parts, "{LargeCommunity: "+strings.Join(r.LargeCommunities, ", ")+"}")
	}
	if r.LocalPreference != nil {
		parts = append(parts, "{LocalPref: "+strconv.FormatInt(*r.LocalPreference, 10)+"}")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// ParseFamily reads the "ipv4 unicast" words of the seed's command line.
func ParseFamily(afi, safi string) (ciliumv2.CiliumBGPFamily, error) {
	if afi != "ipv4" && afi != "ipv6" {
		return ciliumv2.CiliumBGPFamily{}, fmt.Errorf("unknown address family %q: want ipv4 or ipv6", afi)
	}
	if safi != "unicast" {
		return ciliumv2.CiliumBGPFamily{}, fmt.Errorf("unknown subsequent address family %q: only unicast is supported", safi)
	}
	return ciliumv2.CiliumBGPFamily{Afi: afi, Safi: safi}, nil
}

func sortedByName(configs []ciliumv2.CiliumBGPNodeConfig) []ciliumv2.CiliumBGPNodeConfig {
	out := append([]ciliumv2.CiliumBGPNodeConfig(nil), configs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// noStatusReason explains a node with a config but no reported instances.
func noStatusReason(nc ciliumv2.CiliumBGPNodeConfig) string {
	for _, c := range nc.Status.Conditions {
		if c.Type == ciliumv2.BGPNodeConditionReady && c.Status != "True" {
			return "not ready: " + c.Message
		}
	}
	return "no status reported (is the node plugin running?)"
}

func asn(a *int64) string {
	if a == nil {
		return "-"
	}
	return strconv.FormatInt(*a, 10)
}

func peerAddress(p ciliumv2.CiliumBGPNodePeerStatus) string {
	if p.PeerAddress == "" {
		return "(" + p.Name + ", no address)"
	}
	return p.PeerAddress
}

func state(s ciliumv2.BGPPeeringState) string {
	if s == "" {
		return string(ciliumv2.BGPPeeringStateUnknown)
	}
	return string(s)
}

// uptime is the time since the session was established, 0s when it is not.
func uptime(since *metav1.Time, now time.Time) string {
	if since == nil || since.IsZero() {
		return "0s"
	}
	return now.Sub(since.Time).Round(time.Second).String()
}

func family(f ciliumv2.CiliumBGPFamily) string {
	if f.Afi == "" {
		return "-"
	}
	return f.Afi + "/" + f.Safi
}

func count(f ciliumv2.BGPFamilyRouteCount, n int32) string {
	if f.Afi == "" {
		return "-"
	}
	return strconv.Itoa(int(n))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func advertisedTotal(p ciliumv2.CiliumBGPNodePeerStatus, f ciliumv2.CiliumBGPFamily) int {
	for _, c := range p.RouteCount {
		if c.CiliumBGPFamily == f {
			return int(c.Advertised)
		}
	}
	return 0
}

func listed(routes []ciliumv2.BGPRoute, f ciliumv2.CiliumBGPFamily) int {
	n := 0
	for _, r := range routes {
		if r.CiliumBGPFamily == f {
			n++
		}
	}
	return n
}
