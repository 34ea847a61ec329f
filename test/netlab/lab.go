// Package netlab builds the kernel topology the datapath tests run on: node
// namespaces on a bridge, a pod namespace behind each node, echo servers in
// the pods, and readers of what Plexus owns in a node's kernel. Test-only.
package netlab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/netnstest"
)

// Lab is recipe 3.1 of datapath-feasibility.md in Go: node namespaces on a
// bridge (in a namespace of its own), one pod namespace per node behind a
// veth. Node i has 198.18.0.i and fd00:198::i on eth0; its pod has
// 10.244.i.10 and fd00:10:i::10, routed to the node. Pods get routes to
// 10.0.0.0/8 and fd00:10::/32 only: nothing leaves the lab.
type Lab struct {
	t     *testing.T
	Nodes []Node
}

// Node is one simulated node and its pod.
type Node struct {
	Name string // CiliumNode name
	NS   string // node namespace
	Pod  string // pod namespace
	i    int
}

// IP is the node's IPv4 address on the bridge.
func (n Node) IP() string { return fmt.Sprintf("198.18.0.%d", n.i) }

// IP6 is the node's IPv6 address on the bridge.
func (n Node) IP6() string { return fmt.Sprintf("fd00:198::%d", n.i) }

// PodIP is the IPv4 address of the node's pod.
func (n Node) PodIP() string { return fmt.Sprintf("10.244.%d.10", n.i) }

// PodIP6 is the IPv6 address of the node's pod.
func (n Node) PodIP6() string { return fmt.Sprintf("fd00:10:%d::10", n.i) }

// CIDR is the node's IPv4 pod CIDR.
func (n Node) CIDR() string { return fmt.Sprintf("10.244.%d.0/24", n.i) }

// CIDR6 is the node's IPv6 pod CIDR.
func (n Node) CIDR6() string { return fmt.Sprintf("fd00:10:%d::/64", n.i) }

// VXLANMAC is the MAC address the node's VXLAN device gets.
func (n Node) VXLANMAC() string { return fmt.Sprintf("0e:b9:c6:12:00:%02x", n.i) }

// VXLANDevice is the VXLAN device name the tests configure.
const VXLANDevice = "plexus_vxlan"

// New builds a lab of n nodes (at most 9), removed when the test ends.
func New(t *testing.T, n int) *Lab {
	t.Helper()
	netnstest.RequireRoot(t)
	fabric := netnstest.New(t, "dpkf")
	run := func(args ...string) { t.Helper(); netnstest.Run(t, "ip", args...) }
	run("-n", fabric, "link", "add", "br0", "type", "bridge")
	run("-n", fabric, "link", "set", "br0", "up")
	l := &Lab{t: t}
	for i := 1; i <= n; i++ {
		node := Node{Name: fmt.Sprintf("node-%d", i), NS: netnstest.New(t, "dpkn"), Pod: netnstest.New(t, "dpkp"), i: i}
		port := fmt.Sprintf("n%d", i)
		lxc := fmt.Sprintf("lxc%d", i)
		run("link", "add", "eth0", "netns", node.NS, "type", "veth", "peer", "name", port, "netns", fabric)
		run("-n", fabric, "link", "set", port, "master", "br0", "up")
		run("-n", node.NS, "addr", "add", node.IP()+"/24", "dev", "eth0")
		run("-n", node.NS, "addr", "add", node.IP6()+"/64", "dev", "eth0", "nodad")
		run("-n", node.NS, "link", "set", "eth0", "up")
		run("link", "add", "eth0", "netns", node.Pod, "type", "veth", "peer", "name", lxc, "netns", node.NS)
		run("-n", node.Pod, "addr", "add", node.PodIP()+"/24", "dev", "eth0")
		run("-n", node.Pod, "addr", "add", node.PodIP6()+"/64", "dev", "eth0", "nodad")
		run("-n", node.Pod, "link", "set", "eth0", "up")
		run("-n", node.NS, "addr", "add", fmt.Sprintf("10.244.%d.1/24", i), "dev", lxc)
		run("-n", node.NS, "addr", "add", fmt.Sprintf("fd00:10:%d::1/64", i), "dev", lxc, "nodad")
		run("-n", node.NS, "link", "set", lxc, "up")
		run("-n", node.Pod, "route", "add", "10.0.0.0/8", "via", fmt.Sprintf("10.244.%d.1", i))
		run("-n", node.Pod, "-6", "route", "add", "fd00:10::/32", "via", fmt.Sprintf("fd00:10:%d::1", i))
		l.Nodes = append(l.Nodes, node)
		startEcho(t, node.Pod)
	}
	return l
}

