// Package arptest is the client side of ARP tests: a packet socket opened in
// a test's client namespace that sends one request and collects every reply
// within a window, so a test can tell how many nodes answered.
package arptest

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/plexus-net/plexus/test/netnstest"
)

// Client asks for addresses on one interface of a namespace.
type Client struct {
	c *arp.Client
}

// Open opens a client on interface iface (which must have an IPv4 address,
// the requests' sender) of namespace ns.
func Open(ns, iface string) (*Client, error) {
	var c *arp.Client
	err := netnstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// Close closes the socket.
func (c *Client) Close() error { return c.c.Close() }

// Ask sends one request for ip and returns the MACs of every reply for ip
// that arrives within window, in arrival order (duplicates kept).
func (c *Client) Ask(ip netip.Addr, window time.Duration) ([]net.HardwareAddr, error) {
	if err := c.c.Request(ip); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(window)
	if err := c.c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	var macs []net.HardwareAddr
	for {
		p, _, err := c.c.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return macs, nil
		}
		if err != nil {
			return macs, err
		}
		if p.Operation == arp.OperationReply && p.SenderIP == ip {
			macs = append(macs, slices.Clone(p.SenderHardwareAddr))
		}
	}
}

// Distinct returns the distinct MACs of macs, as strings, sorted.
func Distinct(macs []net.HardwareAddr) []string {
	var out []string
	for _, m := range macs {
		if !slices.Contains(out, m.String()) {
			out = append(out, m.String())
		}
	}
	slices.Sort(out)
	return out
}

// Neighbour is the MAC the kernel of namespace ns holds for ip on eth0 (its
// neighbour entry), or what `ip neigh` says when it holds none.
func Neighbour(t testing.TB, ns string, ip netip.Addr) string {
	t.Helper()
	out := netnstest.Run(t, "ip", "-n", ns, "neigh", "show", ip.String(), "dev", "eth0")
	if m := lladdr.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return strings.TrimSpace(out)
}

var lladdr = regexp.MustCompile(`lladdr (\S+)`)
