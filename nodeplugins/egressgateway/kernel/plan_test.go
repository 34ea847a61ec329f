package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestCompileSlots(t *testing.T) {
	a, b := "198.18.0.240", "198.18.0.241"
	p, err := compile(State{Steers: []Steer{
		steerVia(a, podTo("1.0.0.0/8")),
		{Match: podTo("2.0.0.0/8"), Drop: true},
		steerVia(b, podTo("3.0.0.0/8")),
		steerVia(a, podTo("4.0.0.0/8")),
		steerVia("fd00::1", podTo("5.0.0.0/8")), // IPv6 next hop: left out
		steerVia(b, Match{Sources: []netip.Addr{addr("fd00::2")}, Destinations: prefixes("6.0.0.0/8")}), // no IPv4 source
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range p.steers {
		got = append(got, fmt.Sprintf("%d:%d:%v", st.index, st.slot, st.drop))
	}
	if s := strings.Join(got, " "); s != "0:1:false 1:0:true 2:2:false 3:1:false" {
		t.Errorf("steers (index:slot:drop) %s", s)
	}
	if fmt.Sprint(p.vias) != "["+a+" "+b+"]" {
		t.Errorf("vias %v", p.vias)
	}
}

func TestCompileRefusesUndecided(t *testing.T) {
	if _, err := compile(State{Steers: []Steer{{Match: podTo("1.0.0.0/8")}}}); err == nil {
		t.Error("a Steer with neither Via nor Drop was accepted")
	}
	if _, err := compile(State{SNATs: []SNAT{{Match: podTo("1.0.0.0/8")}}}); err == nil {
		t.Error("an SNAT with neither EgressIP nor Drop was accepted")
	}
}

func TestPlanEqual(t *testing.T) {
	s := State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{steerVia(egressIP, podTo(extIP, "10.9.0.0/16"))}}
	same := State{ClusterCIDRs: append(prefixes("10.1.0.0/16"), clusterCIDRs...), Steers: []Steer{steerVia(egressIP, podTo("10.9.0.0/16", extIP, extIP))}}
	other := State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{steerVia(egressIP2, podTo(extIP, "10.9.0.0/16"))}}
	p, _ := compile(s)
	q, _ := compile(same)
	r, _ := compile(other)
	if !p.equal(q) {
		t.Error("equivalent states compile to different plans")
	}
	if p.equal(r) {
		t.Error("a different Via compiles to the same plan")
	}
	if empty, _ := compile(State{ClusterCIDRs: clusterCIDRs}); !empty.empty() {
		t.Error("a state with nothing to do is not empty")
	}
}

func TestRows(t *testing.T) {
	steer := steerVia(egressIP, podTo("0.0.0.0/0"))
	steer.Excluded = prefixes("192.168.0.0/16")
	rows := Rows(State{
		Steers: []Steer{steer, {Match: podTo("0.0.0.0/0", "8.8.8.8"), Drop: true}},
		SNATs:  []SNAT{snatTo(egressIP, podTo("0.0.0.0/0")), snatTo(egressIP2, podTo("1.1.1.1"))},
	})
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s gw=%s egress=%s excluded=%v drop=%v", r.Source, r.Destination, r.Gateway, r.EgressIP, r.Excluded, r.Drop))
	}
	want := []string{
		"10.1.1.10 0.0.0.0/0 gw=" + egressIP + " egress=" + egressIP + " excluded=false drop=false",
		"10.1.1.10 192.168.0.0/16 gw=invalid IP egress=invalid IP excluded=true drop=false",
		"10.1.1.10 8.8.8.8/32 gw=invalid IP egress=invalid IP excluded=false drop=true",
		"10.1.1.10 1.1.1.1/32 gw=invalid IP egress=" + egressIP2 + " excluded=false drop=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
