package planner

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func nodes() []Node {
	return []Node{
		{Name: "worker-b", Labels: labels.Set{"rack": "1"}, IPv4: netip.MustParseAddr("198.18.0.12")},
		{Name: "worker-a", Labels: labels.Set{"rack": "1", "bgp": "true"}, IPv4: netip.MustParseAddr("198.18.0.11")},
		{Name: "worker-c", Labels: labels.Set{"rack": "2"}, IPv4: netip.MustParseAddr("198.18.0.13")},
	}
}

// instance65000 is the seed's example: two peers sharing PeerConfig
// cilium-peer.
func instance65000() []ciliumv2.CiliumBGPInstance {
	ref := &ciliumv2.PeerConfigReference{Name: "cilium-peer"}
	return []ciliumv2.CiliumBGPInstance{{
		Name: "instance-65000", LocalASN: ptr.To[int64](65000),
		Peers: []ciliumv2.CiliumBGPPeer{
			{Name: "peer-65000-tor1", PeerAddress: ptr.To("198.18.0.1"), PeerASN: ptr.To[int64](65000), PeerConfigRef: ref},
			{Name: "peer-65000-tor2", PeerAddress: ptr.To("198.18.0.2"), PeerASN: ptr.To[int64](65000), PeerConfigRef: ref},
		},
	}}
}

func sel(s string) labels.Selector {
	out, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return out
}

func nodeNames(p Plan) []string { return slices.Sorted(maps.Keys(p.Nodes)) }

// B2, B3: one node config per selected node, with the config's instances
// and peers; no selector selects every node. The router ID is the node's
// IPv4 address by default.
func TestB2_B3_FanOut(t *testing.T) {
	in := Input{Nodes: nodes(), PeerConfigs: map[string]bool{"cilium-peer": true},
		Configs: []ClusterConfig{{Name: "cilium-bgp", Created: t0, Nodes: sel("rack=1"), Instances: instance65000()}}}
	p := Decide(in)
	if got := nodeNames(p); !slices.Equal(got, []string{"worker-a", "worker-b"}) {
		t.Fatalf("node configs for %v", got)
	}
	a := p.Nodes["worker-a"].Spec.BGPInstances[0]
	if a.Name != "instance-65000" || *a.LocalASN != 65000 || *a.RouterID != "198.18.0.11" || len(a.Peers) != 2 ||
		*a.Peers[1].PeerAddress != "198.18.0.2" || a.Peers[1].PeerConfigRef.Name != "cilium-peer" {
		t.Fatalf("worker-a instance %+v", a)
	}
	in.Configs[0].Nodes = nil
	if got := nodeNames(Decide(in)); len(got) != 3 {
		t.Fatalf("B3: no selector gave node configs for %v", got)
	}
}

// B4: a selector matching nothing is reported.
func TestB4_NoMatchingNode(t *testing.T) {
	p := Decide(Input{Nodes: nodes(), Configs: []ClusterConfig{{Name: "none", Created: t0, Nodes: sel("rack=9"), Instances: instance65000()}}})
	if r := p.Configs["none"]; r.Selected || len(r.Nodes) != 0 || len(p.Nodes) != 0 {
		t.Fatalf("result %+v, nodes %v", r, nodeNames(p))
	}
}

// B5: references to missing peer configs are listed once, sorted.
func TestB5_MissingPeerConfigs(t *testing.T) {
	p := Decide(Input{Nodes: nodes(), Configs: []ClusterConfig{{Name: "c", Created: t0, Instances: instance65000()}}})
	if got := p.Configs["c"].MissingPeerConfigs; !slices.Equal(got, []string{"cilium-peer"}) {
		t.Fatalf("missing %v", got)
	}
}

// B6: a second config selecting an already selected node changes no node
// config and names the first; it is applied nowhere.
func TestB6_ConflictingClusterConfig(t *testing.T) {
	older := ClusterConfig{Name: "rack-1", Created: t0, Nodes: sel("rack=1"), Instances: instance65000()}
	newer := ClusterConfig{Name: "bgp-nodes", Created: t0.Add(time.Minute), Nodes: sel("bgp=true"), Instances: []ciliumv2.CiliumBGPInstance{
		{Name: "other", LocalASN: ptr.To[int64](65100)}}}
	p := Decide(Input{Nodes: nodes(), Configs: []ClusterConfig{newer, older}})
	if r := p.Configs["bgp-nodes"]; !slices.Equal(r.ConflictsWith, []string{"rack-1"}) || len(r.Nodes) != 0 {
		t.Fatalf("newer %+v", r)
	}
	if p.Nodes["worker-a"].Config != "rack-1" || p.Nodes["worker-a"].Spec.BGPInstances[0].Name != "instance-65000" {
		t.Fatalf("worker-a %+v", p.Nodes["worker-a"])
	}
}

