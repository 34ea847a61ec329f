package allocator

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/internal/iprange"
)

// Allocate decides the addresses of every Service and the status of every
// pool. It never mutates its arguments, and the same input gives the same
// output.
func Allocate(cfg Config, pools []Pool, services []Service) Result {
	a := newAllocation(pools)
	a.cfg = cfg
	svcs := make([]*serviceState, len(services))
	for i := range services {
		svcs[i] = &serviceState{Service: &services[i]}
	}
	// Oldest first, so that when two Services claim one address the older
	// keeps it, and so that new addresses are handed out in a stable order.
	slices.SortStableFunc(svcs, func(x, y *serviceState) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return cmp.Compare(x.Key.String(), y.Key.String())
	})
	for _, s := range svcs {
		s.wanted, s.familyErr = wantedFamilies(cfg, s.Service)
	}
	// Phase 1 keeps every valid holding before phase 2 makes any new one:
	// decided holdings first, then those recorded in status, then imported
	// ones, each oldest first.
	for _, from := range []HeldSource{HeldDecided, HeldRecorded, HeldImported} {
		for _, s := range svcs {
			if s.HeldFrom == from {
				a.restore(s)
			}
		}
	}
	// Phase 2 serves the addresses Services ask for by name before it picks
	// any address for the others, so that no pick takes a requested address.
	for _, requests := range []bool{true, false} {
		for _, s := range svcs {
			if s.hasRequests() == requests && !s.Terminating {
				a.allocateMissing(s)
			}
		}
	}

	res := Result{
		Services: make(map[types.NamespacedName]ServiceResult, len(svcs)),
		Pools:    make(map[string]PoolResult, len(a.pools)),
	}
	for _, s := range svcs {
		res.Services[s.Key] = s.result()
	}
	for _, p := range a.pools {
		// A kept reserved address counts as both in the pool and in use, so
		// what is available is exactly what the pool would give out.
		total := iprange.TotalSize(p.ranges)
		total.Add(total, big.NewInt(int64(p.keptReserved)))
		res.Pools[p.Name] = PoolResult{
			Conflict:     p.conflict,
			BlockErrors:  p.blockErrors,
			Total:        total,
			Used:         big.NewInt(int64(p.used)),
			KeptReserved: p.keptReserved,
		}
	}
	return res
}

type poolState struct {
	*Pool
	// ranges are the allocatable addresses: blocks after first/last
	// reservation, merged so no address appears twice.
	ranges []iprange.Range
	// next[i]: every address of ranges[i] below it is taken.
	next []netip.Addr
	// reserved are the first and last addresses of CIDR blocks that
	// allowFirstLastIPs: No keeps out of ranges. The pool hands none of them
	// out, but a Service that already holds one keeps it: the setting only
	// narrows future choices.
	reserved     []netip.Addr
	keptReserved int
	conflict     string
	blockErrors  []string
	used         int
}

// allocatesNew says whether the pool may hand out addresses it has not
// handed out before.
func (p *poolState) allocatesNew() bool {
	return p.conflict == "" && !p.Disabled && p.SelectorErr == nil
}

func (p *poolState) selects(s *Service) bool {
	return p.Selector != nil && p.Selector.Matches(s.Labels)
}

func (p *poolState) contains(addr netip.Addr) bool {
	for _, r := range p.ranges {
		if r.Contains(addr) {
			return true
		}
	}
	return false
}

func (p *poolState) isReserved(addr netip.Addr) bool {
	return slices.Contains(p.reserved, addr) && !p.contains(addr)
}

// keeps says whether a Service may go on holding addr from this pool: the
// pool still has the address (a reserved one included) and still selects the
// Service. Disabled and conflicting pools keep what they gave; a pool whose
// selector is invalid keeps everything, since no one can tell whom it
// selects. An address that someone other than LB-IPAM put in status is adopted only
// if the pool would give it out.
func (p *poolState) keeps(s *Service, addr netip.Addr) bool {
	has := p.contains(addr) || (p.isReserved(addr) && s.HeldFrom != HeldImported)
	return has && (p.SelectorErr != nil || p.selects(s))
}

