package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ip runs an iproute2 command and returns its error with the output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs a command inside a namespace (sysctl, bridge, nft).
func inNetns(ns string, name string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func netnsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// setupBridge creates the lab segment's bridge in the host namespace. It
// carries only the lab's own addresses: the host's uplink and routes are
// not touched, and nothing forwards or NATs lab traffic out.
func setupBridge(l Layout, s *State) error {
	br := l.Bridge()
	if !linkExists(br) {
		if err := ip("link", "add", br, "type", "bridge"); err != nil {
			return err
		}
	}
	if err := s.addLink(br); err != nil {
		return err
	}
	if err := ip("addr", "replace", l.GatewayIP().String()+"/24", "dev", br); err != nil {
		return err
	}
	if s.IPv6() {
		// nodad: the address is the lab's alone, and usable at once.
		if err := ip("addr", "replace", l.GatewayIPv6().String()+"/64", "dev", br, "nodad"); err != nil {
			return err
		}
	}
	return ip("link", "set", br, "up")
}

// onSegment creates namespace ns (if missing) with eth0 on the lab bridge
// at addr/24 and addr6/64 (each when not empty), its host end named host; both
// are recorded in the state so that Down removes them. Every lab namespace
// on the segment (nodes, the client, the routers) is made this way.
func onSegment(l Layout, s *State, ns, host, addr, addr6 string) error {
	if !netnsExists(ns) {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
	}
	if err := s.addNetns(ns); err != nil {
		return err
	}
	if !linkExists(host) {
		if err := ip("link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
			return err
		}
	}
	if err := s.addLink(host); err != nil {
		return err
	}
	for _, a := range [][]string{
		{"link", "set", host, "master", l.Bridge(), "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ip(a...); err != nil {
			return err
		}
	}
	if addr != "" {
		if err := ip("-n", ns, "addr", "replace", addr+"/24", "dev", "eth0"); err != nil {
			return err
		}
	}
	if addr6 != "" {
		return ip("-n", ns, "addr", "replace", addr6+"/64", "dev", "eth0", "nodad")
	}
	return nil
}

// setupNode creates node i's namespace with eth0 on the lab bridge.
func setupNode(l Layout, s *State, n Node) error {
	if err := onSegment(l, s, n.Name, l.HostVeth(n.Index), n.IP, n.IPv6); err != nil {
		return err
	}
	// A node forwards for its pods. No default route: the node reaches only
	// the lab segment and what the network plugins route.
	if s.IPv6() {
		if err := inNetns(n.Name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"); err != nil {
			return err
		}
	}
	return inNetns(n.Name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
}

// setupClient creates the external client's namespace: eth0 on the lab
// bridge with the client address and no default route, so it reaches the
// segment only (node addresses, and Service addresses a node announces).
func setupClient(l Layout, s *State) error {
	s.Client = l.ClientNetns()
	addr, addr6 := "", ""
	if s.IPv4() {
		addr = l.ClientIP().String()
	}
	if s.IPv6() {
		addr6 = l.ClientIPv6().String()
	}
	return onSegment(l, s, l.ClientNetns(), l.ClientVeth(), addr, addr6)
}

// --- stand-in datapath -------------------------------------------------
//
// STAND-IN: with --datapath standin the lab routes pod CIDRs between nodes
// itself (s.PodCIDRs: the CiliumNodes' CIDRs when the IPAM controller runs,
// else static ones). With --datapath plexus none of this runs: the datapath
// plugin programs routes (native) or its VXLAN device from the CiliumNodes.

// setupStandinRoutes routes every other node's pod CIDR: natively via its
// eth0 address, or over a VXLAN device (flooding FDB entries to every peer,
// onlink routes via the peer's VXLAN address).
func setupStandinRoutes(l Layout, s *State) error {
	for _, n := range s.Nodes {
		if s.RoutingMode == "vxlan" {
			if err := setupStandinVXLAN(l, s, n); err != nil {
				return err
			}
		}
		for _, peer := range s.Nodes {
			if peer.Index == n.Index {
				continue
			}
			cidr := s.PodCIDRs[peer.Name]
			var err error
			if s.RoutingMode == "vxlan" {
				err = ip("-n", n.Name, "route", "replace", cidr, "via", l.VXLANIP(peer.Index).String(), "dev", "vxlan0", "onlink")
			} else {
				err = ip("-n", n.Name, "route", "replace", cidr, "via", peer.IP, "dev", "eth0")
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func setupStandinVXLAN(l Layout, s *State, n Node) error {
	if err := ip("-n", n.Name, "link", "add", "vxlan0", "type", "vxlan", "id", "42", "dstport", "8472",
		"local", n.IP, "dev", "eth0", "nolearning"); err != nil && !strings.Contains(err.Error(), "File exists") {
		return err
	}
	if err := ip("-n", n.Name, "addr", "replace", l.VXLANIP(n.Index).String()+"/32", "dev", "vxlan0"); err != nil {
		return err
	}
	if err := ip("-n", n.Name, "link", "set", "vxlan0", "up"); err != nil {
		return err
	}
	for _, peer := range s.Nodes {
		if peer.Index == n.Index {
			continue
		}
		if err := inNetns(n.Name, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst", peer.IP); err != nil &&
			!strings.Contains(err.Error(), "File exists") {
			return err
		}
	}
	return nil
}

// removeStandinRoutesTo drops the other nodes' routes and FDB entries for a
// deleted node (the datapath plugin does this itself from CiliumNodes).
func removeStandinRoutesTo(s *State, gone Node) {
	for _, n := range s.Nodes {
		if n.Index == gone.Index {
			continue
		}
		_ = ip("-n", n.Name, "route", "del", s.PodCIDRs[gone.Name])
		if s.RoutingMode == "vxlan" {
			_ = inNetns(n.Name, "bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "vxlan0", "dst", gone.IP)
		}
	}
}

// sweepNetwork deletes every namespace and host link that carries the lab's
// name prefix, listed in the state or not (a crashed run may not have
// recorded them). Pod namespaces are <name>-p-..., nodes <name>-n<i>, the
// client <name>-client, the routers <name>-router, <name>-bird and
// <name>-ext; host links <name>br0, <name>n<i>, <name>cl, <name>rt, <name>bd.
func sweepNetwork(name string, s *State) []error {
	var errs []error
	nsSet := map[string]bool{}
	if s != nil {
		for _, ns := range s.Netns {
			nsSet[ns] = true
		}
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), name+"-") {
				nsSet[e.Name()] = true
			}
		}
	}
	for ns := range nsSet {
		if netnsExists(ns) {
			if err := ip("netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	links := map[string]bool{}
	if s != nil {
		for _, l := range s.Links {
			links[l] = true
		}
	}
	if entries, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range entries {
			if isLabLink(name, e.Name()) {
				links[e.Name()] = true
			}
		}
	}
	for l := range links {
		if linkExists(l) {
			if err := ip("link", "del", l); err != nil && linkExists(l) {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// isLabLink reports whether a host link name is one of lab name's: its
// bridge, the client's or a router's bridge port (<name>cl, <name>rt,
// <name>bd) or a node's (<name>n<digits>).
func isLabLink(name, link string) bool {
	if link == name+"br0" || link == name+"cl" || link == name+"rt" || link == name+"bd" {
		return true
	}
	rest, ok := strings.CutPrefix(link, name+"n")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
