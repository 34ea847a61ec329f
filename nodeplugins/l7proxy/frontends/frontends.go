// Package frontends hands the connections to the Gateways' and Ingresses'
// load-balancer addresses that reach a node to that node's own proxy: an
// nftables redirect before Service load-balancing. Through the Service
// alone, with externalTrafficPolicy Cluster, a connection could be sent to
// another node's proxy and masqueraded on the way, so the proxy (and the
// backends, in X-Forwarded-For) would see a node's address instead of the
// client's; the seed's datapath likewise hands such connections to the
// local Envoy.
package frontends

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/nftset"
)

// TableName is the nftables table (family ip) this package owns: `nft list
// table ip plexus-l7proxy` shows which addresses the node takes in.
const TableName = "plexus-l7proxy"

// Priority is before kube-proxy's DNAT (dstnat, -100): the first NAT
// binding of a connection wins, so Service load-balancing never sees these
// connections.
const Priority nftables.ChainPriority = -110

// natRangeProtoSpecified is NF_NAT_RANGE_PROTO_SPECIFIED: the redirect
// names the port.
const natRangeProtoSpecified = 0x2

// Table keeps the node's table in step with its frontends.
type Table struct {
	ns      netns.NsHandle
	applied []nodesv1alpha1.L7Frontend
	synced  bool
}

// New returns a Table for the calling thread's network namespace (a node
// plugin runs in the host's).
func New() (*Table, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("the current network namespace: %w", err)
	}
	return &Table{ns: ns}, nil
}

// Apply replaces the table with one redirect per IPv4 frontend, in one
// transaction (established connections keep their NAT binding); no
// frontends, no table. Frontends of other families are left to Service
// load-balancing: the proxies listen on IPv4 only. Applying what was last
// applied does nothing.
func (t *Table) Apply(fs []nodesv1alpha1.L7Frontend) error {
	if t.synced && slices.Equal(fs, t.applied) {
		return nil
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(t.ns)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rules := redirects(fs)
	tbl := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	nftset.QueueReplace(c, tbl, len(rules) > 0)
	if len(rules) > 0 {
		ch := c.AddChain(&nftables.Chain{Table: tbl, Name: "prerouting", Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(Priority)})
		for _, r := range rules {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replacing nftables table %s: %w", TableName, err)
	}
	t.applied, t.synced = slices.Clone(fs), true
	return nil
}

// Remove deletes the table (the plugin's teardown).
func (t *Table) Remove() error {
	t.synced = false
	return t.Apply(nil)
}

// redirects are the rules of fs: ip daddr A tcp dport P redirect to :PP.
func redirects(fs []nodesv1alpha1.L7Frontend) [][]expr.Any {
	var out [][]expr.Any
	for _, f := range fs {
		a, err := netip.ParseAddr(f.Address)
		if err != nil || !a.Is4() || f.Port < 1 || f.Port > 65535 || f.ProxyPort < 1 || f.ProxyPort > 65535 {
			continue
		}
		ip := a.As4()
		out = append(out, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: uint32(nftset.Daddr), Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(f.Port))},
			&expr.Counter{},
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(f.ProxyPort))},
			&expr.Redir{RegisterProtoMin: 1, Flags: natRangeProtoSpecified},
		})
	}
	return out
}
