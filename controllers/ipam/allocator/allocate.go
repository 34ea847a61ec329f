package allocator

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// Allocate decides every node's CIDRs. nodes and pools may come in any order.
func Allocate(cfg Config, pools []Pool, nodes []Node) Result {
	res := Result{Nodes: map[string]*NodeResult{}, Pools: map[string]*PoolResult{}}
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b Node) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
	})
	for _, n := range nodes {
		res.Nodes[n.Name] = &NodeResult{}
	}
	switch cfg.Mode {
	case ModeKubernetes:
		kubernetesMode(cfg, nodes, res)
	case ModeMultiPool:
		multiPool(pools, nodes, res)
	case ModeCRD:
		crdMode(nodes, res)
	default:
		clusterPool(cfg, nodes, res)
	}
	return res
}

func newPoolResult() *PoolResult {
	return &PoolResult{Holders: map[string][]string{}, RemovedInUse: map[string][]string{}}
}

// crdMode checks the single addresses another actor listed on the nodes: an
// entry that is no address, or an address listed on two nodes (pods on both
// could get it), is an error on the node that lists it later (nodes come
// oldest first). Nothing is handed out.
func crdMode(nodes []Node, res Result) {
	owner := map[netip.Addr]string{}
	for _, n := range nodes {
		nr := res.Nodes[n.Name]
		for _, s := range slices.Sorted(slices.Values(n.Listed)) {
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				nr.Errors = append(nr.Errors, fmt.Sprintf("spec.ipam.pool entry %q is not an IP address", s))
			case owner[a.Unmap()] != "":
				nr.Errors = append(nr.Errors, fmt.Sprintf("%s is also listed in the pool of node %s: pods on both nodes could get it", a.Unmap(), owner[a.Unmap()]))
			default:
				owner[a.Unmap()] = n.Name
				nr.Listed++
			}
		}
	}
}

// kubernetesMode mirrors the Node's CIDRs; kube-controller-manager decided them.
func kubernetesMode(cfg Config, nodes []Node, res Result) {
	for _, n := range nodes {
		nr := res.Nodes[n.Name]
		var has4, has6 bool
		for _, c := range n.KubePodCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				nr.Errors = append(nr.Errors, fmt.Sprintf("Node pod CIDR %q is not a CIDR", c))
				continue
			}
			if (p.Addr().Is4() && has4) || (p.Addr().Is6() && has6) {
				continue // one per family, as the Node API allows
			}
			has4, has6 = has4 || p.Addr().Is4(), has6 || p.Addr().Is6()
			nr.PodCIDRs = append(nr.PodCIDRs, p.Masked().String())
		}
		for _, f := range []struct {
			want, has bool
			name, ann string
		}{{cfg.IPv4, has4, "IPv4", "network.cilium.io/ipv4-pod-cidr"}, {cfg.IPv6, has6, "IPv6", "network.cilium.io/ipv6-pod-cidr"}} {
			if f.want && !f.has {
				nr.Errors = append(nr.Errors, fmt.Sprintf("the Node has no %s pod CIDR in spec.podCIDRs or annotation %s: run kube-controller-manager with --allocate-node-cidrs and a %s --cluster-cidr, or set the annotation", f.name, f.ann, f.name))
			}
		}
	}
}

