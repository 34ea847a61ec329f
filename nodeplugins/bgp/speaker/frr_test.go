package speaker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
	"github.com/plexus-net/plexus/test/netnstest"
)

// Tests against FRR run the speaker in a child process inside the node's
// network namespace (GoBGP's sockets cannot be pinned to a namespace from
// one process), and FRR's bgpd in its own namespace behind a veth: FRR
// treats 127/8 next hops as martians. The parent builds the namespaces and
// starts FRR; the child, the same test binary re-run with childEnv set,
// drives the speaker and asks FRR (vtysh over a unix socket, which works
// across namespaces) what it received.
const (
	childEnv  = "PLEXUS_SPEAKER_TEST_CHILD"
	frrDirEnv = "PLEXUS_SPEAKER_TEST_FRR"
)

func inChild(t *testing.T) bool { return os.Getenv(childEnv) == t.Name() }

// runChild re-runs t inside namespace ns and fails t if the child fails.
func runChild(t *testing.T, ns string, env ...string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0],
		"-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=90s")
	cmd.Env = append(append(os.Environ(), childEnv+"="+t.Name()), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child run in namespace %s failed (%v):\n%s", ns, err, out)
	}
	t.Logf("child run in namespace %s:\n%s", ns, out)
}

func requireFRR(t *testing.T) string {
	t.Helper()
	netnstest.RequireRoot(t)
	const bgpd = "/usr/lib/frr/bgpd"
	if _, err := os.Stat(bgpd); err != nil {
		t.Skip("FRR's bgpd is not installed (apt-get install -y frr)")
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skip("FRR's vtysh is not installed (apt-get install -y frr)")
	}
	return bgpd
}

// startFRR runs bgpd (without zebra) in ns with conf and returns the
// directory of its vty socket.
func startFRR(t *testing.T, bgpd, ns, conf string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "bgpd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, bgpd, "-f", cfg, "-i", filepath.Join(dir, "bgpd.pid"),
		"-z", filepath.Join(dir, "zserv.api"), "-Z", "-S", "-p", "179", "--vty_socket", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("bgpd output:\n%s", out)
		}
	})
	eventually(t, 10*time.Second, "FRR's vty", func() bool {
		var v map[string]any
		return vtyshJSON(dir, "show bgp summary json", &v) == nil
	})
	return dir
}

func vtyshJSON(dir, command string, v any) error {
	out, err := exec.Command("vtysh", "--vty_socket", dir, "-d", "bgpd", "-c", command).Output()
	if err != nil {
		return fmt.Errorf("vtysh %q: %w", command, err)
	}
	return json.Unmarshal(out, v)
}

// frrNeighbor is the part of `show bgp neighbors X json` the tests read.
type frrNeighbor struct {
	State        string `json:"bgpState"`
	HoldMsecs    int    `json:"bgpTimerHoldTimeMsecs"`
	Capabilities struct {
		MP map[string]map[string]any `json:"multiprotocolExtensions"`
	} `json:"neighborCapabilities"`
}

func neighborOf(dir, addr string) (frrNeighbor, error) {
	var m map[string]frrNeighbor
	if err := vtyshJSON(dir, "show bgp neighbors "+addr+" json", &m); err != nil {
		return frrNeighbor{}, err
	}
	return m[addr], nil
}

// frrRoute is the part of `show bgp <afi> unicast <prefix> json` the tests
// read: the path FRR learnt, if any.
type frrRoute struct {
	Paths []struct {
		Community *struct {
			String string `json:"string"`
		} `json:"community"`
		LargeCommunity *struct {
			String string `json:"string"`
		} `json:"largeCommunity"`
		LocPrf   *int `json:"locPrf"`
		Nexthops []struct {
			IP string `json:"ip"`
		} `json:"nexthops"`
		Peer struct {
			PeerID string `json:"peerId"`
		} `json:"peer"`
	} `json:"paths"`
}

func routeAt(dir, afi, prefix string) frrRoute {
	var r frrRoute
	_ = vtyshJSON(dir, "show bgp "+afi+" unicast "+prefix+" json", &r)
	return r
}

// twoNamespaces builds the speaker's and FRR's namespaces joined by veth
// pairs, one per subnet given as "198.18.x.0/30"-style node/peer address
// pairs, and returns their names.
func twoNamespaces(t *testing.T, links ...[2]string) (node, peer string) {
	t.Helper()
	node, peer = netnstest.New(t, "spk"), netnstest.New(t, "frr")
	for i, l := range links {
		a, b := fmt.Sprintf("n%d", i), fmt.Sprintf("p%d", i)
		netnstest.Run(t, "ip", "-n", node, "link", "add", a, "type", "veth", "peer", "name", b, "netns", peer)
		for _, x := range []struct{ ns, dev, addr string }{{node, a, l[0]}, {peer, b, l[1]}} {
			args := []string{"-n", x.ns, "addr", "add", x.addr, "dev", x.dev}
			if strings.Contains(x.addr, ":") {
				args = append(args, "nodad")
			}
			netnstest.Run(t, "ip", args...)
			netnstest.Run(t, "ip", "-n", x.ns, "link", "set", x.dev, "up")
		}
	}
	return node, peer
}

