package netnstest

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// Segment is an L2 segment for tests: a bridge in a namespace of its own, and
// namespaces (nodes, clients) each with an eth0 on it, addresses
// 198.18.<subnet>.<host>/24. Everything goes with the test.
type Segment struct {
	t      *testing.T
	fabric string
	subnet int
	n      int
}

// NewSegment makes an empty segment; subnet picks its /24 (tests that run
// side by side take different ones).
func NewSegment(t *testing.T, subnet int) *Segment {
	t.Helper()
	s := &Segment{t: t, fabric: New(t, "l2f"), subnet: subnet}
	Run(t, "ip", "-n", s.fabric, "link", "add", "br0", "type", "bridge")
	Run(t, "ip", "-n", s.fabric, "link", "set", "br0", "up")
	return s
}

// Attach creates a namespace with eth0 on the bridge at 198.18.<subnet>.<host>.
func (s *Segment) Attach(prefix string, host int) (ns string, ip netip.Addr) {
	s.t.Helper()
	ns = New(s.t, prefix)
	s.n++
	port := fmt.Sprintf("p%d", s.n)
	Run(s.t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", s.fabric)
	Run(s.t, "ip", "-n", s.fabric, "link", "set", port, "master", "br0", "up")
	ip = netip.AddrFrom4([4]byte{198, 18, byte(s.subnet), byte(host)})
	Run(s.t, "ip", "-n", ns, "addr", "add", ip.String()+"/24", "dev", "eth0")
	Run(s.t, "ip", "-n", ns, "link", "set", "eth0", "up")
	return ns, ip
}

// MAC is the hardware address of interface eth in namespace ns.
func MAC(t testing.TB, ns, eth string) string {
	t.Helper()
	var m string
	if err := Do(ns, func() error {
		ifi, err := net.InterfaceByName(eth)
		if err == nil {
			m = ifi.HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return m
}
