package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// The lab's upstream router: FRR (zebra + bgpd from Debian's frr package)
// in its own namespace with one leg on the lab segment and one to an
// external client on a network of its own. Nodes peer with it over BGP; it
// installs what it learns into its namespace's FIB, so the external client
// reaches what the nodes advertise (LoadBalancer addresses, pod CIDRs) only
// through BGP-learned routes, with ECMP across the nodes.
//
//	<lab>-ext (eth0 .130/25, default via .129) ── ext0 .129/25 <lab>-router eth0 198.18.<seg>.254 ── bridge
//
// The router announces only the external network to the nodes (never what
// it learned), so what a node receives is fixed: one prefix.

// RouterASN is the lab router's autonomous system number.
const RouterASN = 65000

// frrDir is where Debian's frr package puts the daemons (not on PATH).
const frrDir = "/usr/lib/frr"

// routerComponents are the router's processes, in start order.
const (
	routerZebra = "zebra"
	routerBGPd  = "bgpd"
)

// RouterNetns is the router's network namespace.
func (l Layout) RouterNetns() string { return l.Name + "-router" }

// RouterVeth is the host-side (bridge port) end of the router's eth0.
func (l Layout) RouterVeth() string { return l.Name + "rt" }

// RouterIP is the router's address on the lab segment, where nodes peer.
// The LB pool ends at .239, egress IPs use .240-.249 and the client
// .250-.252; .253 is the second router (BIRD).
func (l Layout) RouterIP() netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 254})
}

// ExtNetns is the external client behind the router: it reaches the
// cluster only through routes the router learned over BGP.
func (l Layout) ExtNetns() string { return l.Name + "-ext" }

// ExtPrefix is the network between the router and the external client:
// the upper half of 198.19.<segment>.0/24 (the stand-in VXLAN addresses
// are .11 and up of the lower half). The host has no route to it.
func (l Layout) ExtPrefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(l.Segment), 128}), 25)
}

// BGPPoolPrefix is free for a LoadBalancer IP pool that only BGP makes
// reachable: off the segment (no ARP answers it), outside the external
// network and the stand-in VXLAN addresses. The lab creates no pool in it.
func (l Layout) BGPPoolPrefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(l.Segment), 96}), 27)
}

// RouterIPv6 is the router's IPv6 address on the segment (--ip-family
// dual).
func (l Layout) RouterIPv6() netip.Addr { return l.underlayV6(0x254) }

// ExtPrefixV6 is the IPv6 network between the router and the external
// client (--ip-family dual): router ::1, client ::2.
func (l Layout) ExtPrefixV6() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0x02, 0, 0x01, 0, byte(l.Segment)}), 64)
}

// BGPPoolPrefixV6 is BGPPoolPrefix's IPv6 counterpart: off the segment
// and the external network, reachable only through BGP.
func (l Layout) BGPPoolPrefixV6() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0x02, 0, 0x02, 0, byte(l.Segment)}), 120)
}

// RouterExtIPv6 and ExtClientIPv6 are RouterExtIP and ExtClientIP in IPv6.
func (l Layout) RouterExtIPv6() netip.Addr { return l.ExtPrefixV6().Addr().Next() }

// ExtClientIPv6 is the external client's IPv6 address.
func (l Layout) ExtClientIPv6() netip.Addr { return l.RouterExtIPv6().Next() }

// RouterExtIP is the router's address towards the external client (the
// client's default gateway).
func (l Layout) RouterExtIP() netip.Addr { return l.ExtPrefix().Addr().Next() }

// ExtClientIP is the external client's address.
func (l Layout) ExtClientIP() netip.Addr { return l.RouterExtIP().Next() }

// RouterDir holds FRR's configuration, pid files and vty sockets; vtysh
// --vty_socket <RouterDir> talks to the daemons from any namespace.
func (l Layout) RouterDir() string { return filepath.Join(l.Dir, "router") }

// routerLink is the router's leg towards the external client (both ends
// live in namespaces, so deleting them removes it).
const routerLink = "ext0"

// RouterAvailable reports whether FRR's daemons and vtysh are installed.
func RouterAvailable() error {
	var missing []string
	for _, p := range []string{filepath.Join(frrDir, routerZebra), filepath.Join(frrDir, routerBGPd)} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		missing = append(missing, "vtysh")
	}
	if len(missing) > 0 {
		return fmt.Errorf("FRR is not installed (missing %s)", strings.Join(missing, ", "))
	}
	return nil
}

