package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/internal/nldump"
)

// The pod's next hop: link-local addresses that the host veth answers for
// through permanent neighbour entries in the pod, so the host needs no proxy
// ARP and no address of its own on the veth.
var (
	gatewayV4 = net.IPv4(169, 254, 1, 1).To4()
	gatewayV6 = net.ParseIP("fe80::1")
)

// hostVethName is the host end's name: stable for (container ID, interface),
// so that DEL finds it without state, and at most 15 bytes.
func hostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + ifName))
	return "plx" + hex.EncodeToString(sum[:])[:11]
}

func hostRoute(link netlink.Link, p podIP) *netlink.Route {
	return &netlink.Route{LinkIndex: link.Attrs().Index, Dst: hostNet(p.addr), Scope: netlink.SCOPE_LINK}
}

func hostNet(ip net.IP) *net.IPNet {
	if ip.To4() != nil {
		return &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

// setupPod creates the veth pair, the pod's addresses and routes, and the
// host's route to the pod. It runs in the node's network namespace.
func setupPod(args *skel.CmdArgs, mtu int, ips []podIP) (*current.Result, error) {
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return nil, fmt.Errorf("opening the pod's network namespace %s: %w", args.Netns, err)
	}
	defer netns.Close()
	hostName := hostVethName(args.ContainerID, args.IfName)

	// A retried ADD may find the pair of an earlier attempt.
	if err := teardownPod(args); err != nil {
		return nil, err
	}
	if err := netns.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(args.IfName); err == nil {
			return fmt.Errorf("the pod already has an interface %s", args.IfName)
		} else if !isNotFound(err) {
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: mtu},
		PeerName:      args.IfName,
		PeerNamespace: netlink.NsFd(int(netns.Fd())),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("creating veth %s: %w", hostName, err)
	}
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return nil, err
	}
	hostMAC := host.Attrs().HardwareAddr

	var podMAC net.HardwareAddr
	err = netns.Do(func(ns.NetNS) error {
		pod, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return err
		}
		podMAC = pod.Attrs().HardwareAddr
		if err := netlink.LinkSetUp(pod); err != nil {
			return err
		}
		idx := pod.Attrs().Index
		for _, p := range ips {
			a := &netlink.Addr{IPNet: hostNet(p.addr)}
			if !p.is4() {
				a.Flags = unix.IFA_F_NODAD // the address is ours alone: no need to wait for DAD
			}
			if err := netlink.AddrAdd(pod, a); err != nil {
				return fmt.Errorf("adding %s: %w", a.IPNet, err)
			}
		}
		if hasFamily(ips, true) {
			if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, IP: gatewayV4, HardwareAddr: hostMAC, State: netlink.NUD_PERMANENT}); err != nil {
				return fmt.Errorf("neighbour %s: %w", gatewayV4, err)
			}
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: hostNet(gatewayV4), Scope: netlink.SCOPE_LINK}); err != nil {
				return fmt.Errorf("route to %s: %w", gatewayV4, err)
			}
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: gatewayV4}); err != nil {
				return fmt.Errorf("default route: %w", err)
			}
		}
		if hasFamily(ips, false) {
			if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET6, IP: gatewayV6, HardwareAddr: hostMAC, State: netlink.NUD_PERMANENT}); err != nil {
				return fmt.Errorf("neighbour %s: %w", gatewayV6, err)
			}
			// onlink: the link-local route may not be there before the
			// interface's own link-local address passes DAD.
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, Gw: gatewayV6, Flags: int(netlink.FLAG_ONLINK)}); err != nil {
				return fmt.Errorf("default IPv6 route: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("in the pod's network namespace: %w", err)
	}

	if err := netlink.LinkSetUp(host); err != nil {
		return nil, err
	}
	for _, p := range ips {
		// The host knows the pod's MAC, so it never has to resolve it (and
		// IPv6 needs no link-local address on the host end first).
		family := unix.AF_INET
		if !p.is4() {
			family = unix.AF_INET6
		}
		if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: host.Attrs().Index, Family: family, IP: p.addr, HardwareAddr: podMAC, State: netlink.NUD_PERMANENT}); err != nil {
			return nil, fmt.Errorf("host neighbour %s: %w", p.addr, err)
		}
		// Replace: a route left by a vanished pod must not block this one.
		if err := netlink.RouteReplace(hostRoute(host, p)); err != nil {
			return nil, fmt.Errorf("host route to %s: %w", p.addr, err)
		}
	}
	if err := enableForwarding(hasFamily(ips, true), hasFamily(ips, false)); err != nil {
		return nil, err
	}

	r := &current.Result{
		Interfaces: []*current.Interface{
			{Name: hostName, Mac: hostMAC.String()},
			{Name: args.IfName, Mac: podMAC.String(), Sandbox: args.Netns},
		},
	}
	for _, p := range ips {
		gw, dst := gatewayV4, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if !p.is4() {
			gw, dst = gatewayV6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		r.IPs = append(r.IPs, &current.IPConfig{Interface: current.Int(1), Address: *hostNet(p.addr), Gateway: gw})
		r.Routes = append(r.Routes, &types.Route{Dst: *dst, GW: gw})
	}
	return r, nil
}

// teardownPod removes the host end of the pod's veth (which takes the pod
// end and the host routes with it). Nothing there is not an error.
func teardownPod(args *skel.CmdArgs) error {
	l, err := netlink.LinkByName(hostVethName(args.ContainerID, args.IfName))
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// checkPod verifies the pod interface has its addresses and the host routes
// to them exist.
func checkPod(args *skel.CmdArgs, ips []podIP) error {
	hostName := hostVethName(args.ContainerID, args.IfName)
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("host veth %s: %w", hostName, err)
	}
	for _, p := range ips {
		routes, err := nldump.Routes(nil, familyOf(p), hostRoute(host, p), netlink.RT_FILTER_DST|netlink.RT_FILTER_OIF)
		if err != nil {
			return err
		}
		if len(routes) == 0 {
			return fmt.Errorf("no host route to %s via %s", p.addr, hostName)
		}
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return fmt.Errorf("opening the pod's network namespace %s: %w", args.Netns, err)
	}
	defer netns.Close()
	return netns.Do(func(ns.NetNS) error {
		pod, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", args.IfName, err)
		}
		addrs, err := nldump.Addrs(nil, pod, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, p := range ips {
			found := false
			for _, a := range addrs {
				found = found || a.IP.Equal(p.addr)
			}
			if !found {
				return fmt.Errorf("pod interface %s lacks address %s", args.IfName, p.addr)
			}
		}
		return nil
	})
}

func familyOf(p podIP) int {
	if p.is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func hasFamily(ips []podIP, v4 bool) bool {
	for _, p := range ips {
		if p.is4() == v4 {
			return true
		}
	}
	return false
}

// enableForwarding turns on routing in the node's network namespace, once.
func enableForwarding(v4, v6 bool) error {
	set := func(path string) error {
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) == "1" {
			return nil
		}
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enabling forwarding (%s): %w", path, err)
		}
		return nil
	}
	if v4 {
		if err := set("/proc/sys/net/ipv4/ip_forward"); err != nil {
			return err
		}
	}
	if v6 {
		return set("/proc/sys/net/ipv6/conf/all/forwarding")
	}
	return nil
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}
