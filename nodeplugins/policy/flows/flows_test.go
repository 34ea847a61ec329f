package flows

import (
	"net/netip"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
)

func flow(srcNS, srcPod, dstIP string, port uint32, v flowpb.Verdict) *flowpb.Flow {
	return &flowpb.Flow{
		Verdict: v,
		Source:  &flowpb.Endpoint{Namespace: srcNS, PodName: srcPod},
		IP:      &flowpb.IP{Source: "10.0.0.1", Destination: dstIP},
		L4:      &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{DestinationPort: port}}},
	}
}

// The store keeps the newest flows up to its capacity; a follower that
// fell behind resumes at the oldest one still held.
func TestStoreKeepsTheNewest(t *testing.T) {
	s := NewStore(3)
	for p := uint32(1); p <= 5; p++ {
		s.Add(flow("ns", "a", "10.0.0.2", p, flowpb.Verdict_FORWARDED))
	}
	held, next, _ := s.From(0)
	if len(held) != 3 || held[0].GetL4().GetTCP().GetDestinationPort() != 3 || next != 5 {
		t.Fatalf("held %d flows from port %d, next %d; want ports 3-5, next 5", len(held), held[0].GetL4().GetTCP().GetDestinationPort(), next)
	}
	fresh, next, added := s.From(next)
	if len(fresh) != 0 || next != 5 {
		t.Fatalf("nothing new expected, got %d (next %d)", len(fresh), next)
	}
	s.Add(flow("ns", "a", "10.0.0.2", 6, flowpb.Verdict_FORWARDED))
	select {
	case <-added:
	default:
		t.Fatal("a follower was not woken")
	}
	if fresh, _, _ := s.From(next); len(fresh) != 1 || fresh[0].GetL4().GetTCP().GetDestinationPort() != 6 {
		t.Fatalf("fresh %v, want the flow to port 6", fresh)
	}
	if h, c, seen := s.Stats(); h != 3 || c != 3 || seen != 6 {
		t.Errorf("stats %d/%d/%d, want 3 held, capacity 3, 6 seen", h, c, seen)
	}
}

// Filters: fields AND, values OR, whitelists OR, blacklists exclude;
// pods by namespace and name prefix; IPs by CIDR; a field the server
// cannot evaluate is refused by name.
func TestFilters(t *testing.T) {
	web := flow("shop", "web-1", "10.1.2.3", 80, flowpb.Verdict_FORWARDED)
	db := flow("shop", "db-0", "192.168.0.9", 5432, flowpb.Verdict_DROPPED)
	other := flow("dev", "web-1", "10.1.2.4", 80, flowpb.Verdict_DROPPED)
	for _, tc := range []struct {
		name         string
		white, black []*flowpb.FlowFilter
		want         []bool // web, db, other
	}{
		{"none", nil, nil, []bool{true, true, true}},
		{"namespace", []*flowpb.FlowFilter{{SourcePod: []string{"shop/"}}}, nil, []bool{true, true, false}},
		{"pod prefix anywhere", []*flowpb.FlowFilter{{SourcePod: []string{"web"}}}, nil, []bool{true, false, true}},
		{"namespace and verdict", []*flowpb.FlowFilter{{SourcePod: []string{"shop/"}, Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}, nil, []bool{false, true, false}},
		{"cidr", []*flowpb.FlowFilter{{DestinationIp: []string{"10.1.0.0/16"}}}, nil, []bool{true, false, true}},
		{"either whitelist", []*flowpb.FlowFilter{{DestinationPort: []string{"5432"}}, {SourcePod: []string{"dev/"}}}, nil, []bool{false, true, true}},
		{"blacklist", nil, []*flowpb.FlowFilter{{Protocol: []string{"tcp"}, DestinationPort: []string{"80"}}}, []bool{false, true, false}},
	} {
		f, err := NewFilter(tc.white, tc.black)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, fl := range []*flowpb.Flow{web, db, other} {
			if got := f.Match(fl); got != tc.want[i] {
				t.Errorf("%s: flow %d matched=%v, want %v", tc.name, i, got, tc.want[i])
			}
		}
	}
	_, err := NewFilter(nil, []*flowpb.FlowFilter{{SourceFqdn: []string{"*.example.com"}}})
	if err == nil || !strings.Contains(err.Error(), "blacklist[0]") || !strings.Contains(err.Error(), "source_fqdn") {
		t.Errorf("an FQDN filter: %v, want an error naming blacklist[0] and source_fqdn", err)
	}
	if _, err := NewFilter([]*flowpb.FlowFilter{{DestinationIp: []string{"not-an-ip"}}}, nil); err == nil {
		t.Error("a malformed IP filter was accepted")
	}
}

// A host verdict taken on a pod's veth (the pod sent to the node) has the
// pod as its source and the host as its destination, never the pod twice.
func TestHostVerdictOnAPodVeth(t *testing.T) {
	e := datapath.Event{Kind: datapath.EventKind(1), Direction: datapath.Ingress, Local: 1, Peer: 5000, Ifindex: 7,
		Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("10.0.1.1"), Protocol: 6, DstPort: 10250}
	f := Flow(e, Lookup{
		PodOf: func(ifindex uint32) (string, bool) { return "shop/web-1", ifindex == 7 },
		PodAt: func(a netip.Addr) (string, bool) { return "shop/web-1", a == e.Src },
	})
	if f.Source.PodName != "web-1" || f.Destination.PodName != "" || f.Destination.Identity != 1 {
		t.Errorf("source %+v, destination %+v; want the pod to the host", f.Source, f.Destination)
	}
}
