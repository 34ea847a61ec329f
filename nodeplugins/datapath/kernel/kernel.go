// Package kernel makes a node's routing state match a routes.Desired with
// netlink, by diff: it reads what is there, adds what is missing, replaces
// what differs and deletes only stale objects it owns. It never flushes, so
// packets keep flowing while it works, and a fresh process (a restart) adopts
// what the previous one installed without touching it.
//
// Ownership:
//   - routes: every route it installs is in the main table with protocol
//     RouteProtocol; only routes with that protocol are ever replaced or
//     deleted. A route to the same destination with another protocol belongs
//     to someone else and is reported as a conflict, never overwritten;
//   - the VXLAN device named in Config, with every FDB entry and neighbour on
//     it. The device is created, changed or deleted only when it is a VXLAN
//     device; a link of another type with its name is an error;
//   - the nftables table MasqTable (family ip), which masquerades this node's
//     pods' IPv4 traffic leaving the cluster (Config.Masquerade). It is
//     replaced whole, in one transaction, only when its content changes.
//
// Apply must run in the node's network namespace: netlink requests go through
// the handle given to New, but the forwarding sysctls are written through
// /proc/sys of the calling thread, and nftables is reached from it.
package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/internal/nldump"
	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
)

// RouteProtocol marks the routes Plexus installs (rtm_protocol 0xb9 = 185,
// unused by the values in /etc/iproute2/rt_protos). `ip route show proto 185`
// lists them.
const RouteProtocol netlink.RouteProtocol = 0xb9

// VXLANOverhead is what VXLAN over an IPv4 underlay adds to a packet: outer
// IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) bytes.
const VXLANOverhead = 50

// Config is the node's fixed datapath settings.
type Config struct {
	// Device is the underlay link the node's InternalIP is on.
	Device string
	// VXLANDevice is the name of the VXLAN link Plexus owns.
	VXLANDevice string
	VNI         int
	Port        int
	// MTU is the underlay MTU; 0 takes Device's. The VXLAN device gets
	// MTU - VXLANOverhead.
	MTU int
	// Masquerade translates the source of IPv4 packets from this node's pod
	// CIDRs that leave through one of MasqueradeDevices (none: Device) to
	// that device's address, unless they go to a pod CIDR (any node's) or
	// to NonMasqueradeCIDRs, or are marked for an egress gateway
	// (fwmark.EgressMask).
	Masquerade         bool
	MasqueradeDevices  []string
	NonMasqueradeCIDRs []netip.Prefix
}

// Kernel applies desired states through one netlink handle. It keeps no
// state between calls: everything it needs is read back from the kernel.
type Kernel struct {
	nl  *netlink.Handle
	cfg Config
	// procSys is where the sysctls are; tests may point elsewhere.
	procSys string
}

// New returns a Kernel that works through h (a handle in the node's netns).
func New(h *netlink.Handle, cfg Config) *Kernel {
	return &Kernel{nl: h, cfg: cfg, procSys: "/proc/sys"}
}

// Changes counts what an Apply wrote. A second Apply of the same desired
// state writes nothing.
type Changes struct {
	// Device is what happened to the VXLAN device: "", created, updated,
	// recreated or deleted.
	Device                           string
	RoutesAdded, RoutesReplaced      int
	RoutesDeleted                    int
	NeighboursSet, NeighboursDeleted int
	FDBAdded, FDBDeleted             int
	Sysctls                          int
	// Masquerade is what happened to the masquerading table: "", written
	// or deleted.
	Masquerade string
	// Conflicts are desired routes not installed because another owner's
	// route holds the destination.
	Conflicts []string
}

// Writes is the number of kernel changes.
func (c Changes) Writes() int {
	n := c.RoutesAdded + c.RoutesReplaced + c.RoutesDeleted + c.NeighboursSet + c.NeighboursDeleted + c.FDBAdded + c.FDBDeleted + c.Sysctls
	if c.Device != "" {
		n++
	}
	if c.Masquerade != "" {
		n++
	}
	return n
}