// EnsureRouterTools installs Debian's frr package when FRR is missing, and
// bird2 when BIRD is (the second router). The lab works without either, so
// the caller decides what a failure means; the error is FRR's. Installing
// does not start the packages' own services (the lab runs the daemons
// itself; policy-rc.d or the lack of an init keeps them off).
func EnsureRouterTools(out io.Writer) error {
	missing := func() []string {
		var pkgs []string
		if RouterAvailable() != nil {
			pkgs = append(pkgs, "frr")
		}
		if BirdAvailable() != nil {
			pkgs = append(pkgs, "bird2")
		}
		return pkgs
	}
	if len(missing()) == 0 {
		return nil
	}
	// Test binaries of several packages bring labs up at once: one installs,
	// the others wait for it and then find the packages there.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "plexus-lab-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	pkgs := missing()
	if len(pkgs) == 0 {
		return nil
	}
	fmt.Fprintf(out, "== installing %v with apt-get (the lab's BGP routers)\n", pkgs)
	wait := []string{"-o", "DPkg::Lock::Timeout=300"} // another apt user (the lab's host tools)
	for _, args := range [][]string{append(wait, "update", "-qq"), append(append(wait, "install", "-y", "-qq"), pkgs...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
		}
	}
	return RouterAvailable()
}

