package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

func spec(entries ...nodesv1alpha1.PolicyEntry) nodesv1alpha1.NodePolicySpec {
	return nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: 1000, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: entries},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{
			{Name: "p1", Identities: []int64{7}},
			{Name: "net", CIDRs: []string{"192.0.2.0/24", "0.0.0.0/0"}},
			{Name: "net2", CIDRs: []string{"192.0.2.128/25"}},
		},
	}
}

// Within one (local, peer, direction, protocol) a deny cuts its ports out
// of the allows, so no allow prefix is more specific than a deny.
func TestDenyCutsAllowedRanges(t *testing.T) {
	res := Desired(Input{Spec: spec(
		nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 6, Port: 0, EndPort: 65535},
		nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 6, Port: 80, EndPort: 80, Deny: true},
	), Endpoints: []Endpoint{{Ifindex: 5, Identity: 1000}}})
	st, problems := res.State, res.Problems
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if st.Endpoints[5] != (EndpointValue{Identity: 1000, Flags: epIngressEnforced}) {
		t.Errorf("endpoint %+v", st.Endpoints[5])
	}
	allowed := 0
	for k, flags := range st.Policy {
		first, size := int(k.Port), 1<<(16-int(k.PortBits))
		holds80 := first <= 80 && 80 < first+size
		switch {
		case flags == verdictDeny && !(k.Port == 80 && k.PortBits == 16):
			t.Errorf("unexpected deny %+v", k)
		case flags == 0 && holds80:
			t.Errorf("allow %+v holds the denied port", k)
		case flags == 0:
			allowed += size
		}
	}
	if allowed != 65535 {
		t.Errorf("allow entries cover %d ports, want 65535", allowed)
	}
}

// CIDR identities stay with their prefix across computations, the world
// (/0) needs none, and a peer set of CIDRs holds every known prefix
// within them.
func TestCIDRIdentitiesAreStable(t *testing.T) {
	in := Input{Spec: spec(nodesv1alpha1.PolicyEntry{Peers: "net", Protocol: 0, Port: 0, EndPort: 65535},
		nodesv1alpha1.PolicyEntry{Peers: "net2", Protocol: 0, Port: 0, EndPort: 65535})}
	ids := Desired(in).CIDRIdentities
	if len(ids) != 2 {
		t.Fatalf("CIDR identities %v, want two (the /0 is the world)", ids)
	}
	in.CIDRIdentities = map[netip.Prefix]uint32{netip.MustParsePrefix("192.0.2.128/25"): CIDRIdentityBase + 40}
	res := Desired(in)
	st, ids2 := res.State, res.CIDRIdentities
	if ids2[netip.MustParsePrefix("192.0.2.128/25")] != CIDRIdentityBase+40 {
		t.Errorf("held identity not kept: %v", ids2)
	}
	// "net" covers both prefixes and the world.
	wide := expandPeerSet(in.Spec.PeerSets[1], ids2)
	if len(wide) != 3 || wide[0] != worldIdentity {
		t.Errorf("net expands to %v, want the world and both prefixes", wide)
	}
	if st.IPCache[netip.MustParsePrefix("192.0.2.0/24")] == 0 {
		t.Errorf("ipcache lacks the /24: %v", st.IPCache)
	}
}

// A named port resolves against the local pods of the identity for
// ingress, by name and protocol (a UDP port of the name is not a TCP
// one; an entry of every protocol takes any); pods numbering the name
// differently open each number; an unknown name matches nothing and is no
// problem (Kubernetes' rule).
func TestNamedPorts(t *testing.T) {
	in := Input{Spec: spec(
		nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 6, PortName: "http"},
		nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 6, PortName: "dns"},
		nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 0, PortName: "metrics"},
		nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 6, PortName: "nothing"}),
		Endpoints: []Endpoint{
			{Ifindex: 5, Identity: 1000, NamedPorts: []NamedPort{{"http", 6, 8080}, {"dns", 17, 53}, {"metrics", 6, 9100}}},
			{Ifindex: 6, Identity: 1000, NamedPorts: []NamedPort{{"http", 6, 8081}}},
		}}
	res := Desired(in)
	if len(res.Problems) > 0 {
		t.Errorf("problems %+v, want none", res.Problems)
	}
	var got []string
	for k := range res.State.Policy {
		if k.Dir == dirIngress {
			got = append(got, fmt.Sprintf("%d/%d/%d", k.Proto, k.Port, k.PortBits))
		}
	}
	slices.Sort(got)
	// 8080 and 8081 make one prefix.
	if want := []string{"0/9100/16", "6/8080/15"}; !slices.Equal(got, want) {
		t.Errorf("ingress ports %v, want %v", got, want)
	}
}