// Apply makes the kernel match d. It carries on past a failing object so that
// one bad entry does not hold up the rest, and returns every failure joined.
func (k *Kernel) Apply(d routes.Desired) (Changes, error) {
	var ch Changes
	underlay, err := k.nl.LinkByName(k.cfg.Device)
	if err != nil {
		return ch, fmt.Errorf("underlay device %q: %w", k.cfg.Device, err)
	}
	var errs []error
	if err := k.enableForwarding(d, &ch); err != nil {
		errs = append(errs, err)
	}

	// Masquerading first: a pod CIDR must be exempt before a route makes
	// it reachable, or the first connections to it would be masqueraded.
	if err := k.syncMasquerade(d, &ch); err != nil {
		errs = append(errs, err)
	}
	switch d.Mode {
	case routes.ModeVXLAN:
		vx, err := k.ensureVXLAN(d.Local, underlay, &ch)
		if err != nil {
			return ch, errors.Join(append(errs, err)...)
		}
		// Next hops resolve before the routes that use them appear, and
		// stale ones go only after their routes have.
		errs = append(errs, k.syncNeighbours(vx, d.VTEPs, &ch, false)...)
		errs = append(errs, k.syncFDB(vx, d.VTEPs, &ch, false)...)
		errs = append(errs, k.syncRoutes(d.Routes, vx.Attrs().Index, true, &ch)...)
		errs = append(errs, k.syncNeighbours(vx, d.VTEPs, &ch, true)...)
		errs = append(errs, k.syncFDB(vx, d.VTEPs, &ch, true)...)
	case routes.ModeNative:
		// Routes move to the underlay (a replace each) before the device
		// that carried them in VXLAN mode goes.
		errs = append(errs, k.syncRoutes(d.Routes, underlay.Attrs().Index, false, &ch)...)
		if err := k.deleteVXLAN(&ch); err != nil {
			errs = append(errs, err)
		}
	default:
		return ch, fmt.Errorf("routing mode %q: want %q or %q", d.Mode, routes.ModeNative, routes.ModeVXLAN)
	}
	return ch, errors.Join(errs...)
}

// enableForwarding turns on IPv4 forwarding (always: the node routes its pods'
// traffic) and IPv6 forwarding when an IPv6 CIDR is routed.
func (k *Kernel) enableForwarding(d routes.Desired, ch *Changes) error {
	keys := []string{"net/ipv4/ip_forward"}
	if slices.ContainsFunc(d.Routes, func(r routes.Route) bool { return r.Dst.Addr().Is6() }) {
		keys = append(keys, "net/ipv6/conf/all/forwarding")
	}
	for _, key := range keys {
		path := k.procSys + "/" + key
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
		if strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=1: %w", key, err)
		}
		ch.Sysctls++
	}
	return nil
}

// ensureVXLAN adopts the VXLAN device if its identity (VNI, port, source
// address, underlay, no learning) is right, fixes its MTU, MAC and state in
// place, and recreates it only when its identity is wrong.
func (k *Kernel) ensureVXLAN(local netip.Addr, underlay netlink.Link, ch *Changes) (netlink.Link, error) {
	if !local.Is4() {
		return nil, fmt.Errorf("VXLAN needs the node's IPv4 InternalIP, got %v", local)
	}
	mtu := k.cfg.MTU
	if mtu == 0 {
		mtu = underlay.Attrs().MTU
	}
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{
			Name:         k.cfg.VXLANDevice,
			MTU:          mtu - VXLANOverhead,
			HardwareAddr: routes.MAC(local),
		},
		VxlanId:      k.cfg.VNI,
		VtepDevIndex: underlay.Attrs().Index,
		SrcAddr:      net.IP(local.AsSlice()),
		Port:         k.cfg.Port,
		Learning:     false,
	}

	link, err := k.nl.LinkByName(k.cfg.VXLANDevice)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		link = nil
	case err != nil:
		return nil, fmt.Errorf("VXLAN device %q: %w", k.cfg.VXLANDevice, err)
	}
	if link != nil {
		have, ok := link.(*netlink.Vxlan)
		if !ok {
			return nil, fmt.Errorf("link %q is a %s device, not VXLAN: remove it or choose another --vxlan-device", k.cfg.VXLANDevice, link.Type())
		}
		if sameTunnel(have, want) {
			return k.updateVXLAN(have, want, ch)
		}
		if err := k.nl.LinkDel(have); err != nil {
			return nil, fmt.Errorf("deleting VXLAN device %q to recreate it: %w", k.cfg.VXLANDevice, err)
		}
		ch.Device = "recreated"
	}
	if err := k.nl.LinkAdd(want); err != nil {
		return nil, fmt.Errorf("creating VXLAN device %q: %w", k.cfg.VXLANDevice, err)
	}
	if ch.Device == "" {
		ch.Device = "created"
	}
	link, err = k.nl.LinkByName(k.cfg.VXLANDevice)
	if err != nil {
		return nil, err
	}
	if err := k.nl.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("setting %q up: %w", k.cfg.VXLANDevice, err)
	}
	return link, nil
}

// sameTunnel compares what cannot change on a live VXLAN device.
func sameTunnel(have, want *netlink.Vxlan) bool {
	return have.VxlanId == want.VxlanId &&
		have.VtepDevIndex == want.VtepDevIndex &&
		have.SrcAddr.Equal(want.SrcAddr) &&
		have.Port == want.Port &&
		have.Learning == want.Learning &&
		!have.FlowBased && len(have.Group) == 0
}

