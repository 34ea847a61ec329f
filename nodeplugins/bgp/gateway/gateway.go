// Package gateway finds the node's default gateway of an address family,
// for BGP peers with auto-discovery (B52-B54), and tells when it may have
// changed.
//
// The default gateway is the gateway of the main table's default route
// with the lowest metric (B53); ties go to the lowest gateway address, so
// the answer is stable. A link-local gateway is reported as an error
// (LinkLocalError) and gives no session (B54): a link-local peer needs the
// outgoing interface as a zone, which BGP peering here does not support.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/internal/nldump"
)

// ErrNoGateway means the main table has no default route with a gateway
// of the family.
var ErrNoGateway = errors.New("no default route with a gateway")

// LinkLocalError reports that the chosen default gateway is link-local.
type LinkLocalError struct{ Gateway netip.Addr }

func (e LinkLocalError) Error() string {
	return fmt.Sprintf("default gateway %s is link-local, which auto-discovery does not support", e.Gateway)
}

// Candidate is one default route's gateway and metric.
type Candidate struct {
	Gateway netip.Addr
	Metric  int
}

// Choose picks the default gateway among candidates: lowest metric, then
// lowest address. It is pure, so the selection rule is testable alone.
func Choose(cands []Candidate) (netip.Addr, error) {
	var best *Candidate
	for i := range cands {
		c := &cands[i]
		if !c.Gateway.IsValid() {
			continue
		}
		if best == nil || c.Metric < best.Metric || (c.Metric == best.Metric && c.Gateway.Less(best.Gateway)) {
			best = c
		}
	}
	if best == nil {
		return netip.Addr{}, ErrNoGateway
	}
	if best.Gateway.IsLinkLocalUnicast() {
		return netip.Addr{}, LinkLocalError{Gateway: best.Gateway}
	}
	return best.Gateway, nil
}

// Default returns the default gateway of family ("ipv4" or "ipv6") as seen
// through h; a nil h uses the calling process's network namespace.
func Default(h *netlink.Handle, family string) (netip.Addr, error) {
	fam, err := netlinkFamily(family)
	if err != nil {
		return netip.Addr{}, err
	}
	routes, err := nldump.Routes(h, fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing %s default routes: %w", family, err)
	}
	return Choose(candidates(routes))
}

// candidates turns default routes into gateway candidates; a multipath
// route gives one candidate per next hop.
func candidates(routes []netlink.Route) []Candidate {
	var out []Candidate
	add := func(ip net.IP, metric int) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, Candidate{Gateway: a.Unmap(), Metric: metric})
		}
	}
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST && r.Type != 0 {
			continue // unreachable, blackhole, prohibit: no gateway
		}
		if r.Gw != nil {
			add(r.Gw, r.Priority)
		}
		for _, nh := range r.MultiPath {
			if nh.Gw != nil {
				add(nh.Gw, r.Priority)
			}
		}
	}
	return out
}

func netlinkFamily(family string) (int, error) {
	switch family {
	case "ipv4":
		return netlink.FAMILY_V4, nil
	case "ipv6":
		return netlink.FAMILY_V6, nil
	}
	return 0, fmt.Errorf("unknown address family %q", family)
}

// Watch calls changed whenever the routing table may have changed, until
// ctx ends: after route events from netlink (a burst gives one call), and
// every poll interval in any case, so a lost subscription or a missed
// event costs at most one interval. ns selects the namespace to watch;
// netns.None() is the caller's own.
func Watch(ctx context.Context, ns netns.NsHandle, poll time.Duration, changed func()) {
	watch(ctx, ns, poll, changed, func() {})
}

// watch is Watch with a hook called once the subscription is in place.
func watch(ctx context.Context, ns netns.NsHandle, poll time.Duration, changed, subscribed func()) {
	const settle = 200 * time.Millisecond
	events := subscribe(ctx, ns)
	subscribed()
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			changed()
		case _, ok := <-events:
			if !ok {
				events = nil // subscription ended: the ticker still runs
				continue
			}
			drain(ctx, events, settle)
			changed()
		}
	}
}

// subscribe returns route events, or nil (never ready) if netlink refuses.
func subscribe(ctx context.Context, ns netns.NsHandle) <-chan netlink.RouteUpdate {
	ch := make(chan netlink.RouteUpdate, 64)
	err := netlink.RouteSubscribeWithOptions(ch, ctx.Done(), netlink.RouteSubscribeOptions{
		Namespace:     &ns,
		ErrorCallback: func(error) {},
	})
	if err != nil {
		return nil
	}
	return ch
}

// drain swallows the rest of a burst of events.
func drain(ctx context.Context, events <-chan netlink.RouteUpdate, settle time.Duration) {
	t := time.NewTimer(settle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case _, ok := <-events:
			if !ok {
				return
			}
		}
	}
}
