package kernel

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/internal/fwmark"
	"github.com/plexus-net/plexus/internal/nldump"
)

// Routing of steered packets: egress slot s (mark fwmark.Egress(s)) is
// looked up in table RouteTableBase+s by an ip rule at RulePriority, and that
// table holds one default route via the slot's next hop.
const (
	// RulePriority is the priority of the ip rules: before the main table
	// (32766), after the local one (0).
	RulePriority = 100
	// RouteTableBase is the routing table of slot 0 (never used); the
	// tables RouteTableBase+1 .. RouteTableBase+EgressSlots-1 are owned.
	RouteTableBase = 2000
	// RouteProtocol marks the rules and routes (rtm_protocol 0xb9 = 185,
	// as the datapath plugin's routes): `ip rule show proto 185`.
	RouteProtocol netlink.RouteProtocol = 0xb9
)

// RouteTable is the routing table of egress slot s.
func RouteTable(slot uint32) int { return RouteTableBase + int(slot) }

func ownedTable(table int) bool {
	return table > RouteTableBase && table < RouteTableBase+int(fwmark.EgressSlots)
}

var defaultRoute = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}

// wantRoutes returns the default route of each slot: via its next hop on
// the link the main routing finds for it (onlink when that lookup goes
// through a gateway, i.e. the next hop is on no connected subnet). A next
// hop with no route gets an unreachable default, so that its steered
// packets fail rather than leave by the main table with their pod address.
func (k *Kernel) wantRoutes(p *plan) ([]netlink.Route, []error) {
	var routes []netlink.Route
	var errs []error
	for i, via := range p.vias {
		table := RouteTable(uint32(i + 1))
		r := netlink.Route{Family: netlink.FAMILY_V4, Table: table, Dst: defaultRoute, Protocol: RouteProtocol, Type: unix.RTN_UNICAST}
		got, err := k.nl.RouteGet(net.IP(via.AsSlice()))
		if err == nil && len(got) == 0 {
			err = errors.New("no route")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("route to next hop %s: %w", via, err))
			r.Type = unix.RTN_UNREACHABLE
			routes = append(routes, r)
			continue
		}
		r.LinkIndex = got[0].LinkIndex
		r.Gw = net.IP(via.AsSlice())
		if got[0].Gw != nil {
			r.Flags = int(netlink.FLAG_ONLINK)
		}
		routes = append(routes, r)
	}
	return routes, errs
}

func wantRules(p *plan) []netlink.Rule {
	var rules []netlink.Rule
	for i := range p.vias {
		slot := uint32(i + 1)
		r := netlink.NewRule()
		r.Family = netlink.FAMILY_V4
		r.Priority = RulePriority
		r.Mark = fwmark.Egress(slot)
		r.Mask = ptr(fwmark.EgressMask)
		r.Table = RouteTable(slot)
		r.Protocol = uint8(RouteProtocol)
		rules = append(rules, *r)
	}
	return rules
}

func ptr[T any](v T) *T { return &v }

// ownRules lists the ip rules at RulePriority that point into an owned table.
func (k *Kernel) ownRules() ([]netlink.Rule, error) {
	all, err := nldump.Rules(k.nl, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing ip rules: %w", err)
	}
	return slices.DeleteFunc(all, func(r netlink.Rule) bool { return r.Priority != RulePriority || !ownedTable(r.Table) }), nil
}

// ownRoutes lists the routes with RouteProtocol in the owned tables.
func (k *Kernel) ownRoutes() ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: RouteProtocol}
	all, err := nldump.Routes(k.nl, netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return slices.DeleteFunc(all, func(r netlink.Route) bool { return !ownedTable(r.Table) }), nil
}

func sameRule(a, b netlink.Rule) bool {
	return a.Table == b.Table && a.Mark == b.Mark && a.Mask != nil && b.Mask != nil && *a.Mask == *b.Mask &&
		a.Priority == b.Priority && a.Protocol == b.Protocol && a.Src == nil && a.Dst == nil && !a.Invert &&
		a.IifName == "" && a.OifName == ""
}

func sameRoute(have, want netlink.Route) bool {
	ones, _ := defaultRoute.Mask.Size()
	if have.Dst != nil {
		if o, _ := have.Dst.Mask.Size(); o != ones {
			return false
		}
	}
	return have.Table == want.Table && have.Type == want.Type && have.LinkIndex == want.LinkIndex &&
		have.Gw.Equal(want.Gw) && len(have.MultiPath) == 0 && have.Priority == want.Priority &&
		have.Flags&int(netlink.FLAG_ONLINK) == want.Flags&int(netlink.FLAG_ONLINK)
}

// addRouting installs the wanted routes, then the rules that use them.
func (k *Kernel) addRouting(routes []netlink.Route, rules []netlink.Rule) []error {
	var errs []error
	haveRoutes, err := k.ownRoutes()
	if err != nil {
		return []error{err}
	}
	for _, r := range routes {
		if slices.ContainsFunc(haveRoutes, func(h netlink.Route) bool { return sameRoute(h, r) }) {
			continue
		}
		if err := k.nl.RouteReplace(&r); err != nil {
			errs = append(errs, fmt.Errorf("route default via %s table %d: %w", r.Gw, r.Table, err))
			continue
		}
		k.writes++
	}
	haveRules, err := k.ownRules()
	if err != nil {
		return append(errs, err)
	}
	for _, r := range rules {
		if slices.ContainsFunc(haveRules, func(h netlink.Rule) bool { return sameRule(h, r) }) {
			continue
		}
		if err := k.nl.RuleAdd(&r); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("ip rule fwmark %#x/%#x table %d: %w", r.Mark, *r.Mask, r.Table, err))
			continue
		}
		k.writes++
	}
	return errs
}

// deleteStaleRouting deletes the owned rules, then the owned routes, that
// are not wanted.
func (k *Kernel) deleteStaleRouting(routes []netlink.Route, rules []netlink.Rule) []error {
	var errs []error
	haveRules, err := k.ownRules()
	if err != nil {
		return []error{err}
	}
	for _, h := range haveRules {
		if slices.ContainsFunc(rules, func(r netlink.Rule) bool { return sameRule(h, r) }) {
			continue
		}
		if err := k.nl.RuleDel(&h); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("deleting ip rule %s: %w", h, err))
			continue
		}
		k.writes++
	}
	haveRoutes, err := k.ownRoutes()
	if err != nil {
		return append(errs, err)
	}
	for _, h := range haveRoutes {
		if slices.ContainsFunc(routes, func(r netlink.Route) bool { return sameRoute(h, r) }) {
			continue
		}
		if err := k.nl.RouteDel(&h); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("deleting route %s table %d: %w", h, h.Table, err))
			continue
		}
		k.writes++
	}
	return errs
}