// Two entries of one identity or one peer set, which the API server no
// longer refuses, are reported, never silently merged.
func TestDuplicatesReported(t *testing.T) {
	in := Input{Spec: spec(nodesv1alpha1.PolicyEntry{Peers: "p1", Protocol: 6, Port: 80, EndPort: 80})}
	in.Spec.Identities = append(in.Spec.Identities, in.Spec.Identities[0])
	in.Spec.PeerSets = append(in.Spec.PeerSets, in.Spec.PeerSets[0])
	var got []string
	for _, p := range Desired(in).Problems {
		got = append(got, fmt.Sprintf("%d: %s", p.Identity, p.Message))
	}
	want := []string{`0: peer set "p1" is listed more than once; the last one is used`,
		"1000: listed more than once; the entries of all are enforced, the enforcement of the last"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}

// A Service frontend's backends are judged as the ipcache would judge
// their addresses: a known pod by its identity, an address inside a
// policy's CIDR by that prefix's identity, anything else as the world;
// equal pairs collapse, and more pairs than fit mark the entry overflowed.
func TestServiceBackendsResolved(t *testing.T) {
	var many []netip.AddrPort
	for port := range uint16(MaxServiceBackends + 1) {
		many = append(many, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 8000+port))
	}
	res := Desired(Input{
		Spec:      spec(),
		Addresses: map[netip.Addr]uint32{netip.MustParseAddr("10.0.0.1"): 5000, netip.MustParseAddr("10.0.0.2"): 5000},
		Services: []Service{
			{Frontend: netip.MustParseAddrPort("10.96.0.1:443"), Proto: 6, Backends: []netip.AddrPort{
				netip.MustParseAddrPort("10.0.0.2:8443"), netip.MustParseAddrPort("10.0.0.1:8443"), // one pair
				netip.MustParseAddrPort("192.0.2.200:8443"),  // inside net2's /25, the most specific prefix
				netip.MustParseAddrPort("198.51.100.1:8443"), // nothing claims it
			}},
			{Frontend: netip.MustParseAddrPort("10.96.0.2:53"), Proto: 17},
			{Frontend: netip.MustParseAddrPort("10.96.0.3:80"), Proto: 6, Backends: many},
		},
	})
	cidr := res.CIDRIdentities[netip.MustParsePrefix("192.0.2.128/25")]
	if cidr == 0 {
		t.Fatalf("no identity for 192.0.2.128/25: %v", res.CIDRIdentities)
	}
	got := res.State.Services
	want := ServiceValue{Count: 3, Backends: [MaxServiceBackends]ServiceBackend{{worldIdentity, 8443}, {5000, 8443}, {cidr, 8443}}}
	if v := got[ServiceKey{netip.MustParseAddr("10.96.0.1"), 443, 6}]; v != want {
		t.Errorf("10.96.0.1:443 = %+v, want %+v", v, want)
	}
	if _, ok := got[ServiceKey{netip.MustParseAddr("10.96.0.2"), 53, 17}]; ok {
		t.Error("a Service without backends has an entry; its address should be judged as itself")
	}
	if v := got[ServiceKey{netip.MustParseAddr("10.96.0.3"), 80, 6}]; !v.Overflow || v.Count != MaxServiceBackends {
		t.Errorf("17 distinct backends: count %d overflow %v, want %d and true", v.Count, v.Overflow, MaxServiceBackends)
	}
}