func (k *Kernel) updateVXLAN(have, want *netlink.Vxlan, ch *Changes) (netlink.Link, error) {
	changed := false
	if have.MTU != want.MTU {
		if err := k.nl.LinkSetMTU(have, want.MTU); err != nil {
			return nil, fmt.Errorf("setting the MTU of %q: %w", have.Name, err)
		}
		changed = true
	}
	if have.HardwareAddr.String() != want.HardwareAddr.String() {
		if err := k.nl.LinkSetHardwareAddr(have, want.HardwareAddr); err != nil {
			return nil, fmt.Errorf("setting the MAC of %q: %w", have.Name, err)
		}
		changed = true
	}
	if have.Flags&net.FlagUp == 0 {
		if err := k.nl.LinkSetUp(have); err != nil {
			return nil, fmt.Errorf("setting %q up: %w", have.Name, err)
		}
		changed = true
	}
	if changed {
		ch.Device = "updated"
	}
	return have, nil
}

// deleteVXLAN removes the VXLAN device after leaving VXLAN mode; its FDB,
// neighbours and any route still through it go with it.
func (k *Kernel) deleteVXLAN(ch *Changes) error {
	link, err := k.nl.LinkByName(k.cfg.VXLANDevice)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, ok := link.(*netlink.Vxlan); !ok {
		return nil // not ours
	}
	if err := k.nl.LinkDel(link); err != nil {
		return fmt.Errorf("deleting VXLAN device %q: %w", k.cfg.VXLANDevice, err)
	}
	ch.Device = "deleted"
	return nil
}

// syncRoutes makes the routes with RouteProtocol in the main table exactly
// want, each through link (onlink for IPv4 through the VXLAN device).
func (k *Kernel) syncRoutes(want []routes.Route, link int, onlinkV4 bool, ch *Changes) []error {
	var errs []error
	have := map[netip.Prefix][]netlink.Route{}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := listOwnRoutes(k.nl, family)
		if err != nil {
			return []error{err}
		}
		for _, r := range rs {
			if p, ok := prefixOf(r.Dst); ok {
				have[p] = append(have[p], r)
			}
		}
	}

	wanted := map[netip.Prefix]bool{}
	for _, w := range want {
		wanted[w.Dst] = true
		r := k.route(w, link, onlinkV4 && w.Dst.Addr().Is4())
		existing := have[w.Dst]
		if slices.ContainsFunc(existing, func(e netlink.Route) bool { return sameRoute(e, r) }) {
			// Extra own routes to the same destination (other metrics)
			// are stale.
			for _, e := range existing {
				if !sameRoute(e, r) {
					errs = append(errs, k.deleteRoute(e, ch))
				}
			}
			continue
		}
		if i := slices.IndexFunc(existing, func(e netlink.Route) bool { return e.Priority == metric(r) }); i >= 0 {
			// Same destination and metric: replace in place, no gap.
			if err := k.nl.RouteReplace(r); err != nil {
				errs = append(errs, fmt.Errorf("replacing route %s via %s: %w", w.Dst, w.Via, err))
				continue
			}
			ch.RoutesReplaced++
			for j, e := range existing {
				if j != i {
					errs = append(errs, k.deleteRoute(e, ch))
				}
			}
			continue
		}
		err := k.nl.RouteAdd(r)
		switch {
		case errors.Is(err, unix.EEXIST):
			ch.Conflicts = append(ch.Conflicts, fmt.Sprintf("route to %s (node %s) exists with another protocol; left alone", w.Dst, w.Node))
		case err != nil:
			errs = append(errs, fmt.Errorf("adding route %s via %s: %w", w.Dst, w.Via, err))
		default:
			ch.RoutesAdded++
		}
		for _, e := range existing {
			errs = append(errs, k.deleteRoute(e, ch))
		}
	}
	for p, rs := range have {
		if wanted[p] {
			continue
		}
		for _, r := range rs {
			errs = append(errs, k.deleteRoute(r, ch))
		}
	}
	return slices.DeleteFunc(errs, func(e error) bool { return e == nil })
}

func (k *Kernel) route(w routes.Route, link int, onlink bool) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: link,
		Dst:       prefixToIPNet(w.Dst),
		Gw:        net.IP(w.Via.AsSlice()),
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
	}
	if onlink {
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	return r
}

func (k *Kernel) deleteRoute(r netlink.Route, ch *Changes) error {
	err := k.nl.RouteDel(&r)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil // gone already
	case err != nil:
		return fmt.Errorf("deleting route %s: %w", r.Dst, err)
	}
	ch.RoutesDeleted++
	return nil
}

// metric is the metric the kernel gives r: IPv6 routes added without one get
// 1024.
func metric(r *netlink.Route) int {
	if r.Priority == 0 && r.Dst.IP.To4() == nil {
		return 1024
	}
	return r.Priority
}

