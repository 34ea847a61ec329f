package gateway

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/plexus-net/plexus/test/netnstest"
)

func TestB54_Choose(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		name  string
		cands []Candidate
		want  netip.Addr
		err   error
	}{
		{"lowest metric wins (B53)", []Candidate{{a("198.18.0.3"), 20}, {a("198.18.0.2"), 10}}, a("198.18.0.2"), nil},
		{"tie goes to the lower address", []Candidate{{a("198.18.0.9"), 5}, {a("198.18.0.4"), 5}}, a("198.18.0.4"), nil},
		{"none", nil, netip.Addr{}, ErrNoGateway},
		{"link-local gateway gives no session (B54)", []Candidate{{a("fe80::1"), 1}, {a("2001:db8::1"), 1024}}, netip.Addr{}, LinkLocalError{a("fe80::1")}},
		{"a worse link-local route does not matter", []Candidate{{a("fe80::1"), 2048}, {a("2001:db8::1"), 1024}}, a("2001:db8::1"), nil},
	}
	for _, c := range cases {
		got, err := Choose(c.cands)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, err, c.want, c.err)
		}
	}
}

// B53, B54 against the kernel: two default routes in a namespace; the lower
// metric wins, removing it moves to the other, Watch reports the change; an
// IPv6 link-local default gateway is refused.
func TestB53_B54_DefaultGatewayFromKernel(t *testing.T) {
	ns := netnstest.New(t, "gw")
	run := func(args ...string) { netnstest.Run(t, "ip", append([]string{"-n", ns}, args...)...) }
	run("link", "add", "gwa", "type", "veth", "peer", "name", "gwb")
	run("addr", "add", "198.18.40.1/24", "dev", "gwa")
	run("link", "set", "gwa", "up")
	run("link", "set", "gwb", "up")
	run("route", "add", "default", "via", "198.18.40.3", "metric", "20")
	run("route", "add", "default", "via", "198.18.40.2", "metric", "10")
	run("-6", "route", "add", "default", "via", "fe80::1", "dev", "gwa", "metric", "10")

	nsh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	if gw, err := Default(h, "ipv4"); err != nil || gw != netip.MustParseAddr("198.18.40.2") {
		t.Fatalf("ipv4 gateway %v, %v; want 198.18.40.2 (metric 10)", gw, err)
	}
	var ll LinkLocalError
	if gw, err := Default(h, "ipv6"); !errors.As(err, &ll) {
		t.Fatalf("ipv6 gateway %v, %v; want a link-local error", gw, err)
	}

	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribed := make(chan struct{})
	go watch(ctx, nsh, time.Hour, func() { changed <- struct{}{} }, func() { close(subscribed) })
	<-subscribed
	run("route", "del", "default", "via", "198.18.40.2", "metric", "10")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not report the route change")
	}
	if gw, err := Default(h, "ipv4"); err != nil || gw != netip.MustParseAddr("198.18.40.3") {
		t.Fatalf("after removing the metric-10 route: %v, %v; want 198.18.40.3", gw, err)
	}
	run("route", "del", "default", "via", "198.18.40.3")
	if gw, err := Default(h, "ipv4"); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("without default routes: %v, %v; want ErrNoGateway", gw, err)
	}
}
