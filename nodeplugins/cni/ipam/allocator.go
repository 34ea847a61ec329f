// Package ipam is the node-local pod address allocator of the Plexus CNI
// agent: it hands out addresses from the CIDRs a node holds per pool, keyed by
// (container ID, interface name), and persists every change before it is
// reported, so that a restart never hands out an address twice.
//
// It knows nothing about Kubernetes: the agent tells it which CIDRs each pool
// has on the node (SetPools) and asks for addresses (Allocate).
package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/plexus-net/plexus/internal/iprange"
)

// Family is an IP family.
type Family int

// The families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf returns the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Key identifies one pod interface: the CNI (container ID, interface name).
type Key struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

func (k Key) String() string { return k.ContainerID + "/" + k.IfName }

// Pod is who an allocation is for.
type Pod struct {
	Namespace string `json:"podNamespace,omitempty"`
	Name      string `json:"podName,omitempty"`
	UID       string `json:"podUID,omitempty"`
}

// IP is one allocated address with the node CIDR it came from.
type IP struct {
	Address netip.Addr   `json:"address"`
	CIDR    netip.Prefix `json:"cidr"`
	// Gateway is the CIDR's gateway address; invalid for CIDRs too small to
	// have one (/31, /32, /127, /128).
	Gateway netip.Addr `json:"gateway,omitzero"`
}

// Allocation is the addresses of one pod interface.
type Allocation struct {
	Key
	Pod
	Pool    string    `json:"pool"`
	IPs     []IP      `json:"ips"`
	Created time.Time `json:"created"`
}

// Pool is what one pool has on the node.
type Pool struct {
	Name  string
	CIDRs []netip.Prefix
	Layout
}

// Layout says which addresses of a pool's node CIDRs pods may not have,
// besides each CIDR's gateway (its second address).
type Layout struct {
	// Reserved are further addresses never handed out, such as the first and
	// last address of each CiliumPodIPPool CIDR.
	Reserved []netip.Addr
	// AllowFirst and AllowLast let pods have a node CIDR's first (network)
	// and last (broadcast) address: CiliumPodIPPool allowFirstIP and
	// allowLastIP. CIDRs too small to spare them (/31, /32, /127, /128) give
	// out every address anyway.
	AllowFirst, AllowLast bool
}

// Request asks for the addresses of one pod interface.
type Request struct {
	Key
	Pod
	Pool string
	// Families to allocate; empty means every family the pool has a CIDR of.
	Families []Family
}

// Reason says why an allocation failed.
type Reason string

// The reasons of a PoolError.
const (
	// ReasonNoCIDR: the pool has no CIDR of the family on this node (yet).
	ReasonNoCIDR Reason = "NoCIDR"
	// ReasonExhausted: every address of the pool's CIDRs of the family is
	// taken.
	ReasonExhausted Reason = "Exhausted"
)

// PoolError is a failed allocation; its message names the pool.
type PoolError struct {
	Reason Reason
	Pool   string
	Node   string
	Family Family
	// CIDRs and Addresses are the pool's node CIDRs of the family and the
	// addresses they hold for pods (without reserved ones).
	CIDRs     int
	Addresses *big.Int
}

func (e *PoolError) Error() string {
	if e.Reason == ReasonNoCIDR {
		return fmt.Sprintf("pool %q has no %s CIDR on node %s", e.Pool, e.Family, e.Node)
	}
	cidrs := "CIDRs"
	if e.CIDRs == 1 {
		cidrs = "CIDR"
	}
	return fmt.Sprintf("pool %q has no free %s address on node %s (%d %s, %s addresses, all in use)",
		e.Pool, e.Family, e.Node, e.CIDRs, cidrs, e.Addresses)
}

// IsReason reports whether err is a PoolError with reason r.
func IsReason(err error, r Reason) bool {
	var pe *PoolError
	return errors.As(err, &pe) && pe.Reason == r
}

// Options tune an Allocator.
type Options struct {
	// Node names the node in error messages.
	Node string
	// BootID is the current kernel boot; allocations stored under another
	// boot are dropped on load (no pod network namespace survives a reboot).
	// Empty turns the check off.
	BootID string
	// OnRelease is told about every allocation the allocator drops by itself
	// (reboot, replaced sandbox), for logging.
	OnRelease func(a Allocation, why string)
	// Now is the clock (tests).
	Now func() time.Time
}

// Allocator hands out pod addresses. It is safe for concurrent use.
type Allocator struct {
	mu     sync.Mutex
	opts   Options
	store  Store
	pools  map[string]Pool
	allocs map[Key]Allocation
	owner  map[netip.Addr]Key
	// cursor is where the next search in a CIDR starts, so that a released
	// address is not handed out again at once.
	cursor map[netip.Prefix]netip.Addr
}