// sameRoute compares what Plexus sets.
func sameRoute(have netlink.Route, want *netlink.Route) bool {
	return have.LinkIndex == want.LinkIndex &&
		have.Gw.Equal(want.Gw) &&
		len(have.MultiPath) == 0 &&
		have.Priority == metric(want) &&
		have.Flags&int(netlink.FLAG_ONLINK) == want.Flags&int(netlink.FLAG_ONLINK)
}

func listOwnRoutes(h *netlink.Handle, family int) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol}
	rs, err := nldump.Routes(h, family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if family == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT) {
		return nil, nil // no IPv6 in this kernel: nothing to own
	}
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return rs, nil
}

// syncNeighbours makes the permanent neighbours on the VXLAN device resolve
// every VTEP next hop to its MAC (stale=false: add and fix), or removes every
// other neighbour on it (stale=true).
func (k *Kernel) syncNeighbours(vx netlink.Link, vteps []routes.VTEP, ch *Changes, stale bool) []error {
	idx := vx.Attrs().Index
	want := map[netip.Addr]net.HardwareAddr{}
	for _, v := range vteps {
		for _, n := range v.Neighbours {
			want[n] = v.MAC
		}
	}
	have := map[netip.Addr]netlink.Neigh{}
	var errs []error
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := nldump.Neighs(k.nl, idx, family)
		if err != nil && !(family == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT)) {
			return []error{fmt.Errorf("listing neighbours on %s: %w", vx.Attrs().Name, err)}
		}
		for _, n := range ns {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && n.LinkIndex == idx {
				have[ip.Unmap()] = n
			}
		}
	}
	if stale {
		for ip, n := range have {
			if _, ok := want[ip]; ok || n.State&netlink.NUD_NOARP != 0 {
				continue // wanted, or the kernel's own (multicast) entry
			}
			if err := k.nl.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("deleting neighbour %s on %s: %w", ip, vx.Attrs().Name, err))
				continue
			}
			ch.NeighboursDeleted++
		}
		return errs
	}
	for _, ip := range sortedKeys(want) {
		mac := want[ip]
		if n, ok := have[ip]; ok && n.State == netlink.NUD_PERMANENT && n.HardwareAddr.String() == mac.String() {
			continue
		}
		family := netlink.FAMILY_V4
		if ip.Is6() {
			family = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: family, State: netlink.NUD_PERMANENT, IP: net.IP(ip.AsSlice()), HardwareAddr: mac}
		if err := k.nl.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("setting neighbour %s lladdr %s on %s: %w", ip, mac, vx.Attrs().Name, err))
			continue
		}
		ch.NeighboursSet++
	}
	return errs
}

type fdbKey struct {
	mac string
	dst netip.Addr
}

// syncFDB makes the VXLAN device's forwarding database send each VTEP MAC to
// that node's underlay address (stale=false), or removes every other entry
// (stale=true).
func (k *Kernel) syncFDB(vx netlink.Link, vteps []routes.VTEP, ch *Changes, stale bool) []error {
	idx := vx.Attrs().Index
	entries, err := nldump.Neighs(k.nl, idx, unix.AF_BRIDGE)
	if err != nil {
		return []error{fmt.Errorf("listing the FDB of %s: %w", vx.Attrs().Name, err)}
	}
	have := map[fdbKey]netlink.Neigh{}
	for _, e := range entries {
		dst, ok := netip.AddrFromSlice(e.IP)
		if e.LinkIndex != idx || !ok {
			continue
		}
		have[fdbKey{e.HardwareAddr.String(), dst.Unmap()}] = e
	}
	want := map[fdbKey]bool{}
	for _, v := range vteps {
		want[fdbKey{v.MAC.String(), v.Underlay}] = true
	}
	var errs []error
	if stale {
		for key, e := range have {
			if want[key] {
				continue
			}
			if err := k.nl.NeighDel(&e); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("deleting FDB entry %s dst %s on %s: %w", key.mac, key.dst, vx.Attrs().Name, err))
				continue
			}
			ch.FDBDeleted++
		}
		return errs
	}
	for _, v := range vteps {
		key := fdbKey{v.MAC.String(), v.Underlay}
		if e, ok := have[key]; ok && e.State&netlink.NUD_PERMANENT != 0 {
			continue
		}
		e := &netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
			IP: net.IP(v.Underlay.AsSlice()), HardwareAddr: v.MAC,
		}
		if err := k.nl.NeighAppend(e); err != nil {
			errs = append(errs, fmt.Errorf("adding FDB entry %s dst %s on %s: %w", v.MAC, v.Underlay, vx.Attrs().Name, err))
			continue
		}
		ch.FDBAdded++
	}
	return errs
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func sortedKeys(m map[netip.Addr]net.HardwareAddr) []netip.Addr {
	keys := make([]netip.Addr, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b netip.Addr) int { return a.Compare(b) })
	return keys
}
