// Package lab runs a whole Kubernetes cluster on one machine without
// containers: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as processes in the host network namespace, the Plexus
// controllers next to them, and N nodes, each a network namespace on a lab
// bridge that runs kube-proxy, the Plexus node plugins and a pod runner (the
// lab's kubelet, package podrunner). Everything the lab makes is listed in a
// state file, so `lab down` removes exactly that, and a name prefix lets it
// sweep what a crashed run left.
//
// Lab traffic stays between loopback, the lab bridge and the lab's own
// namespaces: the bridge has an address of the 198.18.0.0/15 benchmarking
// range, no namespace gets a default route, and nothing is NATed out.
package lab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// Options are what `lab up` is given.
type Options struct {
	Name        string // prefix of every namespace, link and process; [a-z][a-z0-9]{0,9}
	Nodes       int
	RoutingMode string // native | vxlan
	IPAMMode    string // cluster-pool | multi-pool | kubernetes
	// IPFamily is "ipv4" (the default), "dual" (IPv6 on the underlay,
	// 2001:2:0:<Segment>::/64 from RFC 5180's benchmarking range, IPv6 pod
	// CIDRs beside the IPv4 ones, and dual-stack Services) or "ipv6" (the
	// cluster is IPv6 only: nodes, pods, Services and the API server).
	IPFamily string
	// CNI picks the pod network plugin: "plexus" (plexus-cni with the
	// plexus-cni-agent on each node), "standin" (the reference ptp +
	// host-local plugins), or "auto": plexus when its binaries are in BinDir
	// and its RBAC exists.
	CNI string
	// Datapath picks how nodes reach each other's pod CIDRs: "plexus" (the
	// plexus-datapath plugin on each node), "standin" (static routes the lab
	// adds itself), or "auto" as for CNI.
	Datapath string
	// Policy runs network policy: the identity and policy controllers and
	// the plexus-policy-node plugin on every node, with the policy CRDs the
	// chart does not install yet. Off by default: it puts the policy
	// programs on every pod's veth.
	Policy bool
	// Gateway runs the Gateway API: the gateway controller, and on every
	// node the plexus-l7proxy-node plugin with the stand-in proxy
	// (test/l7standin: no Envoy can be had here) that takes its xDS, with
	// the Gateway API CRDs and the L7 CRDs the chart does not install yet.
	Gateway bool
	// GatewayHostNetwork runs the gateway controller in host network mode
	// (--host-network), with GatewayHostNodes as its node selector.
	GatewayHostNetwork bool
	GatewayHostNodes   string
	// Segment is the third octet of the lab's underlay 198.18.<Segment>.0/24;
	// two labs on one machine need different segments.
	Segment int

	StateRoot       string // state dirs are <StateRoot>/<Name>
	Repo            string // repository root: charts/, config/
	BinDir          string // lab, lab-image, and the Plexus binaries that exist
	ControlPlaneBin string // etcd, kube-apiserver, kubectl, kube-controller-manager, kube-scheduler, kube-proxy
	CNIBin          string // reference CNI plugins (loopback, ptp, host-local, bridge)
	Helm            string // helm binary, for rendering the chart's RBAC

	Out io.Writer // progress messages
}

