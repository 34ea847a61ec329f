package kernel

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/internal/fwmark"
	"github.com/plexus-net/plexus/internal/nftset"
)

// TableName is the nftables table (family ip) this package owns: `nft list
// table ip plexus-egress` shows what a node does with egress traffic.
const TableName = "plexus-egress"

// Chain priorities, relative to the standard ones (nft(8)).
const (
	// SteerPriority is after kube-proxy's DNAT (dstnat, -100), so that a
	// packet to a ClusterIP is judged by the backend it was sent to.
	SteerPriority nftables.ChainPriority = -90
	// SNATPriority is before the node's masquerading (srcnat, 100): the
	// first NAT binding of a connection wins.
	SNATPriority nftables.ChainPriority = 90
)

// replaceTable replaces the table with p's in one netlink batch: the kernel
// commits it as one transaction, so packets see the old ruleset or the new
// one, never a mix. An empty plan leaves no table. Conntrack entries, and
// with them the NAT bindings of established connections, are not touched.
func (k *Kernel) replaceTable(p *plan) error {
	c, err := k.nftConn()
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	nftset.QueueReplace(c, t, !p.empty())
	if !p.empty() {
		if err := buildTable(c, t, p); err != nil {
			return err // nothing was sent: the batch dies with c
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replacing nftables table %s: %w", TableName, err)
	}
	return nil
}

// tableExists reports whether the table is in the kernel.
func (k *Kernel) tableExists() (bool, error) {
	c, err := k.nftConn()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// nftConn returns a connection with an empty batch in the Kernel's netns.
func (k *Kernel) nftConn() (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(k.ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// builder queues one table's sets, chains and rules on a batch.
type builder struct {
	c   *nftables.Conn
	t   *nftables.Table
	err error
}

func (b *builder) set(name string, interval bool, els []nftables.SetElement) *nftables.Set {
	s := nftset.NewIPv4Set(b.t, name, interval)
	if err := b.c.AddSet(s, els); err != nil && b.err == nil {
		b.err = fmt.Errorf("set %s: %w", name, err)
	}
	return s
}

func (b *builder) rangeSet(name string, rs []nftset.Range) *nftables.Set {
	if len(rs) == 0 {
		return nil
	}
	return b.set(name, true, nftset.IntervalElements(rs))
}

func (b *builder) chain(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio nftables.ChainPriority) *nftables.Chain {
	ch := &nftables.Chain{Table: b.t, Name: name}
	if hook != nil {
		ch.Type, ch.Hooknum, ch.Priority = typ, hook, nftables.ChainPriorityRef(prio)
	}
	return b.c.AddChain(ch)
}

func (b *builder) rule(ch *nftables.Chain, exprs ...[]expr.Any) {
	var all []expr.Any
	for _, e := range exprs {
		all = append(all, e...)
	}
	b.c.AddRule(&nftables.Rule{Table: b.t, Chain: ch, Exprs: all})
}

// matchSets are the sets of one Match: <name>_src, <name>_dst and, when
// something is excluded, <name>_excl.
type matchSets struct {
	src, dst, excl *nftables.Set
}

func (b *builder) matchSets(name string, m matchPlan) matchSets {
	return matchSets{
		src:  b.set(name+"_src", false, nftset.AddrElements(m.sources)),
		dst:  b.rangeSet(name+"_dst", m.dst),
		excl: b.rangeSet(name+"_excl", m.excluded),
	}
}

// matchChain adds a jump from base to a new chain name for the sources of
// ms, and in that chain: head (when given), a return for the excluded
// destinations, then a counter and verdict for the destinations.
func (b *builder) matchChain(base *nftables.Chain, name string, ms matchSets, head, verdict []expr.Any) {
	ch := b.chain(name, "", nil, 0)
	b.rule(base, nftset.Match(nftset.Saddr, ms.src), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: name}})
	if head != nil {
		b.rule(ch, head)
	}
	if ms.excl != nil {
		b.rule(ch, nftset.Match(nftset.Daddr, ms.excl), ret)
	}
	b.rule(ch, nftset.Match(nftset.Daddr, ms.dst), []expr.Any{&expr.Counter{}}, verdict)
}

// buildTable queues p's content:
//
//	chain prerouting (filter, prerouting, SteerPriority): ip daddr @cluster return
//	    ip saddr @steer_<i>_src jump steer_<i>             (each Steer, in order)
//	chain steer_<i>: meta mark & EgressMask != 0 return
//	    ip daddr @steer_<i>_excl return
//	    ip daddr @steer_<i>_dst counter meta mark set mark & ~EgressMask | Egress(slot)   (or drop)
//	chain postrouting (nat, postrouting, SNATPriority): ip daddr @cluster return
//	    ip saddr @snat_<j>_src jump snat_<j>               (each translating SNAT)
//	chain snat_<j>: meta mark & EgressMask != 0 return  (steered from here: translated at its gateway)
//	    ip daddr @snat_<j>_excl return
//	    ip daddr @snat_<j>_dst counter snat ip to <EgressIP>
//	chain forward (filter, forward, 0), when an SNAT drops: ip daddr @cluster return
//	    ip saddr @snat_<j>_src jump snat_<j>_filter        (each SNAT up to the last dropping one)
//	chain snat_<j>_filter: meta mark & EgressMask != 0 return
//	    ip daddr @snat_<j>_excl return
//	    ip daddr @snat_<j>_dst counter accept              (or drop)
//	chain output (filter, output, 0): icmp type redirect counter drop
//
// A packet to the cluster is never steered, translated or dropped. A packet
// takes the first Steer whose Match it matches (once marked, the later
// Steers' mark test returns) and the first SNAT (the first NAT binding of a
// connection ends the NAT chains; the forward chain accepts the packets of
// translating SNATs so that a later dropping SNAT cannot catch them).
//
// The output chain stands in for send_redirects=0 on every interface: the
// conf/all and conf/default sysctls do not stop an existing interface whose
// own send_redirects is 1 (the kernel ORs all with the interface's value),
// and a gateway forwards out of the link it received on.
func buildTable(c *nftables.Conn, t *nftables.Table, p *plan) error {
	b := &builder{c: c, t: t}
	cluster := b.rangeSet("cluster", p.cluster)
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio nftables.ChainPriority) *nftables.Chain {
		ch := b.chain(name, typ, hook, prio)
		if cluster != nil {
			b.rule(ch, nftset.Match(nftset.Daddr, cluster), ret)
		}
		return ch
	}

	if len(p.steers) > 0 {
		pre := base("prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, SteerPriority)
		for _, st := range p.steers {
			name := fmt.Sprintf("steer_%d", st.index)
			verdict := drop
			if !st.drop {
				verdict = setEgressMark(st.slot)
			}
			b.matchChain(pre, name, b.matchSets(name, st.matchPlan), steeredAlready, verdict)
		}
	}

	sets := make([]matchSets, len(p.snats))
	lastDrop := -1
	for i, sn := range p.snats {
		sets[i] = b.matchSets(fmt.Sprintf("snat_%d", sn.index), sn.matchPlan)
		if sn.drop {
			lastDrop = i
		}
	}
	if slices.ContainsFunc(p.snats, func(sn snatPlan) bool { return !sn.drop }) {
		post := base("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, SNATPriority)
		for i, sn := range p.snats {
			if !sn.drop {
				// A packet this node steers elsewhere keeps its pod source:
				// the gateway it goes to translates it (a standby candidate
				// has the SNAT too, for the moment it takes over).
				b.matchChain(post, fmt.Sprintf("snat_%d", sn.index), sets[i], steeredAlready, snat(sn.egressIP))
			}
		}
	}
	if lastDrop >= 0 {
		fwd := base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, *nftables.ChainPriorityFilter)
		for i, sn := range p.snats[:lastDrop+1] {
			verdict := accept
			if sn.drop {
				verdict = drop
			}
			b.matchChain(fwd, fmt.Sprintf("snat_%d_filter", sn.index), sets[i], steeredAlready, verdict)
		}
	}
	out := b.chain("output", nftables.ChainTypeFilter, nftables.ChainHookOutput, *nftables.ChainPriorityFilter)
	b.rule(out, icmpRedirect, []expr.Any{&expr.Counter{}}, drop)
	return b.err
}

var (
	ret    = []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
	accept = []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	drop   = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}

	// steeredAlready is `meta mark & EgressMask != 0 return`.
	steeredAlready = append(nftset.MarkMatch(fwmark.EgressMask, true), &expr.Verdict{Kind: expr.VerdictReturn})

	// icmpRedirect is `icmp type redirect`.
	icmpRedirect = []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{5}}, // ICMP_REDIRECT
	}
)

// setEgressMark is `meta mark set mark & ~EgressMask | Egress(slot)`: the
// bits outside the mask (kube-proxy's, other plugins') are kept.
func setEgressMark(slot uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: nftset.HostU32(^fwmark.EgressMask), Xor: nftset.HostU32(fwmark.Egress(slot))},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

// snat is `snat ip to <to>`.
func snat(to netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: to.AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}
