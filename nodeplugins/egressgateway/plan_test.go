package egressgateway

import (
	"net/netip"
	"strings"
	"testing"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/nodeplugins/egressgateway/kernel"
)

var nodeAddrs = []address{
	{link: "eth0", prefix: netip.MustParsePrefix("198.18.0.12/24")},
	{link: "eth1", prefix: netip.MustParsePrefix("192.0.2.7/24")},
	{link: "eth1", prefix: netip.MustParsePrefix("192.0.2.8/24")},
}

func traffic(policy string) nodesv1alpha1.EgressTraffic {
	return nodesv1alpha1.EgressTraffic{Policy: policy, SourceIPs: []string{"10.0.1.5", "fd00::5"}, DestinationCIDRs: []string{"198.18.0.250/32", "::/0"}}
}

// Source side: to the floating IP unless this node holds it, to the gateway
// node unless it is this node, and a drop when there is no gateway. IPv6
// entries are left out.
func TestSteering(t *testing.T) {
	spec := nodesv1alpha1.EgressSpec{
		ClusterCIDRs: []string{"10.0.0.0/8", "198.18.0.11/32"},
		Steering: []nodesv1alpha1.EgressSteering{
			{EgressTraffic: traffic("floating"), EgressIP: "198.18.0.240"},
			{EgressTraffic: traffic("single"), GatewayNode: "n2", GatewayIP: "198.18.0.12"},
			{EgressTraffic: traffic("self"), GatewayNode: "n1", GatewayIP: "198.18.0.11"},
			{EgressTraffic: traffic("nowhere")},
		},
	}
	state, _, steered, problems := plan(spec, "n1", nil, nodeAddrs, "")
	if len(problems) != 0 || steered != 4 {
		t.Fatalf("problems %v, steered %d", problems, steered)
	}
	want := []kernel.Steer{
		{Via: netip.MustParseAddr("198.18.0.240")},
		{Via: netip.MustParseAddr("198.18.0.12")},
		{Drop: true},
	}
	if len(state.Steers) != len(want) {
		t.Fatalf("steers %+v", state.Steers)
	}
	for i, w := range want {
		s := state.Steers[i]
		if s.Via != w.Via || s.Drop != w.Drop || len(s.Sources) != 1 || len(s.Destinations) != 1 {
			t.Errorf("steer %d: %+v, want via %v drop %v with the IPv4 entries only", i, s, w.Via, w.Drop)
		}
	}
	if len(state.ClusterCIDRs) != 2 {
		t.Errorf("cluster CIDRs %v", state.ClusterCIDRs)
	}
	// Holding the floating IP: the local pods' traffic leaves from here.
	state, _, _, _ = plan(spec, "n1", map[string]string{"198.18.0.240": "eth0"}, nodeAddrs, "")
	if len(state.Steers) != 2 || state.Steers[0].Via.String() != "198.18.0.12" {
		t.Fatalf("while holding: steers %+v", state.Steers)
	}
}

func duty(egressIP, iface string) nodesv1alpha1.EgressGatewayDuty {
	return nodesv1alpha1.EgressGatewayDuty{EgressTraffic: traffic("p"), EgressIP: egressIP, Interface: iface, Candidates: []string{"n2", "n3"}}
}

// E15, E16, E17, E19: the source address a gateway translates to, and what
// happens when it has none.
func TestE15_E16_E17_E19_EgressAddress(t *testing.T) {
	for _, tc := range []struct {
		name        string
		duty        nodesv1alpha1.EgressGatewayDuty
		held        map[string]string
		defaultLink string
		wantIP      string
		wantState   string
		wantDrop    bool
		wantProblem string
	}{
		{name: "E15 egressIP held", duty: duty("198.18.0.240", ""), held: map[string]string{"198.18.0.240": "eth0"}, wantIP: "198.18.0.240", wantState: StateActive},
		// A standby translates too (it only ever receives the traffic once
		// it holds the address), so a takeover needs no extra pass.
		{name: "E15 egressIP standby", duty: duty("198.18.0.240", ""), wantIP: "198.18.0.240", wantState: StateStandby},
		{name: "E19 egressIP in no subnet", duty: duty("203.0.113.9", ""), wantIP: "203.0.113.9", wantState: StateStandby, wantProblem: "in no subnet"},
		{name: "E16 interface first address", duty: duty("", "eth1"), wantIP: "192.0.2.7", wantState: StateActive},
		{name: "E16 interface without address drops", duty: duty("", "eth9"), wantState: StateStandby, wantDrop: true, wantProblem: "eth9 is not up"},
		{name: "E17 default route interface", duty: duty("", ""), defaultLink: "eth1", wantIP: "192.0.2.7", wantState: StateActive},
		{name: "E17 no default route drops", duty: duty("", ""), wantState: StateStandby, wantDrop: true, wantProblem: "no default route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := nodesv1alpha1.EgressSpec{Gateways: []nodesv1alpha1.EgressGatewayDuty{tc.duty}}
			state, gws, _, problems := plan(spec, "n2", tc.held, nodeAddrs, tc.defaultLink)
			if len(gws) != 1 || gws[0].State != tc.wantState {
				t.Fatalf("gateways %+v, want state %s", gws, tc.wantState)
			}
			if tc.wantProblem == "" && len(problems) != 0 || tc.wantProblem != "" && !strings.Contains(strings.Join(problems, ";"), tc.wantProblem) {
				t.Fatalf("problems %v, want %q", problems, tc.wantProblem)
			}
			if len(state.SNATs) != 1 {
				if tc.wantIP == "" && !tc.wantDrop {
					return
				}
				t.Fatalf("SNATs %+v", state.SNATs)
			}
			s := state.SNATs[0]
			if s.Drop != tc.wantDrop || (tc.wantIP != "" && s.EgressIP.String() != tc.wantIP) {
				t.Fatalf("SNAT %+v, want %s drop %v", s, tc.wantIP, tc.wantDrop)
			}
		})
	}
}

// The announcer gets each floating egress IP once, on the interface whose
// subnet holds it.
func TestAnnouncements(t *testing.T) {
	spec := nodesv1alpha1.EgressSpec{
		Peers:    []nodesv1alpha1.L2Peer{{Node: "n2", Address: "198.18.0.12"}, {Node: "n3", Address: "198.18.0.13"}},
		Gateways: []nodesv1alpha1.EgressGatewayDuty{duty("198.18.0.240", ""), duty("198.18.0.240", ""), duty("", "eth1")},
	}
	a := announcements(spec, nodeAddrs)
	if len(a.Addresses) != 1 || a.Addresses[0].IP != "198.18.0.240" || a.Addresses[0].Interfaces[0] != "^eth0$" || len(a.Peers) != 2 {
		t.Fatalf("announcements %+v", a)
	}
}