// Defaults for Options fields left empty.
const (
	DefaultName      = "plxlab"
	DefaultStateRoot = "/run/plexus-lab"
	// PodCIDR is the pod range: the IPAM pool and kube-proxy's cluster CIDR.
	PodCIDR = "10.0.0.0/8"
	// ServiceCIDR is the Service range; its first address is the API server's.
	ServiceCIDR = "10.96.0.0/16"
	// PodCIDRMaskSize is the size of each node's pod CIDR.
	PodCIDRMaskSize = 24
	// In multi-pool mode the IPAM controller creates the pool "default"
	// from MultiPoolDefaultCIDR, handing nodes CIDRs of MultiPoolMaskSize;
	// further pools belong inside PodCIDR too, so kube-proxy sees them as
	// cluster traffic.
	MultiPoolDefaultCIDR = "10.0.0.0/16"
	MultiPoolMaskSize    = 26
	// The IPv6 counterparts, with --ip-family dual.
	PodCIDRv6              = "fd00::/104"
	ServiceCIDRv6          = "fd00:96::/112"
	PodCIDRv6MaskSize      = 120
	MultiPoolDefaultCIDRv6 = "fd00::/112"
	MultiPoolMaskSizeV6    = 122
	// firstServiceIPv6 is the API server's ClusterIP on an IPv6-only lab.
	firstServiceIPv6 = "fd00:96::1"
	apiServerPort    = 6443
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.RoutingMode == "" {
		o.RoutingMode = "native"
	}
	if o.IPAMMode == "" {
		o.IPAMMode = "cluster-pool"
	}
	if o.IPFamily == "" {
		o.IPFamily = "ipv4"
	}
	if o.CNI == "" {
		o.CNI = "auto"
	}
	if o.Datapath == "" {
		o.Datapath = "auto"
	}
	if o.StateRoot == "" {
		o.StateRoot = DefaultStateRoot
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// Validate reports the first bad option, naming the flag.
func (o *Options) Validate() error {
	o.setDefaults()
	switch {
	case !nameRE.MatchString(o.Name):
		return fmt.Errorf("--name %q: use 1 to 10 lower-case letters and digits, starting with a letter (it prefixes link names, which have 15 bytes)", o.Name)
	case o.Nodes < 1 || o.Nodes > 50:
		return fmt.Errorf("--nodes %d: between 1 and 50", o.Nodes)
	case o.RoutingMode != "native" && o.RoutingMode != "vxlan":
		return fmt.Errorf("--routing-mode %q: native or vxlan", o.RoutingMode)
	case o.IPAMMode != "cluster-pool" && o.IPAMMode != "multi-pool" && o.IPAMMode != "kubernetes":
		return fmt.Errorf("--ipam-mode %q: cluster-pool, multi-pool or kubernetes", o.IPAMMode)
	case o.IPFamily != "ipv4" && o.IPFamily != "dual" && o.IPFamily != "ipv6":
		return fmt.Errorf("--ip-family %q: ipv4, dual or ipv6", o.IPFamily)
	case o.IPFamily != "ipv4" && o.IPAMMode == "kubernetes":
		return fmt.Errorf("--ip-family %s: use --ipam-mode cluster-pool or multi-pool", o.IPFamily)
	case o.IPFamily == "ipv6" && o.RoutingMode == "vxlan":
		return fmt.Errorf("--ip-family ipv6: use --routing-mode native (the datapath's VXLAN runs between the nodes' IPv4 addresses)")
	case o.CNI != "auto" && o.CNI != "plexus" && o.CNI != "standin":
		return fmt.Errorf("--cni %q: auto, plexus or standin", o.CNI)
	case o.Datapath != "auto" && o.Datapath != "plexus" && o.Datapath != "standin":
		return fmt.Errorf("--datapath %q: auto, plexus or standin", o.Datapath)
	case o.Segment < 0 || o.Segment > 199:
		return fmt.Errorf("--segment %d: between 0 and 199", o.Segment)
	}
	for flag, dir := range map[string]string{"--bin-dir": o.BinDir, "--controlplane-bin": o.ControlPlaneBin, "--cni-bin": o.CNIBin, "--repo": o.Repo} {
		if dir == "" {
			return fmt.Errorf("%s is required", flag)
		}
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return nil
}

// Layout is where one lab keeps its files and which names and addresses it
// uses; all of it follows from the name and the segment.
type Layout struct {
	Name    string
	Dir     string
	Segment int
}

// LayoutFor returns the layout of lab name under stateRoot.
func LayoutFor(stateRoot, name string, segment int) Layout {
	return Layout{Name: name, Dir: filepath.Join(stateRoot, name), Segment: segment}
}

// StateFile is where the lab records what it runs.
func (l Layout) StateFile() string { return filepath.Join(l.Dir, "state.json") }

// PKIDir holds the lab's CA and certificates.
func (l Layout) PKIDir() string { return filepath.Join(l.Dir, "pki") }

// LogDir holds every process's log.
func (l Layout) LogDir() string { return filepath.Join(l.Dir, "logs") }

// Kubeconfig is the administrator's kubeconfig.
func (l Layout) Kubeconfig() string { return filepath.Join(l.Dir, "kubeconfig") }

// NodeDir holds node n's files (CNI configuration, plugin state).
func (l Layout) NodeDir(n string) string { return filepath.Join(l.Dir, "nodes", n) }

// Bridge is the name of the segment's bridge.
func (l Layout) Bridge() string { return l.Name + "br0" }

// NodeName is the Node object and the network namespace of node i (1-based).
func (l Layout) NodeName(i int) string { return fmt.Sprintf("%s-n%d", l.Name, i) }

// HostVeth is the host-side (bridge port) end of node i's eth0.
func (l Layout) HostVeth(i int) string { return fmt.Sprintf("%sn%d", l.Name, i) }

// GatewayIP is the bridge's address, where the API server listens.
func (l Layout) GatewayIP() netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 1}) }