// B8, B15, B20, B24/B25, B40, B41, B42, B66 against FRR, IPv4 and IPv6: the
// sessions establish with MD5, FRR sees only the configured families, the
// negotiated hold time, the communities and large communities and no local
// preference from an eBGP speaker; deleting the peers makes FRR drop the
// routes.
func TestFRR_B8_B15_B20_B24_B25_B40_B41_B42_B66_SessionAndRoutes(t *testing.T) {
	if inChild(t) {
		frrSessionAndRoutesChild(t)
		return
	}
	bgpd := requireFRR(t)
	t.Parallel()
	node, peer := twoNamespaces(t, [2]string{"198.18.50.1/30", "198.18.50.2/30"})
	netnstest.Run(t, "ip", "-n", node, "addr", "add", "fd00:198:18:50::1/64", "dev", "n0", "nodad")
	netnstest.Run(t, "ip", "-n", peer, "addr", "add", "fd00:198:18:50::2/64", "dev", "p0", "nodad")
	dir := startFRR(t, bgpd, peer, `frr defaults traditional
hostname frr-test
router bgp 65000
 bgp router-id 198.18.50.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.18.50.1 remote-as 65001
 neighbor 198.18.50.1 timers connect 1
 neighbor 198.18.50.1 disable-connected-check
 neighbor 198.18.50.1 password frr-s3cret
 neighbor fd00:198:18:50::1 remote-as 65001
 neighbor fd00:198:18:50::1 timers connect 1
 neighbor fd00:198:18:50::1 disable-connected-check
 address-family ipv4 unicast
  neighbor 198.18.50.1 activate
  no neighbor fd00:198:18:50::1 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 198.18.50.1 activate
  neighbor fd00:198:18:50::1 activate
 exit-address-family
`)
	runChild(t, node, frrDirEnv+"="+dir)
}

func frrSessionAndRoutesChild(t *testing.T) {
	dir := os.Getenv(frrDirEnv)
	local4, local6 := netip.MustParseAddr("198.18.50.1"), netip.MustParseAddr("fd00:198:18:50::1")
	v4 := desired.Peer{
		Name: "frr-v4", Address: netip.MustParseAddr("198.18.50.2"), ASN: 65000, Password: "frr-s3cret",
		ConnectRetry: time.Second, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []desired.Family{{AFI: "ipv4", SAFI: "unicast"}},
		Routes: []desired.Route{
			{Prefix: netip.MustParsePrefix("10.60.0.0/24"), Communities: []uint32{65000<<16 | 99, noExport},
				LargeCommunities: []desired.LargeCommunity{{Global: 64512, Local1: 100, Local2: 50}}, LocalPreference: u32(150)},
			{Prefix: netip.MustParsePrefix("2001:db8:60::/48")}, // not a family of this peer
		},
	}
	v6 := desired.Peer{
		Name: "frr-v6", Address: netip.MustParseAddr("fd00:198:18:50::2"), ASN: 65000,
		ConnectRetry: time.Second, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []desired.Family{{AFI: "ipv6", SAFI: "unicast"}},
		Routes:   []desired.Route{{Prefix: netip.MustParsePrefix("2001:db8:60::/48"), Communities: []uint32{65000<<16 | 6}}},
	}
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, local4, v4, v6))

	eventually(t, 20*time.Second, "both sessions established at FRR", func() bool {
		n4, err4 := neighborOf(dir, "198.18.50.1")
		n6, err6 := neighborOf(dir, "fd00:198:18:50::1")
		return err4 == nil && err6 == nil && n4.State == "Established" && n6.State == "Established"
	})
	n4, _ := neighborOf(dir, "198.18.50.1")
	if n4.HoldMsecs != 9000 {
		t.Errorf("FRR negotiated hold %d ms, want 9000 (B15)", n4.HoldMsecs)
	}
	if mp := n4.Capabilities.MP; mp["ipv4Unicast"]["advertisedAndReceived"] != true || mp["ipv6Unicast"]["received"] == true || mp["ipv6Unicast"]["advertisedAndReceived"] == true {
		t.Errorf("families seen by FRR %v, want ipv4 unicast only from the speaker (B25)", mp)
	}
	if tm := s.peerStatus("default", "frr-v4").Timers; tm == nil || *tm.AppliedHoldTimeSeconds != 9 || *tm.AppliedKeepaliveSeconds != 3 {
		t.Errorf("speaker status timers %+v, want 9/3", tm)
	}

	eventually(t, 10*time.Second, "routes at FRR", func() bool {
		return len(routeAt(dir, "ipv4", "10.60.0.0/24").Paths) == 1 && len(routeAt(dir, "ipv6", "2001:db8:60::/48").Paths) == 1
	})
	r4 := routeAt(dir, "ipv4", "10.60.0.0/24").Paths[0]
	if r4.Community == nil || r4.Community.String != "65000:99 no-export" {
		t.Errorf("FRR communities %+v, want 65000:99 no-export (B40, B41)", r4.Community)
	}
	if r4.LargeCommunity == nil || r4.LargeCommunity.String != "64512:100:50" {
		t.Errorf("FRR large communities %+v, want 64512:100:50 (B41)", r4.LargeCommunity)
	}
	if r4.LocPrf != nil {
		t.Errorf("FRR got local preference %d from an eBGP speaker (B42)", *r4.LocPrf)
	}
	if len(r4.Nexthops) == 0 || r4.Nexthops[0].IP != local4.String() {
		t.Errorf("FRR next hop %+v, want %s", r4.Nexthops, local4)
	}
	r6 := routeAt(dir, "ipv6", "2001:db8:60::/48").Paths
	if len(r6) != 1 || r6[0].Peer.PeerID != local6.String() || len(r6[0].Nexthops) == 0 || r6[0].Nexthops[0].IP != local6.String() {
		t.Errorf("FRR IPv6 route %+v, want one path from and via %s (not from the IPv4-only peer)", r6, local6)
	}
	st := s.peerStatus("default", "frr-v6")
	if st.PeeringState != ciliumv2.BGPPeeringStateEstablished || len(st.AdvertisedRoutes) != 1 || st.AdvertisedRoutes[0].NextHop != local6.String() {
		t.Errorf("speaker status of the IPv6 peer %+v", st)
	}

	// B66: without peers, FRR drops the sessions and the routes.
	mustApply(t, s, desired.State{Instances: []desired.Instance{{Name: "default", ASN: 65001, RouterID: local4}}})
	eventually(t, 10*time.Second, "FRR dropped the routes", func() bool {
		n4, _ := neighborOf(dir, "198.18.50.1")
		return len(routeAt(dir, "ipv4", "10.60.0.0/24").Paths) == 0 && len(routeAt(dir, "ipv6", "2001:db8:60::/48").Paths) == 0 && n4.State != "Established"
	})
}