func clusterPool(cfg Config, nodes []Node, res Result) {
	var blocked []netip.Prefix
	pr := newPoolResult()
	res.Pools[ClusterPoolName] = pr
	spaces := map[bool]*Space{ // keyed by "is IPv4"
		true:  NewSpace(cfg.ClusterPoolIPv4.CIDRs, cfg.ClusterPoolIPv4.MaskSize, &blocked),
		false: NewSpace(cfg.ClusterPoolIPv6.CIDRs, cfg.ClusterPoolIPv6.MaskSize, &blocked),
	}
	want := map[bool]bool{true: cfg.IPv4, false: cfg.IPv6}
	owner := map[netip.Prefix]string{}

	// Restore: every node keeps what it holds, oldest node first.
	for _, n := range nodes {
		nr := res.Nodes[n.Name]
		held := map[bool]bool{}
		for _, c := range n.PodCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil || p != p.Masked() {
				nr.Errors = append(nr.Errors, fmt.Sprintf("dropped %q from spec.ipam.podCIDRs: not a network CIDR", c))
				continue
			}
			v4 := p.Addr().Is4()
			if held[v4] {
				nr.Errors = append(nr.Errors, fmt.Sprintf("dropped %s from spec.ipam.podCIDRs: the node already holds a CIDR of that family", c))
				continue
			}
			if other, clash := overlapOwner(owner, p); clash {
				nr.Errors = append(nr.Errors, fmt.Sprintf("dropped %s from spec.ipam.podCIDRs: it overlaps %s's CIDR; this node gets another", c, other))
				continue
			}
			sp := spaces[v4]
			if !sp.Take(p) {
				// Outside the configured list or of another mask: the node may
				// have pods on it, so it keeps it, and nothing overlapping is
				// handed out.
				blocked = append(blocked, p)
				pr.RemovedInUse[n.Name] = append(pr.RemovedInUse[n.Name], c)
				nr.Notes = append(nr.Notes, fmt.Sprintf("keeps %s, which the cluster pool's CIDR list or mask size no longer covers", c))
			}
			owner[p] = n.Name
			held[v4] = true
			nr.PodCIDRs = append(nr.PodCIDRs, p.String())
			pr.Holders[n.Name] = append(pr.Holders[n.Name], c)
		}
	}
	// Allocate what is missing, oldest node first.
	for _, n := range nodes {
		nr := res.Nodes[n.Name]
		for _, v4 := range []bool{true, false} {
			if !want[v4] || slices.ContainsFunc(nr.PodCIDRs, func(c string) bool { return netip.MustParsePrefix(c).Addr().Is4() == v4 }) {
				continue
			}
			p, ok := spaces[v4].Next()
			if !ok {
				fam, flag := "IPv4", "--cluster-pool-ipv4-cidr"
				if !v4 {
					fam, flag = "IPv6", "--cluster-pool-ipv6-cidr"
				}
				nr.Errors = append(nr.Errors, fmt.Sprintf("cluster pool exhausted: no free %s /%d CIDR; append a CIDR to %s", fam, spaces[v4].Mask(), flag))
				pr.Exhausted = append(pr.Exhausted, n.Name)
				continue
			}
			owner[p] = n.Name
			nr.PodCIDRs = append(nr.PodCIDRs, p.String())
			pr.Holders[n.Name] = append(pr.Holders[n.Name], p.String())
		}
		slices.SortFunc(nr.PodCIDRs, func(a, b string) int { // IPv4 first
			return cmp.Compare(netip.MustParsePrefix(a).Addr().BitLen(), netip.MustParsePrefix(b).Addr().BitLen())
		})
	}
	pr.FreeIPv4, pr.FreeIPv6 = spaces[true].Free(), spaces[false].Free()
}

// overlapOwner finds a held prefix overlapping p.
func overlapOwner(owner map[netip.Prefix]string, p netip.Prefix) (string, bool) {
	if o, ok := owner[p]; ok {
		return o, true
	}
	for q, o := range owner {
		if q.Overlaps(p) {
			return o, true
		}
	}
	return "", false
}

type poolState struct {
	pool   Pool
	v4, v6 *Space
	res    *PoolResult
}

func (ps *poolState) space(v4 bool) *Space {
	if v4 {
		return ps.v4
	}
	return ps.v6
}

func (ps *poolState) family(v4 bool) *Family {
	if v4 {
		return ps.pool.IPv4
	}
	return ps.pool.IPv6
}

// multiPool allocates from CiliumPodIPPools in two phases: every node keeps
// what it holds, then every request is met from its pool, oldest node
// first, so that when a pool runs out the newest nodes wait.
func multiPool(pools []Pool, nodes []Node, res Result) {
	m := newMultiPool(pools, res)
	// Restore every holding first, oldest node first, so a request never
	// takes a CIDR that some node already holds.
	for _, n := range nodes {
		m.restore(n, res.Nodes[n.Name])
	}
	// Then meet every request, oldest node first.
	for _, n := range nodes {
		nr := res.Nodes[n.Name]
		for _, req := range n.Requested {
			m.meet(n.Name, req, nr)
		}
		slices.SortFunc(nr.Allocated, func(a, b PoolCIDRs) int { return strings.Compare(a.Pool, b.Pool) })
	}
	for _, ps := range m.order {
		ps.res.FreeIPv4, ps.res.FreeIPv6 = ps.v4.Free(), ps.v6.Free()
	}
}