type holding struct {
	holders []*serviceState
}

type allocation struct {
	cfg   Config
	pools []*poolState // oldest first
	held  map[netip.Addr]*holding
	// shared lists, per sharing key, the addresses its Services hold, in the
	// order they were taken.
	shared map[string][]netip.Addr
}

func newAllocation(pools []Pool) *allocation {
	a := &allocation{held: map[netip.Addr]*holding{}, shared: map[string][]netip.Addr{}}
	for i := range pools {
		a.pools = append(a.pools, &poolState{Pool: &pools[i]})
	}
	slices.SortStableFunc(a.pools, func(x, y *poolState) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return cmp.Compare(x.Name, y.Name)
	})
	type block struct {
		iprange.Range
		label, pool string
	}
	var winners []block // blocks of the pools that do not conflict
	for _, p := range a.pools {
		var blocks []block
		for _, b := range p.Blocks {
			full, usable, err := parseBlock(b, p.AllowFirstLastIPs)
			if err != nil {
				p.blockErrors = append(p.blockErrors, err.Error())
				continue
			}
			blocks = append(blocks, block{full, blockLabel(b), p.Name})
			if usable != nil {
				p.ranges = append(p.ranges, *usable)
			}
			if usable == nil || *usable != full {
				p.reserved = append(p.reserved, full.First, full.Last)
			}
		}
		p.ranges = iprange.Merge(p.ranges)
		p.next = make([]netip.Addr, len(p.ranges))
		for i, r := range p.ranges {
			p.next[i] = r.First
		}
		// Of two pools that overlap, the later one is the conflicting one.
	overlap:
		for _, b := range blocks {
			for _, w := range winners {
				if b.Overlaps(w.Range) {
					p.conflict = fmt.Sprintf("Pool conflicts since CIDR '%s' overlaps CIDR '%s' from IP Pool '%s'", b.label, w.label, w.pool)
					break overlap
				}
			}
		}
		if p.conflict == "" {
			winners = append(winners, blocks...)
		}
	}
	return a
}

func blockLabel(b Block) string {
	switch {
	case b.CIDR != "":
		return b.CIDR
	case b.Stop != "":
		return b.Start + "-" + b.Stop
	default:
		return b.Start
	}
}

// parseBlock returns the whole block (for conflict checks) and the part of it
// that may be allocated (nil when reservation leaves nothing).
func parseBlock(b Block, allowFirstLast bool) (iprange.Range, *iprange.Range, error) {
	if b.CIDR != "" {
		prefix, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return iprange.Range{}, nil, fmt.Errorf("block %q is not a CIDR", b.CIDR)
		}
		full, _ := iprange.FromPrefix(prefix, false)
		usable, ok := iprange.FromPrefix(prefix, !allowFirstLast)
		if !ok {
			return full, nil, nil
		}
		return full, &usable, nil
	}
	r, err := iprange.Parse(b.Start, b.Stop)
	if err != nil {
		return iprange.Range{}, nil, fmt.Errorf("block %s: %w", blockLabel(b), err)
	}
	return r, &r, nil
}

type serviceState struct {
	*Service
	wanted    []Family
	familyErr string
	assigned  []Assignment
	// keptReserved are the assigned addresses that their pool would no longer
	// give out (allowFirstLastIPs: No since they were given).
	keptReserved []Assignment
	// first reason the Service could not be satisfied, if any
	failReason, failMessage string
}

func (s *serviceState) fail(reason, format string, args ...any) {
	if s.failReason == "" {
		s.failReason, s.failMessage = reason, fmt.Sprintf(format, args...)
	}
}

func (s *serviceState) holds(addr netip.Addr) bool {
	return slices.ContainsFunc(s.assigned, func(x Assignment) bool { return x.Addr == addr })
}

func (s *serviceState) holdsFamily(f Family) bool {
	return slices.ContainsFunc(s.assigned, func(x Assignment) bool { return familyOf(x.Addr) == f })
}