// Overrides: router ID, local port and ASN per instance, local address per
// peer; names that match nothing are reported.
func TestB13_B48_B49_Override(t *testing.T) {
	ov := ciliumv2.CiliumBGPNodeConfigOverrideSpec{BGPInstances: []ciliumv2.CiliumBGPNodeConfigInstanceOverride{
		{Name: "instance-65000", RouterID: ptr.To("192.168.10.1"), LocalPort: ptr.To[int32](1790), LocalASN: ptr.To[int64](65010),
			Peers: []ciliumv2.CiliumBGPNodeConfigPeerOverride{{Name: "peer-65000-tor1", LocalAddress: ptr.To("198.18.0.111")}, {Name: "nope"}}},
		{Name: "instance-missing"},
	}}
	p := Decide(Input{Nodes: nodes(), Overrides: map[string]ciliumv2.CiliumBGPNodeConfigOverrideSpec{"worker-a": ov},
		Configs: []ClusterConfig{{Name: "c", Created: t0, Instances: instance65000()}}})
	a := p.Nodes["worker-a"]
	i := a.Spec.BGPInstances[0]
	if *i.RouterID != "192.168.10.1" || *i.LocalPort != 1790 || *i.LocalASN != 65010 ||
		*i.Peers[0].LocalAddress != "198.18.0.111" || i.Peers[1].LocalAddress != nil {
		t.Fatalf("overridden instance %+v", i)
	}
	if probs := strings.Join(a.Problems, "; "); !strings.Contains(probs, "instance-missing") || !strings.Contains(probs, "instance-65000/nope") {
		t.Fatalf("problems %q", probs)
	}
	if b := p.Nodes["worker-b"].Spec.BGPInstances[0]; *b.LocalASN != 65000 || b.LocalPort != nil || *b.RouterID != "198.18.0.12" {
		t.Fatalf("worker-b is not overridden: %+v", b)
	}
}

// Router IDs from a pool: manual ones in the pool are skipped, current ones
// kept, the rest the lowest free addresses; a node without IPv4 in default
// mode gets none and no problem: it derives its own (B46).
func TestB46_B47_RouterIDPool(t *testing.T) {
	in := Input{Nodes: nodes(), RouterIDMode: RouterIDIPPool, RouterIDPool: netip.MustParsePrefix("10.0.0.0/30"),
		Configs: []ClusterConfig{{Name: "c", Created: t0, Instances: instance65000()}},
		Overrides: map[string]ciliumv2.CiliumBGPNodeConfigOverrideSpec{"worker-c": {BGPInstances: []ciliumv2.CiliumBGPNodeConfigInstanceOverride{
			{Name: "instance-65000", RouterID: ptr.To("10.0.0.0")}}}},
		CurrentRouterIDs: map[string]map[string]string{"worker-b": {"instance-65000": "10.0.0.1"}},
	}
	p := Decide(in)
	id := func(n string) string { return *p.Nodes[n].Spec.BGPInstances[0].RouterID }
	if id("worker-c") != "10.0.0.0" || id("worker-b") != "10.0.0.1" || id("worker-a") != "10.0.0.2" {
		t.Fatalf("router IDs a=%s b=%s c=%s", id("worker-a"), id("worker-b"), id("worker-c"))
	}
	// The same input again: the same IDs (deterministic).
	if q := Decide(in); *q.Nodes["worker-a"].Spec.BGPInstances[0].RouterID != "10.0.0.2" {
		t.Fatal("not deterministic")
	}
	// A pool too small: reported, not invented.
	in.RouterIDPool = netip.MustParsePrefix("10.0.0.0/31")
	p = Decide(in)
	if !strings.Contains(strings.Join(p.Nodes["worker-a"].Problems, ";"), "exhausted") {
		t.Fatalf("worker-a problems %v", p.Nodes["worker-a"].Problems)
	}

	ns := nodes()
	ns[0].IPv4 = netip.Addr{}
	p = Decide(Input{Nodes: ns, Configs: []ClusterConfig{{Name: "c", Created: t0, Instances: instance65000()}}})
	if b := p.Nodes["worker-b"]; b.Spec.BGPInstances[0].RouterID != nil || len(b.Problems) != 0 {
		t.Fatalf("worker-b without IPv4: %+v", b)
	}
}
