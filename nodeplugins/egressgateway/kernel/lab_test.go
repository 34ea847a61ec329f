package kernel

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/test/netnstest"
)

// The test segment: node i is 198.18.40.i on eth0, all on one bridge with
// the external host; node-1 has a pod behind a veth.
const (
	extIP     = "198.18.40.250"
	egressIP  = "198.18.40.240" // floating, "held" by node-2
	egressIP2 = "198.18.40.241" // floating, "held" by node-3
	podIP     = "10.1.1.10"
	podCIDR   = "10.1.1.0/24"
)

func nodeIP(i int) string { return fmt.Sprintf("198.18.40.%d", i) }

// lab is node-1 (with the pod), node-2 and node-3 (gateways) and the
// external host on one segment. The external host has no route to the pod
// range: a reply reaches the pod only if its request was translated. The
// floating egress IPs are on no interface; node-1 and the external host
// resolve them statically to their gateway's MAC, as the ARP answers of the
// real plugin would.
type lab struct {
	nodes [4]string // nodes[1..3]
	pod   string
	ext   string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	netnstest.RequireRoot(t)
	sw := netnstest.New(t, "egsw")
	run := func(args ...string) { t.Helper(); netnstest.Run(t, "ip", args...) }
	run("-n", sw, "link", "add", "br0", "type", "bridge")
	run("-n", sw, "link", "set", "br0", "up")
	l := &lab{pod: netnstest.New(t, "egpod"), ext: netnstest.New(t, "egext")}
	attach := func(ns, addr string, i int) {
		port := fmt.Sprintf("p%d", i)
		run("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw)
		run("-n", sw, "link", "set", port, "master", "br0", "up")
		run("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		run("-n", ns, "link", "set", "eth0", "up")
	}
	for i := 1; i <= 3; i++ {
		l.nodes[i] = netnstest.New(t, fmt.Sprintf("egn%d", i))
		attach(l.nodes[i], nodeIP(i), i)
		netnstest.Run(t, "ip", "netns", "exec", l.nodes[i], "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	attach(l.ext, extIP, 9)

	n1 := l.nodes[1]
	run("link", "add", "eth0", "netns", l.pod, "type", "veth", "peer", "name", "lxc0", "netns", n1)
	run("-n", l.pod, "addr", "add", podIP+"/24", "dev", "eth0")
	run("-n", l.pod, "link", "set", "eth0", "up")
	run("-n", l.pod, "route", "add", "default", "via", "10.1.1.1")
	run("-n", n1, "addr", "add", "10.1.1.1/24", "dev", "lxc0")
	run("-n", n1, "link", "set", "lxc0", "up")
	for _, gw := range []string{l.nodes[2], l.nodes[3]} {
		run("-n", gw, "route", "add", podCIDR, "via", nodeIP(1))
	}
	for _, ns := range []string{n1, l.ext} {
		run("-n", ns, "neigh", "replace", egressIP, "lladdr", mac(t, l.nodes[2]), "dev", "eth0", "nud", "permanent")
		run("-n", ns, "neigh", "replace", egressIP2, "lladdr", mac(t, l.nodes[3]), "dev", "eth0", "nud", "permanent")
	}
	serveRemoteAddr(t, l.ext)
	return l
}

func mac(t *testing.T, ns string) string {
	t.Helper()
	var m string
	if err := netnstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			m = ifi.HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// serveRemoteAddr answers every TCP connection on port 80 of ns with the
// address it came from, and echoes what it receives on port 7, until the
// test ends.
func serveRemoteAddr(t *testing.T, ns string) {
	t.Helper()
	netnstest.Serve(t, ns, ":80", netnstest.AnswerRemoteHost)
	netnstest.Serve(t, ns, ":7", func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// roundTrip sends msg on c and reads the echo.
func roundTrip(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// seenFrom connects from the pod to the external server once and returns
// the source address the server saw.
func (l *lab) seenFrom() (string, error) {
	return netnstest.ReadFrom(l.pod, net.JoinHostPort(extIP, "80"))
}

// requireSeenAs retries (the first packets wait for ARP) until the server
// sees the pod's connection coming from want.
func (l *lab) requireSeenAs(t *testing.T, want string) {
	t.Helper()
	var got string
	var err error
	for range 20 {
		if got, err = l.seenFrom(); err == nil && got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("server saw the pod as %q (err %v), want %q", got, err, want)
}

// requireUnreachable checks that the pod's connections fail, twice in a row.
func (l *lab) requireUnreachable(t *testing.T, why string) {
	t.Helper()
	for range 2 {
		if got, err := l.seenFrom(); err == nil {
			t.Fatalf("%s: server reached, saw %q", why, got)
		}
	}
}

// kernelIn opens a Kernel in ns, closed when the test ends.
func kernelIn(t *testing.T, ns string) *Kernel {
	t.Helper()
	var k *Kernel
	if err := netnstest.Do(ns, func() (err error) { k, err = New(); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func apply(t *testing.T, ns string, k *Kernel, s State) {
	t.Helper()
	if err := netnstest.Do(ns, func() error { return k.Apply(s) }); err != nil {
		t.Fatalf("apply in %s: %v", ns, err)
	}
}

func clearIn(t *testing.T, ns string, k *Kernel) {
	t.Helper()
	if err := netnstest.Do(ns, k.Clear); err != nil {
		t.Fatalf("clear in %s: %v", ns, err)
	}
}

// owned is everything of ours in ns as the tools print it, with handles
// (a replaced table gets new ones).
func owned(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	// -s: without counters, which any packet of an open connection moves;
	// -a: with handles, which change only when the table is rewritten.
	if out, err := netnstest.Exec(ns, "nft", "-s", "-a", "list", "table", "ip", TableName); err == nil {
		b.WriteString(out)
	}
	b.WriteString(netnstest.Run(t, "ip", "-n", ns, "rule", "show", "priority", strconv.Itoa(RulePriority)))
	b.WriteString(netnstest.Run(t, "ip", "-n", ns, "route", "show", "table", "all", "proto", "185"))
	return b.String()
}

var counterRE = regexp.MustCompile(`counter packets (\d+)`)

// packets sums the counters of one chain of the table in ns.
func packets(t *testing.T, ns, chain string) int {
	t.Helper()
	out := netnstest.Run(t, "ip", "netns", "exec", ns, "nft", "list", "chain", "ip", TableName, chain)
	n := 0
	for _, m := range counterRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			s += "/32"
		}
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// clusterCIDRs are the pod range and the nodes.
var clusterCIDRs = prefixes("10.0.0.0/8", nodeIP(1), nodeIP(2), nodeIP(3))

func podTo(dst ...string) Match {
	return Match{Sources: []netip.Addr{addr(podIP)}, Destinations: prefixes(dst...)}
}

func steerVia(via string, m Match) Steer { return Steer{Match: m, Via: addr(via)} }

func snatTo(egress string, m Match) SNAT { return SNAT{Match: m, EgressIP: addr(egress)} }