// hasRequests: the Service names its addresses (even if only invalid ones),
// so none is picked for it.
func (s *serviceState) hasRequests() bool {
	return len(s.Requested) > 0 || len(s.RequestErrors) > 0
}

func (s *serviceState) requests(addr netip.Addr) bool {
	return slices.Contains(s.Requested, addr)
}

func (c Config) enabled(f Family) bool {
	return (f == IPv4 && c.IPv4Enabled) || (f == IPv6 && c.IPv6Enabled)
}

// wantedFamilies applies spec.ipFamilyPolicy: SingleStack wants its first
// family (IPv4 first when none is given), PreferDualStack every enabled family
// it lists, RequireDualStack both. The order of spec.ipFamilies does not
// matter for dual stack.
func wantedFamilies(cfg Config, s *Service) ([]Family, string) {
	enabled := cfg.enabled
	switch s.FamilyPolicy {
	case RequireDualStack:
		for _, f := range []Family{IPv4, IPv6} {
			if !enabled(f) {
				return nil, fmt.Sprintf("ipFamilyPolicy RequireDualStack needs %s, which is not enabled for LB-IPAM", f)
			}
		}
		return []Family{IPv4, IPv6}, ""
	case PreferDualStack:
		listed := s.Families
		if len(listed) == 0 {
			listed = []Family{IPv4, IPv6}
		}
		var out []Family
		for _, f := range []Family{IPv4, IPv6} {
			if slices.Contains(listed, f) && enabled(f) {
				out = append(out, f)
			}
		}
		if len(out) == 0 {
			return nil, "none of the Service's IP families is enabled for LB-IPAM"
		}
		return out, ""
	default:
		f := IPv4
		switch {
		case len(s.Families) > 0:
			f = s.Families[0]
		case !cfg.IPv4Enabled && cfg.IPv6Enabled:
			f = IPv6
		}
		if !enabled(f) {
			return nil, fmt.Sprintf("the Service asks for %s, which is not enabled for LB-IPAM", f)
		}
		return []Family{f}, ""
	}
}

// restore keeps the addresses s already holds that are still valid.
func (a *allocation) restore(s *serviceState) {
	for _, addr := range s.Held {
		addr = addr.Unmap()
		if !addr.IsValid() || s.holds(addr) {
			continue
		}
		if len(s.Requested) > 0 {
			// With explicit requests, only requested addresses are held.
			if !s.requests(addr) {
				continue
			}
		} else if !slices.Contains(s.wanted, familyOf(addr)) || s.holdsFamily(familyOf(addr)) {
			continue
		}
		if !slices.ContainsFunc(a.pools, func(p *poolState) bool { return p.keeps(s.Service, addr) }) {
			continue
		}
		if h := a.held[addr]; h != nil {
			if ok, _ := compatibleWithAll(s.Service, h.holders); !ok {
				continue // an older Service holds it; this one gets another
			}
		}
		a.assign(s, addr)
	}
}

// anyPool says whether some pool that contains addr satisfies ok.
func (a *allocation) anyPool(addr netip.Addr, ok func(*poolState) bool) bool {
	return slices.ContainsFunc(a.pools, func(p *poolState) bool { return p.contains(addr) && ok(p) })
}

// owner is the pool an address counts against: of the pools that give it
// out, the one that does not conflict (at most one, since conflicts are
// judged on whole blocks), else the oldest; only when none gives it out, the
// pool that reserves it (a Service keeps it from before), chosen the same way.
// It depends on the pools alone, so counts do not depend on which Service took
// the address first.
func (a *allocation) owner(addr netip.Addr) *poolState {
	for _, has := range []func(*poolState, netip.Addr) bool{(*poolState).contains, (*poolState).isReserved} {
		var first *poolState
		for _, p := range a.pools {
			if has(p, addr) {
				if p.conflict == "" {
					return p
				}
				first = cmp.Or(first, p)
			}
		}
		if first != nil {
			return first
		}
	}
	return nil
}

