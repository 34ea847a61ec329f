// Package policytest builds the kernel topology of the policy datapath's
// tests: a node namespace with two pods on veths, pod A (10.240.0.10) and
// pod B (10.240.0.20), and an outside host (10.240.1.5) behind the node,
// each serving TCP on 8080 and 9090; and a bpffs of the test's own. Tests
// that use it need root and skip otherwise.
package policytest

import (
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/test/netnstest"
)

// The topology's addresses and the node's names for the pods' veths.
const (
	// IPA is pod A's address.
	IPA = "10.240.0.10"
	// IPB is pod B's address.
	IPB = "10.240.0.20"
	// IPExt is the outside host's address.
	IPExt = "10.240.1.5"
	// NodeIP is the node's address on each pod veth.
	NodeIP = "10.240.0.1"
	// NodeExt is the node's address towards the outside host.
	NodeExt = "10.240.1.1"
	// VethA is the host side of pod A's veth.
	VethA = "plxpha"
	// VethB is the host side of pod B's veth.
	VethB = "plxphb"
)

// Topology names the namespaces and the host-side veths' indexes.
type Topology struct {
	Node, A, B, Ext string
	IfA, IfB        int
}

// New builds the topology; everything goes with the test.
func New(t testing.TB) *Topology {
	netnstest.RequireRoot(t)
	tp := &Topology{Node: netnstest.New(t, "plxpn"), A: netnstest.New(t, "plxpa"), B: netnstest.New(t, "plxpb"), Ext: netnstest.New(t, "plxpx")}
	run := func(args ...string) { netnstest.Run(t, "ip", args...) }
	for _, p := range []struct{ ns, host, ip string }{{tp.A, VethA, IPA}, {tp.B, VethB, IPB}} {
		run("-n", tp.Node, "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		run("-n", tp.Node, "addr", "add", NodeIP+"/32", "dev", p.host)
		run("-n", tp.Node, "link", "set", p.host, "up")
		run("-n", tp.Node, "route", "add", p.ip+"/32", "dev", p.host)
		run("-n", p.ns, "addr", "add", p.ip+"/32", "dev", "eth0")
		run("-n", p.ns, "link", "set", "eth0", "up")
		run("-n", p.ns, "route", "add", NodeIP+"/32", "dev", "eth0")
		run("-n", p.ns, "route", "add", "10.240.0.0/16", "via", NodeIP)
	}
	run("-n", tp.Node, "link", "add", "plxphx", "type", "veth", "peer", "name", "eth0", "netns", tp.Ext)
	run("-n", tp.Node, "addr", "add", NodeExt+"/24", "dev", "plxphx")
	run("-n", tp.Node, "link", "set", "plxphx", "up")
	run("-n", tp.Ext, "addr", "add", IPExt+"/24", "dev", "eth0")
	run("-n", tp.Ext, "link", "set", "eth0", "up")
	run("-n", tp.Ext, "route", "add", "10.240.0.0/24", "via", NodeExt)
	netnstest.Run(t, "ip", "netns", "exec", tp.Node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	tp.IfA, tp.IfB = tp.Ifindex(t, VethA), tp.Ifindex(t, VethB)
	for _, ns := range []string{tp.A, tp.B, tp.Ext} {
		for _, port := range []string{"8080", "9090"} {
			Serve(t, ns, port)
		}
	}
	return tp
}

// Ifindex is the index of link name in the node namespace.
func (tp *Topology) Ifindex(t testing.TB, name string) int {
	t.Helper()
	var idx int
	if err := netnstest.Do(tp.Node, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// BPFFS mounts a bpffs of the test's own and returns a directory in it;
// the mount goes with the test.
func BPFFS(t *testing.T) string { return BPFFSFor(t) }

// BPFFSFor is BPFFS for any test or benchmark.
func BPFFSFor(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mounting bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	return filepath.Join(root, "plexus", "policy")
}

// Serve answers every TCP connection on port in ns with "ok".
func Serve(t testing.TB, ns, port string) {
	t.Helper()
	netnstest.Serve(t, ns, ":"+port, func(c net.Conn) { _, _ = io.WriteString(c, "ok") })
}

// Probe is a connection attempt and whether it should succeed; Port
// "icmp" pings.
type Probe struct {
	From, To, Port string
	Want           bool
}

// Check runs the probes and reports each that disagrees.
func Check(t *testing.T, stage string, probes ...Probe) {
	t.Helper()
	for _, p := range probes {
		var got bool
		if p.Port == "icmp" {
			_, err := netnstest.Exec(p.From, "ping", "-c1", "-W1", p.To)
			got = err == nil
		} else {
			answer, err := netnstest.ReadFrom(p.From, p.To+":"+p.Port)
			got = err == nil && answer == "ok"
		}
		if got != p.Want {
			t.Errorf("%s: %s → %s:%s reached=%v, want %v", stage, p.From, p.To, p.Port, got, p.Want)
		}
	}
}
