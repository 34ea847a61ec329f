package l2announce

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/arpresponder"
)

// Decision is what this node does for a spec, given who is alive.
type Decision struct {
	// Pairs are what the ARP responder answers for.
	Pairs []arpresponder.Pair
	// Announcing are the addresses this node owns, with their interfaces,
	// sorted by address.
	Announcing []Announced
	// Owners maps every address to the candidate that owns it ("" when no
	// candidate is alive), as this node sees it.
	Owners map[string]string
	// Problems are what keeps this node from carrying out the spec.
	Problems []string
}

// Announced is an address this node answers for and where.
type Announced struct {
	IP         string
	Interfaces []string
}

// Decide computes the decision. self is this node's name, live the members
// the heartbeats show alive (self among them once it counts), interfaces
// the names of this node's interfaces that may answer (up, not loopback,
// with an IPv4 address).
//
// The owner of an address is its first live candidate. Every node computes
// the same owner from the same view, so no one has to tell the others; and a
// candidate dying changes the owner with no API call.
func Decide(spec *nodesv1alpha1.L2AnnouncementSpec, self string, live, interfaces []string) Decision {
	d := Decision{Owners: map[string]string{}}
	for _, a := range spec.Addresses {
		ip, err := netip.ParseAddr(a.IP)
		if err != nil || !ip.Is4() {
			d.Problems = append(d.Problems, fmt.Sprintf("address %q: not an IPv4 address", a.IP))
			continue
		}
		matched, err := matching(a.Interfaces, interfaces)
		if err != nil {
			d.Problems = append(d.Problems, fmt.Sprintf("address %s: %v", a.IP, err))
			continue
		}
		if len(matched) == 0 {
			// Reported even when another node owns the address: this node
			// could not take it over.
			if len(a.Interfaces) == 0 {
				d.Problems = append(d.Problems, fmt.Sprintf("address %s: no interface is up with an IPv4 address", a.IP))
			} else {
				d.Problems = append(d.Problems, fmt.Sprintf("address %s: no interface matches %s (interfaces with IPv4: %s)",
					a.IP, strings.Join(a.Interfaces, ", "), describe(interfaces)))
			}
		}
		owner := ""
		for _, c := range a.Candidates {
			if slices.Contains(live, c) {
				owner = c
				break
			}
		}
		d.Owners[a.IP] = owner
		if owner != self || len(matched) == 0 {
			continue
		}
		d.Announcing = append(d.Announcing, Announced{IP: ip.String(), Interfaces: matched})
		for _, ifc := range matched {
			d.Pairs = append(d.Pairs, arpresponder.Pair{IP: ip, Interface: ifc})
		}
	}
	slices.SortFunc(d.Announcing, func(x, y Announced) int {
		return netip.MustParseAddr(x.IP).Compare(netip.MustParseAddr(y.IP))
	})
	slices.SortFunc(d.Pairs, arpresponder.Pair.Compare)
	slices.Sort(d.Problems)
	return d
}

// matching returns the interfaces that match any of the expressions (all of
// them when there are none), sorted.
func matching(exprs, interfaces []string) ([]string, error) {
	if len(exprs) == 0 {
		return slices.Sorted(slices.Values(interfaces)), nil
	}
	res := make([]*regexp.Regexp, 0, len(exprs))
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("interface expression %q: %w", e, err)
		}
		res = append(res, re)
	}
	var out []string
	for _, ifc := range interfaces {
		if slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(ifc) }) {
			out = append(out, ifc)
		}
	}
	slices.Sort(out)
	return out, nil
}

func describe(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