// multiPoolRun is one multi-pool allocation: the pools' free space, what
// every CIDR belongs to, and the CIDRs no pool may hand out.
type multiPoolRun struct {
	states map[string]*poolState
	order  []*poolState // oldest pool first
	owner  map[netip.Prefix]string
	// blocked are CIDRs held outside any pool's current spec (kept until
	// their pods are gone); every pool's Space skips them.
	blocked []netip.Prefix
}

// newMultiPool sets up the pools, oldest first. Pod addresses must be
// unique in the cluster: a newer pool that overlaps an older one hands out
// nothing until the overlap is gone.
func newMultiPool(pools []Pool, res Result) *multiPoolRun {
	m := &multiPoolRun{states: map[string]*poolState{}, owner: map[netip.Prefix]string{}}
	pools = slices.Clone(pools)
	slices.SortFunc(pools, func(a, b Pool) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
	})
	space := func(f *Family) *Space {
		if f == nil {
			return NewSpace(nil, 0, &m.blocked)
		}
		return NewSpace(f.CIDRs, f.MaskSize, &m.blocked)
	}
	for _, p := range pools {
		ps := &poolState{pool: p, res: newPoolResult(), v4: space(p.IPv4), v6: space(p.IPv6)}
		for _, older := range m.order {
			if c, oc, ok := poolsOverlap(p, older.pool); ok {
				ps.res.Overlap = fmt.Sprintf("%s overlaps %s of pool %q", c, oc, older.pool.Name)
				break
			}
		}
		m.states[p.Name] = ps
		m.order = append(m.order, ps)
		res.Pools[p.Name] = ps.res
	}
	return m
}

// restore keeps what node n holds, including CIDRs of pools that are gone
// or no longer cover them: pods may use them. Malformed CIDRs and CIDRs
// that overlap another node's are dropped, with the reason.
func (m *multiPoolRun) restore(n Node, nr *NodeResult) {
	for _, a := range n.Allocated {
		ps := m.states[a.Pool]
		kept := PoolCIDRs{Pool: a.Pool}
		for _, c := range a.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil || p != p.Masked() {
				nr.Errors = append(nr.Errors, fmt.Sprintf("dropped %q from pool %q's allocation: not a network CIDR", c, a.Pool))
				continue
			}
			if other, clash := overlapOwner(m.owner, p); clash {
				nr.Errors = append(nr.Errors, fmt.Sprintf("dropped %s from pool %q's allocation: it overlaps a CIDR of node %s", c, a.Pool, other))
				continue
			}
			m.owner[p] = n.Name
			kept.CIDRs = append(kept.CIDRs, p.String())
			if ps == nil {
				m.blocked = append(m.blocked, p)
				nr.Notes = append(nr.Notes, fmt.Sprintf("keeps %s of pool %q, which no longer exists, until its pods are gone", c, a.Pool))
				continue
			}
			ps.res.Holders[n.Name] = append(ps.res.Holders[n.Name], p.String())
			if !ps.space(p.Addr().Is4()).Take(p) {
				m.blocked = append(m.blocked, p)
				ps.res.RemovedInUse[n.Name] = append(ps.res.RemovedInUse[n.Name], p.String())
				nr.Notes = append(nr.Notes, fmt.Sprintf("keeps %s of pool %q, which the pool's spec no longer covers, until its pods are gone", c, a.Pool))
			}
		}
		if len(kept.CIDRs) > 0 {
			nr.Allocated = append(nr.Allocated, kept)
		}
	}
}

