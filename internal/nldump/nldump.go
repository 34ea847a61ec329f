// Package nldump runs netlink dumps that the kernel may interrupt. A dump
// spans several messages; when the table changes between them (a pod's veth
// comes or goes) the kernel flags the dump as interrupted and its result may
// miss entries. Acting on such a list would undo state for a pass (drop an
// address that is still there), so every dump in Plexus goes through here:
// an interrupted dump is repeated, and one that keeps failing is an error,
// never a partial list. The lint gate (.golangci.yml) forbids raw dumps
// elsewhere.
package nldump

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// attempts is how often an interrupted dump is tried before it is an error.
const attempts = 5

// Retry repeats a netlink dump the kernel interrupted because the table
// changed under it (up to five times); the result is then consistent.
func Retry(f func() error) error {
	var err error
	for range attempts {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

func dump[T any](f func() (T, error)) (T, error) {
	var out T
	err := Retry(func() (err error) { out, err = f(); return err })
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// handle is h, or a handle on the caller's network namespace.
func handle(h *netlink.Handle) *netlink.Handle {
	if h == nil {
		return &netlink.Handle{}
	}
	return h
}

// Links lists the links (`ip link`).
func Links(h *netlink.Handle) ([]netlink.Link, error) {
	return dump(handle(h).LinkList)
}

// Addrs lists the addresses of family on link, or on every link if link
// is nil (`ip addr`).
func Addrs(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return dump(func() ([]netlink.Addr, error) { return handle(h).AddrList(link, family) })
}

// Routes lists the routes of family that match filter on the fields in
// mask (netlink.RT_FILTER_*).
func Routes(h *netlink.Handle, family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return dump(func() ([]netlink.Route, error) { return handle(h).RouteListFiltered(family, filter, mask) })
}

// Rules lists the ip rules of family.
func Rules(h *netlink.Handle, family int) ([]netlink.Rule, error) {
	return dump(func() ([]netlink.Rule, error) { return handle(h).RuleList(family) })
}

// Neighs lists the neighbour (or, with AF_BRIDGE, FDB) entries of family
// on the link with index linkIndex.
func Neighs(h *netlink.Handle, linkIndex, family int) ([]netlink.Neigh, error) {
	return dump(func() ([]netlink.Neigh, error) { return handle(h).NeighList(linkIndex, family) })
}

// LinkAddr is an address of an up, non-loopback link.
type LinkAddr struct {
	Link   string
	Prefix netip.Prefix
}

// UpAddrs lists the addresses of family on up, non-loopback links, in the
// kernel's order (links by index, each link's addresses as `ip addr` shows
// them, so "first address" means the same as there).
func UpAddrs(h *netlink.Handle, family int) ([]LinkAddr, error) {
	links, err := Links(h)
	if err != nil {
		return nil, err
	}
	up := map[int]string{}
	for _, l := range links {
		at := l.Attrs()
		if at.Flags&net.FlagUp != 0 && at.Flags&net.FlagLoopback == 0 {
			up[at.Index] = at.Name
		}
	}
	addrs, err := Addrs(h, nil, family)
	if err != nil {
		return nil, err
	}
	var out []LinkAddr
	for _, a := range addrs {
		name, ok := up[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, LinkAddr{Link: name, Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
	}
	return out, nil
}
