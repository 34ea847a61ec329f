package l2announce

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/arpresponder"
)

func addr(ip string, ifs []string, candidates ...string) nodesv1alpha1.L2Address {
	return nodesv1alpha1.L2Address{IP: ip, Services: []string{"default/svc"}, Interfaces: ifs, Candidates: candidates}
}

func pair(ip, ifc string) arpresponder.Pair {
	return arpresponder.Pair{IP: netip.MustParseAddr(ip), Interface: ifc}
}

func TestA10_Decide(t *testing.T) {
	ifs := []string{"eth0", "eth1", "ens3"}
	for _, tc := range []struct {
		name         string
		addresses    []nodesv1alpha1.L2Address
		live         []string
		wantPairs    []arpresponder.Pair
		wantOwners   map[string]string
		wantProblems []string // substrings, one per problem
	}{{
		name:       "first live candidate owns; empty interface list means all",
		addresses:  []nodesv1alpha1.L2Address{addr("10.0.0.1", nil, "a", "b")},
		live:       []string{"a", "b"},
		wantPairs:  []arpresponder.Pair{pair("10.0.0.1", "ens3"), pair("10.0.0.1", "eth0"), pair("10.0.0.1", "eth1")},
		wantOwners: map[string]string{"10.0.0.1": "a"},
	}, {
		name:       "another node owns",
		addresses:  []nodesv1alpha1.L2Address{addr("10.0.0.1", nil, "b", "a")},
		live:       []string{"a", "b"},
		wantOwners: map[string]string{"10.0.0.1": "b"},
	}, {
		name:       "the preferred candidate is dead: the next live one owns",
		addresses:  []nodesv1alpha1.L2Address{addr("10.0.0.1", []string{"^eth[0-9]+"}, "b", "c", "a")},
		live:       []string{"a"},
		wantPairs:  []arpresponder.Pair{pair("10.0.0.1", "eth0"), pair("10.0.0.1", "eth1")},
		wantOwners: map[string]string{"10.0.0.1": "a"},
	}, {
		name:       "this node is not alive yet (joining): nothing",
		addresses:  []nodesv1alpha1.L2Address{addr("10.0.0.1", nil, "a", "b")},
		live:       []string{"b"},
		wantOwners: map[string]string{"10.0.0.1": "b"},
	}, {
		name:       "no candidate alive",
		addresses:  []nodesv1alpha1.L2Address{addr("10.0.0.1", nil, "b")},
		live:       []string{"a"},
		wantOwners: map[string]string{"10.0.0.1": ""},
	}, {
		name: "regexes are OR-ed and unanchored",
		addresses: []nodesv1alpha1.L2Address{
			addr("10.0.0.2", []string{"ens", "eth1"}, "a"),
		},
		live:       []string{"a"},
		wantPairs:  []arpresponder.Pair{pair("10.0.0.2", "ens3"), pair("10.0.0.2", "eth1")},
		wantOwners: map[string]string{"10.0.0.2": "a"},
	}, {
		name:         "no interface matches: reported even when another node owns",
		addresses:    []nodesv1alpha1.L2Address{addr("10.0.0.1", []string{"^bond0$"}, "b", "a")},
		live:         []string{"a", "b"},
		wantOwners:   map[string]string{"10.0.0.1": "b"},
		wantProblems: []string{"address 10.0.0.1: no interface matches ^bond0$ (interfaces with IPv4: eth0, eth1, ens3)"},
	}, {
		name: "bad regex and bad addresses are reported, the rest carried out",
		addresses: []nodesv1alpha1.L2Address{
			addr("10.0.0.1", []string{"("}, "a"),
			addr("fd00::1", nil, "a"),
			addr("nonsense", nil, "a"),
			addr("10.0.0.9", []string{"^eth0$"}, "a"),
		},
		live:       []string{"a"},
		wantPairs:  []arpresponder.Pair{pair("10.0.0.9", "eth0")},
		wantOwners: map[string]string{"10.0.0.9": "a"},
		wantProblems: []string{
			`address "fd00::1": not an IPv4 address`,
			`address "nonsense": not an IPv4 address`,
			`address 10.0.0.1: interface expression "("`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(&nodesv1alpha1.L2AnnouncementSpec{Addresses: tc.addresses}, "a", tc.live, ifs)
			if !reflect.DeepEqual(d.Pairs, tc.wantPairs) {
				t.Errorf("pairs %v, want %v", d.Pairs, tc.wantPairs)
			}
			if !reflect.DeepEqual(d.Owners, tc.wantOwners) {
				t.Errorf("owners %v, want %v", d.Owners, tc.wantOwners)
			}
			if len(d.Problems) != len(tc.wantProblems) {
				t.Fatalf("problems %q, want %d", d.Problems, len(tc.wantProblems))
			}
			for i, want := range tc.wantProblems {
				if !strings.Contains(d.Problems[i], want) {
					t.Errorf("problem %q, want it to contain %q", d.Problems[i], want)
				}
			}
		})
	}
}
