package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/fwmark"
	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
	"github.com/plexus-net/plexus/test/netlab"
	"github.com/plexus-net/plexus/test/netnstest"
)

// An external host behind node-1 on a link of its own (not a pod CIDR),
// with a route back to the pod range via node-1 so that it can answer
// unmasqueraded packets too: what it sees as the source tells.
const (
	extNodeSide = "198.19.0.1"
	extIP       = "198.19.0.250"
)

func TestMasquerade(t *testing.T) {
	l := netlab.New(t, 3)
	n1, n2 := l.Nodes[0], l.Nodes[1]
	ext := netnstest.New(t, "dpkx")
	netnstest.Run(t, "ip", "link", "add", "ext0", "netns", n1.NS, "type", "veth", "peer", "name", "eth0", "netns", ext)
	netnstest.Run(t, "ip", "-n", n1.NS, "addr", "add", extNodeSide+"/24", "dev", "ext0")
	netnstest.Run(t, "ip", "-n", n1.NS, "link", "set", "ext0", "up")
	netnstest.Run(t, "ip", "-n", ext, "addr", "add", extIP+"/24", "dev", "eth0")
	netnstest.Run(t, "ip", "-n", ext, "link", "set", "eth0", "up")
	netnstest.Run(t, "ip", "-n", ext, "route", "add", "10.244.0.0/16", "via", extNodeSide)
	netnstest.Run(t, "ip", "-n", n1.Pod, "route", "add", "198.19.0.0/24", "via", "10.244.1.1")
	serveRemoteAddr(t, ext)
	serveRemoteAddr(t, n2.Pod)

	applyAll(t, l, routes.ModeNative) // masquerading off
	cfg := testConfig()
	cfg.Masquerade = true
	cfg.MasqueradeDevices = []string{"ext0", "eth0"} // the external host is behind ext0
	ch := applyCfg(t, n1, cfg, l.CiliumNodes())
	if ch.Masquerade != "written" || ch.Writes() != 1 {
		t.Errorf("first apply with masquerading: %+v, want the table written", ch)
	}
	ch = applyCfg(t, n1, cfg, l.CiliumNodes())
	if ch.Writes() != 0 {
		t.Errorf("second apply wrote: %+v", ch)
	}
	netlab.MustContain(t, "masquerade table", netnstest.Run(t, "ip", "netns", "exec", n1.NS, "nft", "list", "table", "ip", MasqTable),
		"elements = { 10.244.1.0/24 }", "elements = { 10.244.1.0-10.244.3.255 }", "type nat hook postrouting priority srcnat",
		`oifname "ext0" ip saddr @pods ip daddr != @direct meta mark & 0x0fff0000 == 0x00000000 counter packets 0 bytes 0 masquerade`,
		`oifname "eth0" ip saddr @pods`)

	requireSeenAs(t, n1.Pod, extIP, extNodeSide)     // leaving the cluster: the node's address on that link
	requireSeenAs(t, n1.Pod, n2.PodIP(), n1.PodIP()) // another node's pod: the pod's own

	// Marked for an egress gateway: left alone.
	netnstest.Run(t, "ip", "netns", "exec", n1.NS, "nft", "add table ip marker; add chain ip marker pre { type filter hook prerouting priority 0; }; "+
		"add rule ip marker pre ip daddr "+extIP+" meta mark set "+fmt.Sprintf("%#x", fwmark.Egress(1)))
	requireSeenAs(t, n1.Pod, extIP, n1.PodIP())
	netnstest.Run(t, "ip", "netns", "exec", n1.NS, "nft", "delete", "table", "ip", "marker")
	requireSeenAs(t, n1.Pod, extIP, extNodeSide)

	// A restarted process (a fresh Kernel) finds the table it wants.
	if ch := applyCfg(t, n1, cfg, l.CiliumNodes()); ch.Writes() != 0 {
		t.Errorf("restart wrote: %+v", ch)
	}
	// Non-masquerade CIDRs are reached with the pod's address.
	withDirect := cfg
	withDirect.NonMasqueradeCIDRs = []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}
	if ch := applyCfg(t, n1, withDirect, l.CiliumNodes()); ch.Masquerade != "written" {
		t.Errorf("new non-masquerade CIDR: %+v", ch)
	}
	requireSeenAs(t, n1.Pod, extIP, n1.PodIP())
	// Only the masquerading devices translate: with the default (the
	// underlay device alone) traffic leaving by ext0 keeps its pod address.
	def := testConfig()
	def.Masquerade = true
	applyCfg(t, n1, def, l.CiliumNodes())
	requireSeenAs(t, n1.Pod, extIP, n1.PodIP())
	// Off: the table goes.
	if ch := applyCfg(t, n1, testConfig(), l.CiliumNodes()); ch.Masquerade != "deleted" {
		t.Errorf("masquerading off: %+v", ch)
	}
	if out, err := netnstest.Exec(n1.NS, "nft", "list", "table", "ip", MasqTable); err == nil {
		t.Errorf("table left after turning masquerading off:\n%s", out)
	}
	requireSeenAs(t, n1.Pod, extIP, n1.PodIP())
}

// applyCfg applies node's native-mode state with cfg through a fresh Kernel
// (nothing in memory, as after a restart).
func applyCfg(t *testing.T, node netlab.Node, cfg Config, nodes []ciliumv2.CiliumNode) Changes {
	t.Helper()
	d, err := routes.Compute(nodes, node.Name, routes.ModeNative)
	if err != nil {
		t.Fatal(err)
	}
	var ch Changes
	err = netnstest.Do(node.NS, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		ch, err = New(h, cfg).Apply(d)
		return err
	})
	if err != nil {
		t.Fatalf("%s: apply: %v", node.Name, err)
	}
	return ch
}

// serveRemoteAddr answers every TCP connection on port 80 of ns with the
// address it came from, until the test ends.
func serveRemoteAddr(t *testing.T, ns string) {
	t.Helper()
	netnstest.Serve(t, ns, ":80", netnstest.AnswerRemoteHost)
}

// requireSeenAs connects from ns to port 80 of dst until the server there
// reports want as the source, within a deadline.
func requireSeenAs(t *testing.T, ns, dst, want string) {
	t.Helper()
	var got string
	var err error
	for range 20 {
		got, err = netnstest.ReadFrom(ns, net.JoinHostPort(dst, "80"))
		if err == nil && got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s seen from %s as %q (err %v), want %q", dst, ns, got, err, want)
}