// CiliumNodes is what the IPAM controller would have written for the lab,
// leaving out the nodes named in skip.
func (l *Lab) CiliumNodes(skip ...string) []ciliumv2.CiliumNode {
	var out []ciliumv2.CiliumNode
	for _, n := range l.Nodes {
		if Contains(skip, n.Name) {
			continue
		}
		cn := ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: n.Name}}
		cn.Spec.Addresses = []ciliumv2.NodeAddress{
			{Type: ciliumv2.NodeAddressInternalIP, IP: n.IP()},
			{Type: ciliumv2.NodeAddressInternalIP, IP: n.IP6()},
		}
		cn.Spec.IPAM.PodCIDRs = []string{n.CIDR(), n.CIDR6()}
		out = append(out, cn)
	}
	return out
}

// Contains reports whether x is in s.
func Contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// State is everything Plexus owns in a node's kernel, as the ip tools print
// it (link index included, so a recreated device shows).
func (l *Lab) State(node Node) string {
	l.t.Helper()
	var b strings.Builder
	b.WriteString(netnstest.Run(l.t, "ip", "-n", node.NS, "route", "show", "proto", "185"))
	b.WriteString(netnstest.Run(l.t, "ip", "-n", node.NS, "-6", "route", "show", "proto", "185"))
	if out, err := netnstest.Exec(node.NS, "ip", "-d", "link", "show", VXLANDevice); err == nil {
		b.WriteString(out)
		b.WriteString(netnstest.Run(l.t, "bridge", "-n", node.NS, "fdb", "show", "dev", VXLANDevice))
		b.WriteString(netnstest.Run(l.t, "ip", "-n", node.NS, "-4", "neigh", "show", "dev", VXLANDevice, "nud", "permanent"))
		b.WriteString(netnstest.Run(l.t, "ip", "-n", node.NS, "-6", "neigh", "show", "dev", VXLANDevice, "nud", "permanent"))
	}
	return b.String()
}

// RequireReach checks that TCP from pod from reaches the echo server at addr
// within a deadline (the first packets wait for ARP/ND).
func (l *Lab) RequireReach(from Node, addr string) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = echoOnce(from.Pod, addr); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("pod on %s cannot reach %s: %v", from.Name, addr, err)
}

// RequireAllReach checks that every pod reaches every other pod over IPv4
// and IPv6, leaving out the nodes named in skip.
func (l *Lab) RequireAllReach(skip ...string) {
	l.t.Helper()
	for _, a := range l.Nodes {
		for _, b := range l.Nodes {
			if a.i == b.i || Contains(skip, a.Name) || Contains(skip, b.Name) {
				continue
			}
			l.RequireReach(a, b.EchoAddr())
			l.RequireReach(a, net.JoinHostPort(b.PodIP6(), "7"))
		}
	}
}

// startEcho serves TCP echo on port 7 in ns until the test ends.
func startEcho(t *testing.T, ns string) {
	t.Helper()
	var ln net.Listener
	if err := netnstest.Do(ns, func() (err error) { ln, err = net.Listen("tcp", ":7"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
}

// EchoAddr is the IPv4 address of the echo server in n's pod.
func (n Node) EchoAddr() string { return net.JoinHostPort(n.PodIP(), "7") }

// Dial opens a TCP connection from ns (the socket stays in ns).
func Dial(ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := netnstest.Do(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr, time.Second); return err })
	return c, err
}

func echoOnce(ns, addr string) error {
	c, err := Dial(ns, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return RoundTrip(c, []byte("ping"))
}

// RoundTrip sends msg and reads the echo, with a deadline.
func RoundTrip(c net.Conn, msg []byte) error {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("echo mismatch")
	}
	return nil
}

// MustContain fails t unless out has every one of wants.
func MustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, out)
		}
	}
}

// MustNotContain fails t if out has any of unwanted.
func MustNotContain(t *testing.T, what, out string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(out, w) {
			t.Errorf("%s: %q should be gone:\n%s", what, w, out)
		}
	}
}

// Stream keeps exchanging echo round trips over one TCP connection until
// stopped, so a test can tell whether the connection survived something.
type Stream struct {
	t      *testing.T
	conn   net.Conn
	rounds atomic.Int64
	failed chan error
	stop   chan struct{}
	done   chan struct{}
}

// StartStream dials addr from ns and starts the round trips; the stream is
// stopped when the test ends.
func StartStream(t *testing.T, ns, addr string) *Stream {
	t.Helper()
	conn, err := Dial(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stream{t: t, conn: conn, failed: make(chan error, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	t.Cleanup(s.Stop)
	return s
}

func (s *Stream) run() {
	defer close(s.done)
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		if err := RoundTrip(s.conn, []byte(fmt.Sprintf("msg-%06d", i))); err != nil {
			s.failed <- err
			return
		}
		s.rounds.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
}

// Wait fails the test unless n more round trips succeed within a deadline.
func (s *Stream) Wait(n int64) {
	s.t.Helper()
	target := s.rounds.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for s.rounds.Load() < target {
		select {
		case err := <-s.failed:
			s.t.Fatalf("connection broke after %d round trips: %v", s.rounds.Load(), err)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("connection stalled after %d round trips", s.rounds.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends the round trips and closes the connection.
func (s *Stream) Stop() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	<-s.done
	s.conn.Close()
}
