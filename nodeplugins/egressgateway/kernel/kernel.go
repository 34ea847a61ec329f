// Package kernel makes a node's egress gateway datapath match a State:
//
//   - steering: an nftables chain at prerouting marks the packets of a Steer
//     with the egress slot of its next hop (fwmark.Egress), and an ip rule per
//     slot routes the marked packets by a table whose default route goes via
//     that next hop; a dropping Steer drops them instead;
//   - translating, as a gateway: an nftables NAT chain at postrouting
//     rewrites the source of an SNAT's packets to its EgressIP; a dropping
//     SNAT drops them in a forward chain. Replies are translated back by
//     conntrack without a NAT chain at prerouting: the NAT core registers its
//     hooks at every point of a netns once any NAT chain is registered there
//     (checked by the kernel test on Linux 6.18).
//
// IPv4 only: IPv6 sources, prefixes and next hops are left out (see compile).
//
// Ownership: the nftables table TableName (family ip), replaced whole and
// atomically; the ip rules at RulePriority that point into the tables
// RouteTableBase+1 .. RouteTableBase+fwmark.EgressSlots-1, and the routes with
// RouteProtocol in those tables. Nothing else is touched.
//
// Namespace: New binds the Kernel to the network namespace of the calling
// thread (nftables and netlink requests go there, whatever thread makes them
// later); the sysctls are written through /proc/sys of the calling thread,
// so Apply must run in that namespace too. A node plugin runs in the host
// namespace and has nothing to do; a test calls New and Apply inside
// netnstest.Do.
package kernel

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Kernel applies States in one network namespace; it is not safe for
// concurrent use. It remembers the table it wrote last, so that applying an
// equal State writes nothing (rules, routes and sysctls are read and
// compared on every Apply); a new Kernel (a restarted process) replaces the
// table once, atomically, on its first Apply.
type Kernel struct {
	ns netns.NsHandle
	nl *netlink.Handle
	// procSys is where the sysctls are; tests may point elsewhere.
	procSys string
	// last is the plan of the table in the kernel, nil when unknown.
	last *plan
	// applied is the last State applied without error.
	applied State
	writes  int
}

// New returns a Kernel bound to the calling thread's network namespace; the
// caller keeps the goroutine on that thread (runtime.LockOSThread) if the
// process has threads in several namespaces. Close releases it.
func New() (*Kernel, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &Kernel{ns: ns, nl: nl, procSys: "/proc/sys"}, nil
}

// Close releases the netlink handle and the namespace; the kernel state
// stays.
func (k *Kernel) Close() error {
	k.nl.Close()
	return k.ns.Close()
}

// Writes counts the changes made to the kernel since New: table
// replacements, rules, routes and sysctls written or deleted.
func (k *Kernel) Writes() int { return k.writes }

// Apply makes the kernel match s: sysctls (when s steers or translates
// anything), then the routes and rules of the slots, then the table, then
// the deletion of stale rules and routes, so that no packet is marked for a
// slot that cannot route it. It carries on past failures and returns them
// joined. A State with nothing to steer or translate leaves nothing of ours.
func (k *Kernel) Apply(s State) error {
	p, err := compile(s)
	if err != nil {
		return err
	}
	var errs []error
	if !p.empty() {
		if err := k.setSysctls(); err != nil {
			errs = append(errs, err)
		}
	}
	routes, routeErrs := k.wantRoutes(p)
	rules := wantRules(p)
	errs = append(errs, routeErrs...)
	errs = append(errs, k.addRouting(routes, rules)...)
	if err := k.syncTable(p); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, k.deleteStaleRouting(routes, rules)...)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.applied = s
	return nil
}

// Clear removes the table, rules and routes this package owns. The sysctls
// stay: forwarding is the datapath's too.
func (k *Kernel) Clear() error {
	empty := &plan{}
	errs := []error{k.syncTable(empty)}
	errs = append(errs, k.deleteStaleRouting(nil, nil)...)
	k.applied = State{}
	return errors.Join(errs...)
}

// Rows describes the last State applied without error (see Rows).
func (k *Kernel) Rows() []Row { return Rows(k.applied) }

// syncTable replaces the table unless it already holds p.
func (k *Kernel) syncTable(p *plan) error {
	if k.last == nil && p.empty() {
		k.last = &plan{} // nothing to write if there is no table
	}
	if k.last != nil && k.last.equal(p) {
		exists, err := k.tableExists()
		if err != nil {
			return err
		}
		if exists != p.empty() {
			return nil
		}
		// Someone deleted or added the table: write it again.
	}
	k.last = nil
	if err := k.replaceTable(p); err != nil {
		return err
	}
	k.last = p
	k.writes++
	return nil
}
