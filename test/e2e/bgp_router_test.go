package e2e_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
	"github.com/plexus-net/plexus/test/netnstest"
)

// TestLabRouter checks the lab's upstream BGP router before any node speaks
// BGP: FRR runs in its namespace with every node as a neighbor (none
// Established), the external client behind it reaches the router and the
// nodes but nothing the nodes would advertise (no BGP route yet), nor the
// host, and the router's neighbor settings change at run time.
func TestLabRouter(t *testing.T) {
	labtest.RequireRouter(t)
	l := labtest.Start(t, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	r := l.Router(t)
	var nodeIPs []netip.Addr
	for i := 1; i <= 3; i++ {
		nodeIPs = append(nodeIPs, l.Layout.NodeIP(i))
	}

	t.Run("FRRRuns", func(t *testing.T) {
		for _, c := range []string{"zebra", "bgpd"} {
			if !l.Running(r.Netns, c) {
				t.Errorf("%s does not run in %s", c, r.Netns)
			}
		}
	})

	t.Run("EveryNodeIsANeighbor", func(t *testing.T) {
		ns, err := l.RouterNeighbors()
		if err != nil {
			t.Fatal(err)
		}
		var got []netip.Addr
		for a, n := range ns {
			got = append(got, a)
			// No node speaks BGP yet: the router dials and is refused.
			if n.State == "Established" || n.Established != 0 {
				t.Errorf("neighbor %s: %+v, want never established", a, n)
			}
		}
		slices.SortFunc(got, netip.Addr.Compare)
		if !slices.Equal(got, nodeIPs) {
			t.Fatalf("router neighbors %v, want the nodes %v", got, nodeIPs)
		}
	})

	t.Run("SecondRouterListsTheNodes", func(t *testing.T) {
		l.Bird(t) // skips when the lab has no BIRD
		ns, err := l.BirdNeighbors()
		if err != nil {
			t.Fatal(err)
		}
		var got []netip.Addr
		for a, n := range ns {
			got = append(got, a)
			if n.State == "Established" {
				t.Errorf("BIRD neighbor %s: %+v, want not established", a, n)
			}
		}
		slices.SortFunc(got, netip.Addr.Compare)
		if !slices.Equal(got, nodeIPs) {
			t.Fatalf("BIRD neighbors %v, want the nodes %v", got, nodeIPs)
		}
		// iBGP with one node, then back; a malformed statement changes nothing.
		n1 := nodeIPs[0]
		l.ConfigureBirdNeighbor(t, n1, fmt.Sprintf("neighbor %s internal;", n1))
		if out, err := l.Birdc("show", "protocols", "all", "n1"); err != nil || !strings.Contains(out, fmt.Sprintf("Neighbor AS:      %d", lab.BirdASN)) {
			t.Errorf("n1 not iBGP after reconfiguring: %v\n%s", err, out)
		}
		if err := lab.ConfigureBirdNeighbor(l.Layout, n1, "nonsense here;"); err == nil {
			t.Error("BIRD accepted a malformed statement")
		}
		l.ConfigureBirdNeighbor(t, n1)
		if ns, err := l.BirdNeighbors(); err != nil || ns[n1].RemoteAS == lab.BirdASN {
			t.Errorf("n1 still iBGP after the reset: %+v %v", ns[n1], err)
		}
	})

	t.Run("RIBHoldsOnlyTheExternalNetwork", func(t *testing.T) {
		rib, err := l.RouterRIB("ipv4")
		if err != nil {
			t.Fatal(err)
		}
		if len(rib) != 1 || len(rib[r.ExtPrefix]) != 1 || !rib[r.ExtPrefix][0].Best {
			t.Fatalf("router RIB %+v, want only its own %s", rib, r.ExtPrefix)
		}
		fib, err := l.RouterFIB()
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range fib {
			if rt.Protocol == "bgp" || rt.Dst.Bits() == 0 {
				t.Errorf("router FIB has %+v before any node speaks BGP (or a default route)", rt)
			}
		}
	})

	t.Run("ExternalClientReachesRouterAndNodes", func(t *testing.T) {
		// bgpd listens on 179 on every address of the router.
		for _, a := range []netip.Addr{l.Layout.RouterExtIP(), r.IP} {
			if err := tcpReach(r.ExtNetns, netip.AddrPortFrom(a, 179), 3*time.Second); err != nil {
				t.Errorf("external client to router %s:179: %v", a, err)
			}
		}
		// kube-proxy's health port on each node: forwarded by the router,
		// answered through the nodes' route back to the external network.
		for _, a := range nodeIPs {
			l.EventuallyIn(t, 30*time.Second, fmt.Sprintf("external client to node %s:10256", a), func() error {
				return tcpReach(r.ExtNetns, netip.AddrPortFrom(a, 10256), 2*time.Second)
			})
		}
	})

	t.Run("NoRouteToWhatNodesWouldAdvertise", func(t *testing.T) {
		// LoadBalancer addresses off the segment (the lab-l2 pool is on it,
		// reached by ARP), pods, Services.
		for _, a := range []netip.Addr{l.Layout.BGPPoolPrefix().Addr(), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.96.0.1")} {
			out, err := exec.Command("ip", "-n", r.Netns, "route", "get", a.String()).CombinedOutput()
			if err == nil {
				t.Errorf("router has a route to %s before BGP: %s", a, out)
			}
			// The router answers "unreachable" at once: no route, no default.
			if err := tcpReach(r.ExtNetns, netip.AddrPortFrom(a, 80), 3*time.Second); err == nil ||
				!errors.Is(err, errUnreachable) {
				t.Errorf("external client to %s:80: %v, want unreachable", a, err)
			}
		}
	})

	t.Run("NothingLeavesTheLab", func(t *testing.T) {
		out, err := exec.Command("ip", "-4", "route", "show", "root", r.ExtPrefix.String()).Output()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("host routes %s: %q %v, want none", r.ExtPrefix, out, err)
		}
		out, err = exec.Command("ip", "-n", r.Netns, "-4", "route", "show", "default").Output()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("router default route: %q %v, want none", out, err)
		}
		// The host would answer the external client off the machine: the
		// router does not forward to it.
		if err := tcpReach(r.ExtNetns, netip.AddrPortFrom(l.Layout.GatewayIP(), 6443), time.Second); err == nil {
			t.Error("the external client reached the API server on the host")
		}
	})

	t.Run("NeighborSettingsChangeAtRunTime", func(t *testing.T) {
		n1 := nodeIPs[0]
		l.SetRouterPassword(t, n1, "s3cret")
		l.ConfigureRouter(t, fmt.Sprintf("neighbor %s remote-as internal", nodeIPs[1]))
		conf, err := l.RouterVtysh("show running-config")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{fmt.Sprintf("neighbor %s password s3cret", n1), fmt.Sprintf("neighbor %s remote-as internal", nodeIPs[1])} {
			if !strings.Contains(conf, want) {
				t.Errorf("running config lacks %q:\n%s", want, conf)
			}
		}
		l.SetRouterPassword(t, n1, "")
		l.ConfigureRouter(t, fmt.Sprintf("neighbor %s remote-as external", nodeIPs[1]))
		if conf, _ := l.RouterVtysh("show running-config"); strings.Contains(conf, "password") || strings.Contains(conf, "remote-as internal") {
			t.Errorf("settings not reverted:\n%s", conf)
		}
		if err := lab.ConfigureRouter(l.Layout, fmt.Sprintf("neighbor %s remote-as nonsense", n1)); err == nil {
			t.Error("the router accepted a malformed line")
		}
	})
}