// meet grows node's allocation from req.Pool until it has room for the
// addresses it requests in each family, or says why it cannot.
func (m *multiPoolRun) meet(node string, req Request, nr *NodeResult) {
	ps := m.states[req.Pool]
	switch {
	case ps == nil:
		nr.Errors = append(nr.Errors, fmt.Sprintf("pool %q requested by the node does not exist", req.Pool))
		return
	case ps.pool.Deleting:
		nr.Errors = append(nr.Errors, fmt.Sprintf("pool %q is being deleted: it hands out no new CIDRs", req.Pool))
		return
	case ps.res.Overlap != "":
		nr.Errors = append(nr.Errors, fmt.Sprintf("pool %q hands out nothing: %s", req.Pool, ps.res.Overlap))
		return
	}
	idx := slices.IndexFunc(nr.Allocated, func(a PoolCIDRs) bool { return a.Pool == req.Pool })
	if idx < 0 {
		nr.Allocated = append(nr.Allocated, PoolCIDRs{Pool: req.Pool})
		idx = len(nr.Allocated) - 1
	}
	alloc := &nr.Allocated[idx]
	m.grow(node, ps, alloc, true, req.IPv4, nr)
	m.grow(node, ps, alloc, false, req.IPv6, nr)
	if len(alloc.CIDRs) == 0 {
		nr.Allocated = slices.Delete(nr.Allocated, idx, idx+1)
	}
}

// grow adds CIDRs of one family from ps to alloc until they hold need
// addresses; an exhausted pool is reported on the node and the pool.
func (m *multiPoolRun) grow(node string, ps *poolState, alloc *PoolCIDRs, v4 bool, need int, nr *NodeResult) {
	if need <= 0 {
		return
	}
	fam := "IPv4"
	if !v4 {
		fam = "IPv6"
	}
	f := ps.family(v4)
	if f == nil {
		nr.Errors = append(nr.Errors, fmt.Sprintf("pool %q has no %s CIDRs, but the node requests %d %s addresses", alloc.Pool, fam, need, fam))
		return
	}
	have := uint64(0)
	for _, c := range alloc.CIDRs {
		if p := netip.MustParsePrefix(c); p.Addr().Is4() == v4 {
			have = satAdd(have, Capacity(p, ps.pool.AllowFirstIP, ps.pool.AllowLastIP))
		}
	}
	for have < uint64(need) {
		p, ok := ps.space(v4).Next()
		if !ok {
			nr.Errors = append(nr.Errors, fmt.Sprintf("pool %q is exhausted: no free %s /%d CIDR for the %d addresses the node needs (it has room for %d); append a CIDR to spec.%s.cidrs", alloc.Pool, fam, f.MaskSize, need, have, strings.ToLower(fam)))
			ps.res.Exhausted = append(ps.res.Exhausted, node)
			return
		}
		m.owner[p] = node
		alloc.CIDRs = append(alloc.CIDRs, p.String())
		ps.res.Holders[node] = append(ps.res.Holders[node], p.String())
		have = satAdd(have, Capacity(p, ps.pool.AllowFirstIP, ps.pool.AllowLastIP))
	}
}

func poolsOverlap(a, b Pool) (netip.Prefix, netip.Prefix, bool) {
	for _, fa := range []*Family{a.IPv4, a.IPv6} {
		for _, fb := range []*Family{b.IPv4, b.IPv6} {
			if fa == nil || fb == nil {
				continue
			}
			for _, x := range fa.CIDRs {
				for _, y := range fb.CIDRs {
					if x.Overlaps(y) {
						return x, y, true
					}
				}
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

// Capacity is how many pod addresses a node CIDR yields: all but its
// gateway (second) address, and but its network and broadcast addresses
// unless the pool allows them (allowFirstIP, allowLastIP); CIDRs of two
// addresses or one are used whole. The CNI agent reserves exactly these
// (nodeplugins/cni/ipam), so what the controller hands out covers what the
// node asked for, and the agent gives back no CIDR the controller would hand
// out again. A pool's first and last address are the network and broadcast
// address of the node CIDRs at its edges, so they are used only when allowed
// too.
func Capacity(c netip.Prefix, allowFirst, allowLast bool) uint64 {
	hostBits := c.Addr().BitLen() - c.Bits()
	if hostBits <= 1 {
		return uint64(1) << hostBits
	}
	n := uint64(1)<<min(hostBits, 62) - 3
	if allowFirst {
		n++
	}
	if allowLast {
		n++
	}
	return n
}

func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return ^uint64(0)
	}
	return s
}