func (a *allocation) assign(s *serviceState, addr netip.Addr) {
	pool := a.owner(addr)
	h := a.held[addr]
	if h == nil {
		h = &holding{}
		a.held[addr] = h
		pool.used++
		if pool.isReserved(addr) {
			pool.keptReserved++
		}
		if s.SharingKey != "" {
			a.shared[s.SharingKey] = append(a.shared[s.SharingKey], addr)
		}
	}
	h.holders = append(h.holders, s)
	s.assigned = append(s.assigned, Assignment{Addr: addr, Pool: pool.Name})
	if pool.isReserved(addr) {
		s.keptReserved = append(s.keptReserved, Assignment{Addr: addr, Pool: pool.Name})
	}
}

// allocateMissing gives s what it still lacks after restore.
func (a *allocation) allocateMissing(s *serviceState) {
	if len(s.RequestErrors) > 0 {
		// A typo keeps what the Service holds (restore kept it) and adds
		// nothing it did not name.
		s.fail(ReasonInvalidRequestedIP, "Requested IPs %s are not IP addresses", quoteAll(s.RequestErrors))
	}
	if s.hasRequests() {
		for _, addr := range s.Requested {
			switch {
			case s.holds(addr):
			case !a.cfg.enabled(familyOf(addr)):
				s.fail(ReasonFamilyDisabled, "The requested IP '%s' is %s, which is not enabled for LB-IPAM", addr, familyOf(addr))
			default:
				a.allocateRequested(s, addr)
			}
		}
		return
	}
	if s.familyErr != "" {
		s.fail(ReasonFamilyDisabled, "%s", s.familyErr)
		return
	}
	for _, f := range s.wanted {
		if !s.holdsFamily(f) && !a.joinSharedAddress(s, f) {
			a.allocateAny(s, f)
		}
	}
}

// allocateRequested gives s the address it asked for, or records why not.
// A held address is shared when the holders are compatible; otherwise what
// the pools allow is judged first, and "already allocated" is the answer only
// where a pool would have given the address.
func (a *allocation) allocateRequested(s *serviceState, addr netip.Addr) {
	var containing, selecting, allocating *poolState
	for _, p := range a.pools {
		if !p.contains(addr) {
			continue
		}
		containing = cmp.Or(containing, p)
		// A pool whose selector is invalid may select s for all anyone
		// knows; it answers "allocates nothing new", not "doesn't select".
		if p.selects(s.Service) || p.SelectorErr != nil {
			selecting = cmp.Or(selecting, p)
			if p.allocatesNew() {
				allocating = cmp.Or(allocating, p)
			}
		}
	}
	h := a.held[addr]
	var compatible bool
	var why string
	if h != nil {
		compatible, why = compatibleWithAll(s.Service, h.holders)
	}
	switch {
	case h != nil && selecting != nil && compatible:
		a.assign(s, addr) // share it
	case h != nil && allocating != nil:
		if s.SharingKey != "" && slices.ContainsFunc(h.holders, func(o *serviceState) bool { return o.SharingKey == s.SharingKey }) {
			s.fail(ReasonAlreadyAllocatedIncompat, "The IP '%s' is already allocated to an incompatible service. Reason: %s", addr, why)
		} else {
			s.fail(ReasonAlreadyAllocated, "The IP '%s' is already allocated to another service", addr)
		}
	case allocating != nil:
		a.assign(s, addr)
	case selecting != nil:
		s.fail(ReasonNoPool, "The pool '%s' containing '%s' allocates nothing new: %s", selecting.Name, addr, selecting.whyNoNew())
	case containing != nil:
		s.fail(ReasonPoolSelectorMismatch, "The pool with the CIDR containing '%s', doesn't select this service", addr)
	default:
		if p := a.reservingPool(addr); p != nil {
			if h != nil {
				s.fail(ReasonAlreadyAllocated, "The IP '%s' is already allocated to another service, which keeps it although pool '%s' reserves it now (allowFirstLastIPs: No)", addr, p.Name)
				return
			}
			s.fail(ReasonNoPool, "No pool exists with a CIDR containing '%s': pool '%s' reserves the first and last address of its CIDRs (allowFirstLastIPs: No)", addr, p.Name)
			return
		}
		s.fail(ReasonNoPool, "No pool exists with a CIDR containing '%s'", addr)
	}
}