// TestLabRouterCarriesBGPRoutes checks the lab's routers with stand-in
// speakers (BIRD in the node namespaces, AS 65001, until the node plugin
// speaks BGP): a ClusterIP announced by every node is installed by FRR
// with a next hop per node and reaches the pods from the external client;
// withdrawn, it is unreachable at once; a speaker killed with graceful
// restart leaves its path stale and the traffic flowing. BIRD, the second
// router, sees the same paths and attributes.
func TestLabRouterCarriesBGPRoutes(t *testing.T) {
	labtest.RequireRouter(t)
	if err := lab.BirdAvailable(); err != nil {
		t.Skipf("stand-in speakers need BIRD: %v", err)
	}
	l := labtest.Start(t, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	r := l.Router(t)
	l.Bird(t) // skips when the lab has no BIRD
	labtest.Deploy(t, l, labtest.Echo("echo", 3, nil))
	svc := labtest.Service(t, l, "echo")
	vip := netip.PrefixFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 32)
	url := "http://" + netip.AddrPortFrom(vip.Addr(), 80).String() + "/"
	var nodeIPs []netip.Addr
	var speakers []*standInSpeaker
	for i := 1; i <= 3; i++ {
		nodeIPs = append(nodeIPs, l.Layout.NodeIP(i))
		speakers = append(speakers, startStandInSpeaker(t, l, i, vip))
	}

	t.Run("AnnouncedByEveryNode", func(t *testing.T) {
		waitRouterEstablished(t, l, nodeIPs, 30*time.Second)
		paths := waitRouterPrefix(t, l, vip, nodeIPs, 30*time.Second)
		for _, p := range paths {
			if !slices.Equal(p.ASPath, []uint32{65001}) || !slices.Equal(p.Communities, []string{"65000:99"}) ||
				!slices.Equal(p.LargeCommunities, []string{"64512:100:50"}) || p.Peer != p.NextHop {
				t.Errorf("FRR path %+v", p)
			}
		}
		// The router sends the nodes its external network only (after its
		// update timer).
		l.EventuallyIn(t, 10*time.Second, "FRR's sessions with the nodes", func() error {
			got, err := l.RouterNeighbors()
			if err != nil {
				return err
			}
			for _, a := range nodeIPs {
				if n := got[a]; n.RemoteAS != 65001 || n.PrefixesAccepted != 1 || n.PrefixesSent != 1 || n.Capabilities["gracefulRestart"] != "advertisedAndReceived" {
					return fmt.Errorf("FRR neighbor %s: %+v", a, n)
				}
			}
			return nil
		})
	})

	t.Run("ExternalClientReachesPods", func(t *testing.T) {
		l.EventuallyIn(t, 30*time.Second, "external client GET "+url, func() error {
			a, err := extFetch(l, url)
			if err == nil && a.Pod == "" {
				err = fmt.Errorf("answer without a pod: %+v", a)
			}
			return err
		})
	})

	t.Run("SecondRouterSeesTheSame", func(t *testing.T) {
		l.EventuallyIn(t, 30*time.Second, "BIRD sessions and paths", func() error {
			ns, err := l.BirdNeighbors()
			if err != nil {
				return err
			}
			for _, a := range nodeIPs {
				if n := ns[a]; n.State != "Established" || n.RemoteAS != 65001 || n.RoutesImported != 1 {
					return fmt.Errorf("BIRD neighbor %s: %+v", a, n)
				}
			}
			paths := l.BirdRoutes(t, vip)
			if got := labtest.NextHops(paths); !slices.Equal(got, nodeIPs) {
				return fmt.Errorf("BIRD next hops %v", got)
			}
			for _, p := range paths {
				if !slices.Equal(p.Communities, []string{"65000:99"}) || !slices.Equal(p.LargeCommunities, []string{"64512:100:50"}) {
					return fmt.Errorf("BIRD path %+v", p)
				}
			}
			return nil
		})
	})

	t.Run("WithdrawnIsUnreachable", func(t *testing.T) {
		for _, s := range speakers {
			s.birdc(t, "disable", "lab_vip")
		}
		waitRouterNoPrefix(t, l, vip, 30*time.Second)
		if err := tcpReach(r.ExtNetns, netip.AddrPortFrom(vip.Addr(), 80), 3*time.Second); !errors.Is(err, errUnreachable) {
			t.Errorf("external client to withdrawn %s: %v, want unreachable", vip.Addr(), err)
		}
		for _, s := range speakers {
			s.birdc(t, "enable", "lab_vip")
		}
		waitRouterPrefix(t, l, vip, nodeIPs, 30*time.Second)
	})

	t.Run("GracefulRestartKeepsAKilledSpeakersPath", func(t *testing.T) {
		speakers[0].kill(t)
		l.EventuallyIn(t, 30*time.Second, "node 1's path stale", func() error {
			for _, p := range l.RouterRoutes(t, vip) {
				if p.Peer == nodeIPs[0] && p.Stale {
					return nil
				}
			}
			return errors.New("no stale path from node 1")
		})
		if err := routerFIBHas(l, vip, nodeIPs); err != nil {
			t.Error(err)
		}
		if _, err := extFetch(l, url); err != nil {
			t.Errorf("external client during the restart: %v", err)
		}
	})
}