// setupRouter builds the router's namespace, the external client's, the
// links between them and the segment, each node's route to the external
// network, and starts FRR. Every step tolerates what an earlier run made.
func setupRouter(ctx context.Context, l Layout, s *State) error {
	if err := setupRouterNetwork(l, s); err != nil {
		return err
	}
	for _, n := range s.Nodes {
		// Nodes have no default route: replies to the external client go
		// back through the router, as they would through a default gateway.
		if s.IPv4() {
			if err := ip("-n", n.Name, "route", "replace", l.ExtPrefix().String(), "via", l.RouterIP().String(), "dev", "eth0"); err != nil {
				return err
			}
		}
		if s.IPv6() {
			if err := ip("-n", n.Name, "route", "replace", l.ExtPrefixV6().String(), "via", l.RouterIPv6().String(), "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	return startRouter(ctx, l, s)
}

func setupRouterNetwork(l Layout, s *State) error {
	rt, ext := l.RouterNetns(), l.ExtNetns()
	s.Router = rt
	segment, segment6 := "", ""
	if s.IPv4() {
		segment = l.RouterIP().String()
	}
	if s.IPv6() {
		segment6 = l.RouterIPv6().String()
	}
	if err := onSegment(l, s, rt, l.RouterVeth(), segment, segment6); err != nil {
		return err
	}
	if !netnsExists(ext) {
		if err := ip("netns", "add", ext); err != nil {
			return err
		}
	}
	if err := s.addNetns(ext); err != nil {
		return err
	}
	if ip("-n", rt, "link", "show", routerLink) != nil {
		if err := ip("-n", rt, "link", "add", routerLink, "type", "veth", "peer", "name", "eth0", "netns", ext); err != nil {
			return err
		}
	}
	bits := fmt.Sprintf("/%d", l.ExtPrefix().Bits())
	for _, a := range [][]string{
		{"-n", rt, "addr", "replace", l.RouterExtIP().String() + bits, "dev", routerLink},
		{"-n", rt, "link", "set", routerLink, "up"},
		{"-n", ext, "link", "set", "lo", "up"},
		{"-n", ext, "addr", "replace", l.ExtClientIP().String() + bits, "dev", "eth0"},
		{"-n", ext, "link", "set", "eth0", "up"},
		// The external client's only way anywhere is the router, which
		// has no default route either.
		{"-n", ext, "route", "replace", "default", "via", l.RouterExtIP().String(), "dev", "eth0"},
	} {
		if err := ip(a...); err != nil {
			return err
		}
	}
	// Forward; spread flows over ECMP next hops by ports too (a test's
	// connections from the one external client then reach several nodes);
	// answer every packet without a route at once (no per-host ICMP rate
	// limit), so "no route" fails fast rather than timing out.
	if err := inNetns(rt, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1", "net.ipv4.icmp_ratelimit=0"); err != nil {
		return err
	}
	if s.IPv6() {
		for _, a := range [][]string{
			{"-n", rt, "addr", "replace", l.RouterExtIPv6().String() + "/64", "dev", routerLink, "nodad"},
			{"-n", ext, "addr", "replace", l.ExtClientIPv6().String() + "/64", "dev", "eth0", "nodad"},
			{"-n", ext, "route", "replace", "default", "via", l.RouterExtIPv6().String(), "dev", "eth0"},
		} {
			if err := ip(a...); err != nil {
				return err
			}
		}
		if err := inNetns(rt, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", "net.ipv6.fib_multipath_hash_policy=1", "net.ipv6.icmp.ratelimit=0"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(l.RouterDir(), 0o755); err != nil {
		return err
	}
	guard := filepath.Join(l.RouterDir(), "guard.nft")
	rules := routerGuard(l, false)
	if s.IPv6() {
		rules += routerGuard(l, true)
	}
	if err := os.WriteFile(guard, []byte(rules), 0o644); err != nil {
		return err
	}
	return inNetns(rt, "nft", "-f", guard)
}

// routerGuard is the router's nftables table of one family (IPv6 when
// v6). The host has no route to the external network and would answer a
// packet from it through its own default route, off the machine: the
// router drops the external client's packets to the host. And a packet
// from the external client with no route is refused at once with ICMP
// "no route" (the kernel's own answer is rate limited per sender, so dials
// would time out instead).
func routerGuard(l Layout, v6 bool) string {
	family, reject, ext, host := "ip", "icmp type net-unreachable", l.ExtPrefix(), l.GatewayIP()
	if v6 {
		family, reject, ext, host = "ip6", "icmpv6 type no-route", l.ExtPrefixV6(), l.GatewayIPv6()
	}
	return fmt.Sprintf(`table %[1]s plexus-lab-router {}
delete table %[1]s plexus-lab-router
table %[1]s plexus-lab-router {
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		iifname %[2]q fib daddr type != local fib daddr oif missing reject with %[3]s
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		%[1]s saddr %[4]s %[1]s daddr %[5]s drop
	}
}
`, family, routerLink, reject, ext, host)
}

// startRouter writes FRR's configuration and starts zebra, then bgpd, in
// the router's namespace, recorded as processes of node RouterNetns().
func startRouter(ctx context.Context, l Layout, s *State) error {
	dir := l.RouterDir()
	files := map[string]string{"zebra.conf": "hostname " + l.RouterNetns() + "\n", "bgpd.conf": routerConfig(l, s.Nodes)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, name := range []string{routerZebra, routerBGPd} {
		spec := proc.Spec{Path: filepath.Join(frrDir, name), Args: routerArgs(l, name), Netns: l.RouterNetns(),
			Log: filepath.Join(l.LogDir(), l.RouterNetns()+"-"+name+".log"), Dir: dir}
		h, err := proc.Start(spec)
		if err != nil {
			return err
		}
		p := Process{Name: name, Node: l.RouterNetns(), Spec: spec, Handle: h}
		if i := s.findProcess(p.Node, name); i >= 0 {
			s.Processes[i] = p
		} else {
			s.Processes = append(s.Processes, p)
		}
		if err := s.save(); err != nil {
			return err
		}
		var ready func() error
		switch name {
		case routerZebra:
			ready = func() error { return socketExists(filepath.Join(dir, "zserv.api"), h) }
		case routerBGPd:
			ready = func() error {
				if !h.Alive() {
					return errors.New("bgpd exited")
				}
				out, err := RouterVtysh(l, "show bgp summary json")
				if err != nil {
					return err
				}
				if !strings.Contains(out, fmt.Sprintf(`"as":%d`, RouterASN)) {
					return fmt.Errorf("no BGP instance yet: %s", out)
				}
				return nil
			}
		}
		if err := waitFor(ctx, 20*time.Second, "router "+name+" (log "+spec.Log+")", ready); err != nil {
			return err
		}
	}
	return nil
}

func socketExists(path string, h proc.Handle) error {
	if !h.Alive() {
		return errors.New("exited")
	}
	_, err := os.Stat(path)
	return err
}

// routerArgs are FRR's command lines. zebra runs as root with group
// frrvty: FRR insists its user is in the vty group, and user frr could not
// reach a state dir under a private parent (a test's temporary dir). bgpd
// stays root (-S). No TCP vty (-P 0): vtysh uses the sockets in RouterDir.
func routerArgs(l Layout, name string) []string {
	dir := l.RouterDir()
	common := []string{"-f", filepath.Join(dir, name+".conf"), "-i", filepath.Join(dir, name+".pid"),
		"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "-P", "0", "--log", "stdout"}
	if name == routerZebra {
		return append([]string{"-u", "root", "-g", "frrvty"}, common...)
	}
	return append([]string{"-S"}, common...)
}

// routerConfig is bgpd's configuration: AS RouterASN, every node a
// neighbor of any AS but ours (remote-as external; ConfigureRouter changes
// one at run time, e.g. to internal for iBGP), reconnecting every second,
// up to 8 equal paths installed per prefix (ECMP across nodes, also when
// they have different ASNs), graceful restart so a restarting node keeps
// its routes, and only the external network announced to the nodes. In a
// dual-stack lab every node is also a neighbor at its IPv6 address, for
// IPv6 unicast only, and is sent the external IPv6 network.
func routerConfig(l Layout, nodes []Node) string {
	var b strings.Builder
	ext := l.ExtPrefix().String()
	dual := slices.ContainsFunc(nodes, func(n Node) bool { return n.IPv6 != "" })
	fmt.Fprintf(&b, `frr defaults traditional
hostname %s
!
ip prefix-list lab-ext seq 5 permit %s
`, l.RouterNetns(), ext)
	if dual {
		fmt.Fprintf(&b, "ipv6 prefix-list lab-ext6 seq 5 permit %s\n", l.ExtPrefixV6())
	}
	b.WriteString(`!
route-map lab-to-nodes permit 10
 match ip address prefix-list lab-ext
exit
!
`)
	if dual {
		b.WriteString("route-map lab-to-nodes permit 20\n match ipv6 address prefix-list lab-ext6\nexit\n!\n")
	}
	fmt.Fprintf(&b, `router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp bestpath as-path multipath-relax
`, RouterASN, l.RouterIP())
	for _, n := range nodes {
		for _, a := range n.IPs() {
			fmt.Fprintf(&b, " neighbor %s remote-as external\n neighbor %s description %s\n neighbor %s timers connect 1\n", a, a, n.Name, a)
		}
	}
	fmt.Fprintf(&b, " !\n address-family ipv4 unicast\n  network %s\n  maximum-paths 8\n", ext)
	for _, n := range nodes {
		if n.IP != "" {
			fmt.Fprintf(&b, "  neighbor %s route-map lab-to-nodes out\n", n.IP)
		}
		if n.IPv6 != "" {
			fmt.Fprintf(&b, "  no neighbor %s activate\n", n.IPv6)
		}
	}
	b.WriteString(" exit-address-family\n !\n address-family ipv6 unicast\n")
	if dual {
		fmt.Fprintf(&b, "  network %s\n", l.ExtPrefixV6())
	}
	b.WriteString("  maximum-paths 8\n")
	for _, n := range nodes {
		// The IPv4 session: accepted and shown, never sent (the prefix
		// list has no IPv6).
		for _, a := range n.IPs() {
			fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s route-map lab-to-nodes out\n", a, a)
		}
	}
	b.WriteString(" exit-address-family\nexit\n!\n")
	return b.String()
}

// RouterVtysh runs vtysh commands against the lab router's daemons (from
// any namespace: the vty sockets are files in RouterDir) and returns the
// output. vtysh fails on an unknown or rejected command.
func RouterVtysh(l Layout, cmds ...string) (string, error) {
	args := []string{"--vty_socket", l.RouterDir()}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s", strings.Join(cmds, "; "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ConfigureRouter applies configuration lines inside `router bgp` at run
// time, e.g. "neighbor 198.18.0.11 remote-as internal" or "neighbor
// 198.18.0.11 port 1790". They are not written back to bgpd.conf: a
// restarted bgpd starts from the lab's configuration again.
func ConfigureRouter(l Layout, lines ...string) error {
	cmds := append([]string{"configure terminal", fmt.Sprintf("router bgp %d", RouterASN)}, lines...)
	out, err := RouterVtysh(l, cmds...)
	if err != nil {
		return err
	}
	// Some rejections only print "%" lines.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "%") {
			return fmt.Errorf("router rejected %q: %s", lines, strings.TrimSpace(out))
		}
	}
	return nil
}

// SetRouterNeighborPassword sets the TCP MD5 password the router uses with
// neighbor (a node's address); "" removes it. The session restarts.
func SetRouterNeighborPassword(l Layout, neighbor netip.Addr, password string) error {
	if password == "" {
		return ConfigureRouter(l, fmt.Sprintf("no neighbor %s password", neighbor))
	}
	if strings.ContainsAny(password, " \t\n\"'") {
		return fmt.Errorf("password %q: no spaces or quotes (it passes through vtysh)", password)
	}
	return ConfigureRouter(l, fmt.Sprintf("neighbor %s password %s", neighbor, password))
}