func (p *poolState) whyNoNew() string {
	switch {
	case p.conflict != "":
		return "it conflicts with another pool"
	case p.Disabled:
		return "it is disabled"
	default:
		return "its serviceSelector is invalid"
	}
}

// reservingPool finds the pool whose CIDR reservation excluded addr.
func (a *allocation) reservingPool(addr netip.Addr) *poolState {
	for _, p := range a.pools {
		for _, b := range p.Blocks {
			if full, _, err := parseBlock(b, true); err == nil && b.CIDR != "" && full.Contains(addr) {
				return p
			}
		}
	}
	return nil
}

// joinSharedAddress gives s an address of family f already held under its
// sharing key, if a compatible one exists in a pool that selects s.
func (a *allocation) joinSharedAddress(s *serviceState, f Family) bool {
	if s.SharingKey == "" {
		return false
	}
	for _, addr := range a.shared[s.SharingKey] {
		if familyOf(addr) != f || !a.anyPool(addr, func(p *poolState) bool { return p.selects(s.Service) }) {
			continue
		}
		if ok, _ := compatibleWithAll(s.Service, a.held[addr].holders); ok {
			a.assign(s, addr)
			return true
		}
	}
	return false
}

// allocateAny takes the lowest free address of family f from the oldest pool
// that selects s and allocates.
func (a *allocation) allocateAny(s *serviceState, f Family) {
	anyPool := false
	for _, p := range a.pools {
		if !p.allocatesNew() || !p.selects(s.Service) {
			continue
		}
		for i, r := range p.ranges {
			if familyOf(r.First) != f {
				continue
			}
			anyPool = true
			for addr := p.next[i]; addr.IsValid() && r.Contains(addr); addr = addr.Next() {
				if a.held[addr] == nil {
					p.next[i] = addr.Next()
					a.assign(s, addr)
					return
				}
			}
			p.next[i] = netip.Addr{} // exhausted
		}
	}
	if anyPool {
		s.fail(ReasonOutOfIPs, "%s", "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs")
	} else {
		s.fail(ReasonNoPool, "%s", "There are no enabled CiliumLoadBalancerIPPools that match this service")
	}
}

func (s *serviceState) result() ServiceResult {
	addrs := slices.Clone(s.assigned)
	slices.SortFunc(addrs, func(x, y Assignment) int {
		if fx, fy := familyOf(x.Addr), familyOf(y.Addr); fx != fy {
			return cmp.Compare(fx, fy)
		}
		return x.Addr.Compare(y.Addr)
	})
	r := ServiceResult{Addresses: addrs}
	switch {
	case s.failReason != "" && !(s.FamilyPolicy == PreferDualStack && !s.hasRequests() && len(addrs) > 0):
		r.Reason, r.Message = s.failReason, s.failMessage
	case len(addrs) == 0:
		// Nothing failed and nothing is held: only when no family is wanted.
		r.Reason, r.Message = ReasonNoPool, "There are no enabled CiliumLoadBalancerIPPools that match this service"
	default:
		r.Satisfied, r.Reason = true, ReasonSatisfied
		var notes []string
		if s.failReason != "" {
			// PreferDualStack with one family served: satisfied, and says why
			// the other is missing.
			notes = append(notes, "Only "+familyOf(addrs[0].Addr).String()+" allocated: "+s.failMessage)
		}
		for _, k := range s.keptReserved {
			notes = append(notes, fmt.Sprintf("The IP '%s' is kept, although pool '%s' would not give it out today (allowFirstLastIPs: No)", k.Addr, k.Pool))
		}
		r.Message = strings.Join(notes, "; ")
	}
	return r
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// PoolCovers says whether addr lies in one of p's blocks, reserved first and
// last addresses included.
func PoolCovers(p Pool, addr netip.Addr) bool {
	for _, b := range p.Blocks {
		if full, _, err := parseBlock(b, true); err == nil && full.Contains(addr) {
			return true
		}
	}
	return false
}