// standInSpeaker is BIRD in a node's namespace announcing one prefix to
// both lab routers, as the node plugin will: AS 65001, community 65000:99,
// large community 64512:100:50, graceful restart on.
type standInSpeaker struct {
	cmd  *exec.Cmd
	sock string
}

func startStandInSpeaker(t *testing.T, l *labtest.Lab, i int, prefix netip.Prefix) *standInSpeaker {
	t.Helper()
	dir := t.TempDir()
	ip := l.Layout.NodeIP(i)
	conf := fmt.Sprintf(`router id %[1]s;
protocol device {}
protocol static lab_vip { ipv4; route %[2]s via %[1]s { bgp_community.add((65000,99)); bgp_large_community.add((64512,100,50)); }; }
template bgp up { local %[1]s as 65001; connect retry time 1; graceful restart on; ipv4 { import none; export all; next hop self; }; }
protocol bgp lab_frr from up { neighbor %[3]s as %[4]d; }
protocol bgp lab_bird from up { neighbor %[5]s as %[6]d; }
`, ip, prefix, l.Layout.RouterIP(), lab.RouterASN, l.Layout.BirdIP(), lab.BirdASN)
	f := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &standInSpeaker{sock: filepath.Join(dir, "bird.ctl")}
	// ip netns exec execs bird: the pid is bird's own.
	s.cmd = exec.Command("ip", "netns", "exec", l.Layout.NodeName(i), "bird", "-f", "-c", f, "-s", s.sock)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kill(t) })
	if err := labtest.Poll(10*time.Second, func() error {
		return exec.Command("birdc", "-s", s.sock, "show", "status").Run()
	}); err != nil {
		t.Fatalf("stand-in speaker on node %d (its output is above): %v", i, err)
	}
	return s
}