// New restores the allocator from store.
func New(store Store, opts Options) (*Allocator, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnRelease == nil {
		opts.OnRelease = func(Allocation, string) {}
	}
	s, err := store.Load()
	if err != nil {
		return nil, err
	}
	a := &Allocator{
		opts:   opts,
		store:  store,
		pools:  map[string]Pool{},
		allocs: map[Key]Allocation{},
		owner:  map[netip.Addr]Key{},
		cursor: map[netip.Prefix]netip.Addr{},
	}
	stale := opts.BootID != "" && s.BootID != "" && s.BootID != opts.BootID
	for _, al := range s.Allocations {
		if stale {
			opts.OnRelease(al, "the node rebooted since it was made")
			continue
		}
		if _, dup := a.allocs[al.Key]; dup {
			return nil, fmt.Errorf("stored state lists %s twice", al.Key)
		}
		for _, ip := range al.IPs {
			if other, taken := a.owner[ip.Address]; taken {
				return nil, fmt.Errorf("stored state gives %s to both %s and %s", ip.Address, other, al.Key)
			}
			a.owner[ip.Address] = al.Key
		}
		a.allocs[al.Key] = al
	}
	if stale {
		if err := a.save(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// SetPools replaces what the pools have on the node. Existing allocations
// keep their addresses even when their CIDR is gone.
func (a *Allocator) SetPools(pools []Pool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools = make(map[string]Pool, len(pools))
	for _, p := range pools {
		p.CIDRs, p.Reserved = slices.Clone(p.CIDRs), slices.Clone(p.Reserved)
		a.pools[p.Name] = p
	}
}

// Pools returns what the pools have on the node.
func (a *Allocator) Pools() []Pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Pool, 0, len(a.pools))
	for _, p := range a.pools {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Allocate returns the addresses of r.Key: the ones it already has (a retried
// ADD), or new ones, persisted before Allocate returns. An earlier allocation
// of the same pod and interface under another container ID is released: a pod
// has one sandbox at a time, and the old one is gone (e.g. after a reboot).
func (a *Allocator) Allocate(r Request) (Allocation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if have, ok := a.allocs[r.Key]; ok {
		return have, nil
	}
	pool, ok := a.pools[r.Pool]
	families := r.Families
	if len(families) == 0 {
		for _, c := range pool.CIDRs {
			if f := FamilyOf(c.Addr()); !slices.Contains(families, f) {
				families = append(families, f)
			}
		}
		slices.Sort(families)
	}
	if !ok || len(families) == 0 {
		return Allocation{}, &PoolError{Reason: ReasonNoCIDR, Pool: r.Pool, Node: a.opts.Node, Family: IPv4}
	}
	al := Allocation{Key: r.Key, Pod: r.Pod, Pool: r.Pool, Created: a.opts.Now().UTC()}
	for _, f := range families {
		ip, err := a.pick(pool, f, al.IPs)
		if err != nil {
			return Allocation{}, err
		}
		al.IPs = append(al.IPs, ip)
	}

	var replaced []Allocation
	if r.UID != "" {
		for k, old := range a.allocs {
			if old.UID == r.UID && old.IfName == r.IfName {
				replaced = append(replaced, old)
				a.drop(k)
			}
		}
	}
	a.allocs[al.Key] = al
	for _, ip := range al.IPs {
		a.owner[ip.Address] = al.Key
	}
	if err := a.save(); err != nil {
		a.drop(al.Key)
		for _, old := range replaced {
			a.put(old)
		}
		return Allocation{}, fmt.Errorf("persisting the allocation: %w", err)
	}
	for _, ip := range al.IPs {
		a.cursor[ip.CIDR] = ip.Address.Next()
	}
	for _, old := range replaced {
		a.opts.OnRelease(old, "the pod has a new sandbox "+r.ContainerID)
	}
	return al, nil
}

// Release drops the allocation of k and persists that. It reports what was
// released; releasing nothing is not an error (DEL is idempotent).
func (a *Allocator) Release(k Key) (Allocation, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.allocs[k]
	if !ok {
		return Allocation{}, false, nil
	}
	a.drop(k)
	if err := a.save(); err != nil {
		a.put(al)
		return Allocation{}, false, fmt.Errorf("persisting the release: %w", err)
	}
	return al, true, nil
}

// Get returns the allocation of k.
func (a *Allocator) Get(k Key) (Allocation, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.allocs[k]
	return al, ok
}

// List returns every allocation, ordered by key.
func (a *Allocator) List() []Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Allocation, 0, len(a.allocs))
	for _, al := range a.allocs {
		out = append(out, al)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerID != out[j].ContainerID {
			return out[i].ContainerID < out[j].ContainerID
		}
		return out[i].IfName < out[j].IfName
	})
	return out
}

// Retire takes cidr out of pool unless an allocation holds an address in it;
// it reports whether it did. The agent retires a CIDR before it gives it back,
// so that no allocation races the give-back.
func (a *Allocator) Retire(pool string, cidr netip.Prefix) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for addr := range a.owner {
		if cidr.Contains(addr) {
			return false
		}
	}
	p, ok := a.pools[pool]
	if ok {
		p.CIDRs = slices.DeleteFunc(slices.Clone(p.CIDRs), func(c netip.Prefix) bool { return c == cidr })
		a.pools[pool] = p
	}
	return true
}

