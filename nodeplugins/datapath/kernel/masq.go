package kernel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/plexus-net/plexus/internal/fwmark"
	"github.com/plexus-net/plexus/internal/nftset"
	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
)

// MasqTable is the nftables table (family ip) of the masquerading, owned
// whole:
//
//	table ip plexus-masq {
//		set pods { type ipv4_addr; flags interval; elements = { <this node's pod CIDRs> } }
//		set direct { type ipv4_addr; flags interval; elements = { <every pod CIDR>, <NonMasqueradeCIDRs> } }
//		chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//			oifname <device> ip saddr @pods ip daddr != @direct meta mark & <fwmark.EgressMask> == 0 counter masquerade comment "<stamp>"
//			(one rule per masquerading device)
//		}
//	}
//
// Only packets leaving through the masquerading devices (by default the
// underlay device; the seed system likewise masquerades on its devices
// only) are translated: traffic
// to a local pod or into the VXLAN tunnel stays inside the cluster whatever
// its destination (which matters for a pod CIDR allocated a moment ago and
// not yet in @direct). A packet marked for an egress gateway keeps its pod
// address: the gateway translates it. The egress gateway's own NAT chain runs before this one
// (srcnat-10): a connection's first NAT binding wins.
const MasqTable = "plexus-masq"

// masqVersion changes whenever the shape of the table changes, so that an
// upgraded process rewrites the table of an older one.
const masqVersion = "2"

// masqContent is what the table holds; nil ranges mean no table.
type masqContent struct {
	devices      []string
	pods, direct []nftset.Range
}

func (k *Kernel) masqContent(d routes.Desired) masqContent {
	if !k.cfg.Masquerade {
		return masqContent{}
	}
	pods := nftset.IPv4Ranges(d.LocalPodCIDRs)
	if len(pods) == 0 {
		return masqContent{}
	}
	direct := append(append([]netip.Prefix(nil), d.PodCIDRs...), k.cfg.NonMasqueradeCIDRs...)
	devices := k.cfg.MasqueradeDevices
	if len(devices) == 0 {
		devices = []string{k.cfg.Device}
	}
	return masqContent{devices: devices, pods: pods, direct: nftset.IPv4Ranges(direct)}
}

// stamp names the content: the comment of the rule, so that a pass (or a
// restarted process) that finds the table it wants writes nothing.
func (m masqContent) stamp() string {
	h := sha256.New()
	fmt.Fprintf(h, "v%s mark %#x\ndevices %q\npods %v\ndirect %v\n", masqVersion, fwmark.EgressMask, m.devices, m.pods, m.direct)
	return "plexus-masq " + hex.EncodeToString(h.Sum(nil))[:16]
}

// syncMasquerade makes the table hold what d and the Config want, replacing
// it in one transaction only when its stamp differs, or deletes it when
// masquerading is off or this node has no IPv4 pod CIDR.
func (k *Kernel) syncMasquerade(d routes.Desired, ch *Changes) error {
	want := k.masqContent(d)
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: MasqTable}
	have, exists, err := masqStamp(c, t)
	if err != nil {
		return err
	}
	switch {
	case want.pods == nil && !exists:
		return nil
	case want.pods == nil:
		nftset.QueueReplace(c, t, false)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("deleting nftables table %s: %w", MasqTable, err)
		}
		ch.Masquerade = "deleted"
		return nil
	case have == want.stamp():
		return nil
	}

	nftset.QueueReplace(c, t, true)
	pods := nftset.NewIPv4Set(t, "pods", true)
	direct := nftset.NewIPv4Set(t, "direct", true)
	for _, s := range []struct {
		set *nftables.Set
		rs  []nftset.Range
	}{{pods, want.pods}, {direct, want.direct}} {
		if err := c.AddSet(s.set, nftset.IntervalElements(s.rs)); err != nil {
			return fmt.Errorf("nftables set %s: %w", s.set.Name, err)
		}
	}
	chain := c.AddChain(&nftables.Chain{
		Table: t, Name: "postrouting", Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	for _, dev := range want.devices {
		exprs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dev)},
		}
		exprs = append(exprs, nftset.Match(nftset.Saddr, pods)...)
		exprs = append(exprs, nftset.NotMatch(nftset.Daddr, direct)...)
		exprs = append(exprs, nftset.MarkMatch(fwmark.EgressMask, false)...)
		exprs = append(exprs, &expr.Counter{}, &expr.Masq{})
		c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, want.stamp())})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replacing nftables table %s: %w", MasqTable, err)
	}
	ch.Masquerade = "written"
	return nil
}

// masqStamp returns the stamp of the table in the kernel, "" if it has none,
// and whether the table exists.
func masqStamp(c *nftables.Conn, t *nftables.Table) (string, bool, error) {
	ts, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return "", false, fmt.Errorf("listing nftables tables: %w", err)
	}
	exists := false
	for _, x := range ts {
		exists = exists || x.Name == t.Name
	}
	if !exists {
		return "", false, nil
	}
	rules, err := c.GetRules(t, &nftables.Chain{Table: t, Name: "postrouting"})
	if err != nil {
		return "", true, nil // no such chain: not a table this code wrote
	}
	// Every rule carries the stamp; one that differs (or none) means the
	// table is not what this code would write.
	stamp := ""
	for i, r := range rules {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		if i > 0 && s != stamp {
			return "", true, nil
		}
		stamp = s
	}
	return stamp, true, nil
}

// ifname is an interface name as nftables compares it: IFNAMSIZ bytes,
// zero-padded.
func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}