func (s *standInSpeaker) birdc(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("birdc", append([]string{"-s", s.sock}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("birdc %v: %v: %s", args, err, out)
	}
}

// kill ends the speaker with SIGKILL: no NOTIFICATION, as a crash.
func (s *standInSpeaker) kill(t testing.TB) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

var errUnreachable = errors.New("unreachable")

// tcpReach opens (and closes) a TCP connection to addr from namespace ns.
// An ICMP unreachable answer is errUnreachable.
func tcpReach(ns string, addr netip.AddrPort, timeout time.Duration) error {
	return netnstest.Do(ns, func() error {
		c, err := (&net.Dialer{Timeout: timeout}).Dial("tcp", addr.String())
		if err != nil {
			if s := err.Error(); strings.Contains(s, "unreachable") || strings.Contains(s, "no route to host") {
				return fmt.Errorf("%w: %w", errUnreachable, err)
			}
			return err
		}
		return c.Close()
	})
}

// --- helpers for the BGP tests (the node plugin speaking to the router) ---
//
// Drafts for the integrator: they assert on the router's view, which is
// what an upstream network sees, and on its kernel FIB, which is what
// carries the external client's traffic.

// waitRouterPrefix waits until the router holds prefix from exactly the
// given next hops (node addresses), all valid, and its FIB routes the
// prefix over all of them (ECMP). It returns the router's paths.
func waitRouterPrefix(t *testing.T, l *labtest.Lab, prefix netip.Prefix, nexthops []netip.Addr, timeout time.Duration) []labtest.RouterPath {
	t.Helper()
	want := slices.SortedFunc(slices.Values(nexthops), netip.Addr.Compare)
	var paths []labtest.RouterPath
	l.EventuallyIn(t, timeout, fmt.Sprintf("router learns %s via %v", prefix, want), func() error {
		paths = l.RouterRoutes(t, prefix)
		if got := labtest.NextHops(paths); !slices.Equal(got, want) {
			return fmt.Errorf("RIB next hops %v", got)
		}
		for _, p := range paths {
			if !p.Valid {
				return fmt.Errorf("path %+v not valid", p)
			}
		}
		return routerFIBHas(l, prefix, want)
	})
	return paths
}

// waitRouterNoPrefix waits until the router has neither a path nor a FIB
// route for prefix (withdrawn by every node).
func waitRouterNoPrefix(t *testing.T, l *labtest.Lab, prefix netip.Prefix, timeout time.Duration) {
	t.Helper()
	l.EventuallyIn(t, timeout, fmt.Sprintf("router drops %s", prefix), func() error {
		if paths := l.RouterRoutes(t, prefix); len(paths) > 0 {
			return fmt.Errorf("still %d paths: %+v", len(paths), paths)
		}
		return routerFIBHas(l, prefix, nil)
	})
}

// routerFIBHas checks the router's kernel route for prefix: installed by
// BGP over exactly nexthops, or absent when nexthops is empty.
func routerFIBHas(l *labtest.Lab, prefix netip.Prefix, nexthops []netip.Addr) error {
	fib, err := l.RouterFIB()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(fib, func(r labtest.FIBRoute) bool { return r.Dst == prefix })
	switch {
	case len(nexthops) == 0 && i < 0:
		return nil
	case len(nexthops) == 0:
		return fmt.Errorf("FIB still routes %s: %+v", prefix, fib[i])
	case i < 0:
		return fmt.Errorf("FIB has no route to %s", prefix)
	case fib[i].Protocol != "bgp" || !slices.Equal(fib[i].NextHops, nexthops):
		return fmt.Errorf("FIB route %+v, want proto bgp via %v", fib[i], nexthops)
	}
	return nil
}

// waitRouterEstablished waits until the router's sessions with neighbors
// are all Established and returns them.
func waitRouterEstablished(t testing.TB, l *labtest.Lab, neighbors []netip.Addr, timeout time.Duration) map[netip.Addr]labtest.RouterNeighbor {
	t.Helper()
	var got map[netip.Addr]labtest.RouterNeighbor
	l.EventuallyIn(t, timeout, fmt.Sprintf("router sessions with %v Established", neighbors), func() error {
		var err error
		if got, err = l.RouterNeighbors(); err != nil {
			return err
		}
		for _, a := range neighbors {
			if s := got[a].State; s != "Established" {
				return fmt.Errorf("%s is %q", a, s)
			}
		}
		return nil
	})
	return got
}

// extFetch GETs url from the external client (through the router's
// BGP-learned routes) and decodes the echo server's answer.
func extFetch(l *labtest.Lab, url string) (labtest.Answer, error) {
	c := l.ExternalClientHTTP()
	c.Timeout = 3 * time.Second
	return labtest.FetchWith(c, url)
}