// B52, B53 end to end: two default routes towards two FRR interfaces; the
// session goes to the lower-metric gateway, and moves to the other when
// that route is removed.
func TestFRR_B52_B53_AutoDiscoveryMultiHoming(t *testing.T) {
	if inChild(t) {
		frrAutoDiscoveryChild(t)
		return
	}
	bgpd := requireFRR(t)
	t.Parallel()
	node, peer := twoNamespaces(t, [2]string{"198.18.51.1/30", "198.18.51.2/30"}, [2]string{"198.18.52.1/30", "198.18.52.2/30"})
	// The routes lead into the FRR namespace, which has no way out.
	netnstest.Run(t, "ip", "-n", node, "route", "add", "default", "via", "198.18.51.2", "metric", "10")
	netnstest.Run(t, "ip", "-n", node, "route", "add", "default", "via", "198.18.52.2", "metric", "20")
	dir := startFRR(t, bgpd, peer, `frr defaults traditional
hostname frr-test
router bgp 65000
 bgp router-id 198.18.51.2
 no bgp ebgp-requires-policy
 neighbor 198.18.51.1 remote-as 65001
 neighbor 198.18.51.1 timers connect 1
 neighbor 198.18.51.1 disable-connected-check
 neighbor 198.18.52.1 remote-as 65001
 neighbor 198.18.52.1 timers connect 1
 neighbor 198.18.52.1 disable-connected-check
`)
	runChild(t, node, frrDirEnv+"="+dir)
}

func frrAutoDiscoveryChild(t *testing.T) {
	dir := os.Getenv(frrDirEnv)
	p := desired.Peer{
		Name: "gateway", AutoDiscovery: &desired.AutoDiscovery{Family: "ipv4"}, ASN: 65000,
		ConnectRetry: time.Second, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []desired.Family{{AFI: "ipv4", SAFI: "unicast"}},
		Routes:   []desired.Route{{Prefix: netip.MustParsePrefix("10.61.0.0/24")}},
	}
	s := newSpeaker(t)
	mustApply(t, s, oneInstance(65001, netip.MustParseAddr("198.18.51.1"), p))
	eventually(t, 20*time.Second, "session with the metric-10 gateway", func() bool {
		n, err := neighborOf(dir, "198.18.51.1")
		return err == nil && n.State == "Established" && s.peerStatus("default", "gateway").PeerAddress == "198.18.51.2"
	})
	if out, err := exec.Command("ip", "route", "del", "default", "via", "198.18.51.2").CombinedOutput(); err != nil {
		t.Fatalf("removing the metric-10 route: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "session moved to the metric-20 gateway", func() bool {
		n, err := neighborOf(dir, "198.18.52.1")
		old, _ := neighborOf(dir, "198.18.51.1")
		st := s.peerStatus("default", "gateway")
		return err == nil && n.State == "Established" && old.State != "Established" &&
			st.PeerAddress == "198.18.52.2" && st.PeeringState == ciliumv2.BGPPeeringStateEstablished
	})
	eventually(t, 10*time.Second, "route at FRR via the new session", func() bool {
		r := routeAt(dir, "ipv4", "10.61.0.0/24")
		return len(r.Paths) == 1 && len(r.Paths[0].Nexthops) > 0 && r.Paths[0].Nexthops[0].IP == "198.18.52.1"
	})
}