// NodeIP is node i's eth0 address.
func (l Layout) NodeIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), byte(10 + i)})
}

// GatewayIPv6 is the host's IPv6 address on the lab bridge (--ip-family
// dual).
func (l Layout) GatewayIPv6() netip.Addr { return l.underlayV6(1) }

// NodeIPv6 is node i's IPv6 eth0 address (--ip-family dual).
func (l Layout) NodeIPv6(i int) netip.Addr { return l.underlayV6(0x10 + i) }

// ClientIPv6 is the external client's IPv6 address (--ip-family dual).
func (l Layout) ClientIPv6() netip.Addr { return l.underlayV6(0x250) }

// underlayV6 is host of the IPv6 underlay 2001:2:0:<segment>::/64.
func (l Layout) underlayV6(host int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0x02, 0, 0, 0, byte(l.Segment), 14: byte(host >> 8), 15: byte(host)})
}

// UnderlayPrefix is the lab segment.
func (l Layout) UnderlayPrefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 0}), 24)
}

// ClientNetns is the lab's external client: a host on the segment, as a
// router or a laptop would be, outside the cluster (no node, no pods).
func (l Layout) ClientNetns() string { return l.Name + "-client" }

// ClientVeth is the host-side (bridge port) end of the client's eth0.
func (l Layout) ClientVeth() string { return l.Name + "cl" }

// ClientIP is the client's eth0 address; it has no default route.
func (l Layout) ClientIP() netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 250})
}

// LBPoolName is the CiliumLoadBalancerIPPool `lab up` creates on the
// segment, so that LoadBalancer Services get addresses the client can
// reach once a node announces them (L2 announcements).
const LBPoolName = "lab-l2"

// LBPoolRangeV6 is the IPv6 range of pool LBPoolName in a dual-stack lab:
// ::200 to ::239 of the segment.
func (l Layout) LBPoolRangeV6() (first, last netip.Addr) {
	return l.underlayV6(0x200), l.underlayV6(0x239)
}

// LBPoolRange is the first and last address of pool LBPoolName.
func (l Layout) LBPoolRange() (first, last netip.Addr) {
	return netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 200}), netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 239})
}

// APIServerAddr is the address the API server listens on: the bridge's
// IPv4 address, or its IPv6 one on an IPv6-only lab.
func (l Layout) APIServerAddr(s *State) netip.Addr {
	if s.IPv4() {
		return l.GatewayIP()
	}
	return l.GatewayIPv6()
}

// APIServerURL is the API server's URL for lab s.
func (l Layout) APIServerURL(s *State) string {
	return "https://" + net.JoinHostPort(l.APIServerAddr(s).String(), strconv.Itoa(apiServerPort))
}

// EtcdPorts are etcd's client and peer ports on 127.0.0.1: below the
// ephemeral range, so envtest's random ports never take them.
func (l Layout) EtcdPorts() (client, peer int) { return 22379 + 10*l.Segment, 22380 + 10*l.Segment }

// StandinPodCIDR is node i's static pod CIDR, used when no IPAM controller
// hands out CIDRs.
func (l Layout) StandinPodCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), PodCIDRMaskSize)
}

// VXLANIP is node i's address on the stand-in VXLAN device (198.19/16, the
// second half of the benchmarking range).
func (l Layout) VXLANIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(l.Segment), byte(10 + i)})
}