// Capacity is the number of addresses cidr holds for pods: without its
// gateway, without its network and broadcast addresses unless the layout
// allows them, and without reserved ones.
func Capacity(cidr netip.Prefix, l Layout) *big.Int {
	r, gw, ok := usable(cidr, l)
	if !ok {
		return new(big.Int)
	}
	n := r.Size()
	if gw.IsValid() && r.Contains(gw) {
		n.Sub(n, big.NewInt(1))
	}
	seen := map[netip.Addr]bool{}
	for _, x := range l.Reserved {
		if r.Contains(x) && x != gw && !seen[x] {
			seen[x] = true
			n.Sub(n, big.NewInt(1))
		}
	}
	return n
}

// Gateway returns the gateway address of cidr: its first usable address,
// unless the CIDR is too small to spare one.
func Gateway(cidr netip.Prefix) (netip.Addr, bool) {
	_, gw, ok := usable(cidr, Layout{})
	return gw, ok && gw.IsValid()
}

// usable returns the range pods may get addresses from (the gateway included)
// and the gateway, which is the CIDR's second address whatever the layout.
func usable(cidr netip.Prefix, l Layout) (iprange.Range, netip.Addr, bool) {
	cidr = cidr.Masked()
	small := cidr.Addr().BitLen()-cidr.Bits() < 2
	full, ok := iprange.FromPrefix(cidr, false)
	if !ok || small {
		return full, netip.Addr{}, ok
	}
	ends, _ := iprange.FromPrefix(cidr, true)
	gw := ends.First
	if l.AllowFirst {
		ends.First = full.First
	}
	if l.AllowLast {
		ends.Last = full.Last
	}
	return ends, gw, true
}

// pick returns a free address of family f in pool, not among taken.
func (a *Allocator) pick(pool Pool, f Family, taken []IP) (IP, error) {
	var cidrs []netip.Prefix
	for _, c := range pool.CIDRs {
		if FamilyOf(c.Addr()) == f {
			cidrs = append(cidrs, c.Masked())
		}
	}
	if len(cidrs) == 0 {
		return IP{}, &PoolError{Reason: ReasonNoCIDR, Pool: pool.Name, Node: a.opts.Node, Family: f}
	}
	reserved := map[netip.Addr]bool{}
	for _, x := range pool.Reserved {
		reserved[x.Unmap()] = true
	}
	total := new(big.Int)
	for _, c := range cidrs {
		total.Add(total, Capacity(c, pool.Layout))
		r, gw, ok := usable(c, pool.Layout)
		if !ok {
			continue
		}
		free := func(x netip.Addr) bool {
			if x == gw || reserved[x] {
				return false
			}
			if _, used := a.owner[x]; used {
				return false
			}
			return !slices.ContainsFunc(taken, func(ip IP) bool { return ip.Address == x })
		}
		// Among nonFree+1 distinct addresses at least one is free, so the
		// scan is bounded by what is taken, not by the CIDR's size.
		nonFree := int64(len(reserved) + 1 + len(taken))
		for x := range a.owner {
			if c.Contains(x) {
				nonFree++
			}
		}
		steps := big.NewInt(nonFree + 1)
		if size := r.Size(); size.Cmp(steps) < 0 {
			steps = size
		}
		start, ok := a.cursor[c]
		if !ok || !r.Contains(start) {
			start = r.First
		}
		x := start
		for i := int64(0); i < steps.Int64(); i++ {
			if free(x) {
				ip := IP{Address: x, CIDR: c}
				if gw.IsValid() {
					ip.Gateway = gw
				}
				return ip, nil
			}
			if x == r.Last {
				x = r.First
			} else {
				x = x.Next()
			}
		}
	}
	return IP{}, &PoolError{Reason: ReasonExhausted, Pool: pool.Name, Node: a.opts.Node, Family: f, CIDRs: len(cidrs), Addresses: total}
}

func (a *Allocator) drop(k Key) {
	for _, ip := range a.allocs[k].IPs {
		if a.owner[ip.Address] == k {
			delete(a.owner, ip.Address)
		}
	}
	delete(a.allocs, k)
}

func (a *Allocator) put(al Allocation) {
	a.allocs[al.Key] = al
	for _, ip := range al.IPs {
		a.owner[ip.Address] = al.Key
	}
}

func (a *Allocator) save() error {
	s := State{Version: stateVersion, BootID: a.opts.BootID, Allocations: make([]Allocation, 0, len(a.allocs))}
	for _, al := range a.allocs {
		s.Allocations = append(s.Allocations, al)
	}
	sort.Slice(s.Allocations, func(i, j int) bool { return s.Allocations[i].Key.String() < s.Allocations[j].Key.String() })
	return a.store.Save(s)
}
