package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// The lab's processes are declared here, as data: what runs, where, and with
// which flags. Up starts them in this order and Down stops them in reverse.
// Switching the nodes from the stand-in network to Plexus's own plugins is
// the choice between standinNodeComponents and plexusNodeComponents (made by
// --network, "auto" picks plexus once its binaries exist in bin/).

// PlexusNamespace is where the Plexus ServiceAccounts live (the chart's
// release namespace); binaries authenticate as those ServiceAccounts.
const PlexusNamespace = "plexus-system"

// Component is one process per control plane or per node.
type Component struct {
	Name string
	// Binary is the executable; found in ControlPlaneBin, BinDir or CNIBin.
	Binary string
	// Identity is the certificate's subject the process authenticates as.
	Identity Identity
	// Args builds the flags; env gives paths and addresses.
	Args func(env ComponentEnv) []string
	// Optional components are skipped when their binary is missing.
	Optional bool
	// Enabled, when set, says whether the lab runs the component.
	Enabled func(*State) bool
}

// Identity is a certificate's common name and organizations.
type Identity struct {
	User   string
	Groups []string
}

// ServiceAccountIdentity is the user a ServiceAccount's token stands for;
// a client certificate with it gets that ServiceAccount's RBAC unchanged.
func ServiceAccountIdentity(namespace, name string) Identity {
	return Identity{
		User:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace},
	}
}

// ComponentEnv is what a component's flags are built from.
type ComponentEnv struct {
	Layout     Layout
	State      *State
	Kubeconfig string // this component's own
	LogDir     string
	Node       *Node  // nil for control-plane components
	NodeDir    string // the node's state dir
	Port       int    // a port of the lab's own for this component (metrics)
}

// controlPlaneComponents run in the host namespace.
func controlPlaneComponents() []Component {
	pki := func(e ComponentEnv, f string) string { return filepath.Join(e.Layout.PKIDir(), f) }
	return []Component{
		{
			Name: "etcd", Binary: "etcd",
			Args: func(e ComponentEnv) []string {
				client, peer := e.Layout.EtcdPorts()
				c, p := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
				return []string{"--name=lab", "--data-dir=" + filepath.Join(e.Layout.Dir, "etcd"),
					"--listen-client-urls=" + c, "--advertise-client-urls=" + c,
					"--listen-peer-urls=" + p, "--initial-advertise-peer-urls=" + p, "--initial-cluster=lab=" + p,
					"--unsafe-no-fsync", "--log-level=warn"}
			},
		},
		{
			Name: "kube-apiserver", Binary: "kube-apiserver",
			Args: func(e ComponentEnv) []string {
				client, _ := e.Layout.EtcdPorts()
				gw := e.Layout.APIServerAddr(e.State).String()
				return []string{
					"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(client),
					"--bind-address=" + gw, "--advertise-address=" + gw, "--secure-port=" + strconv.Itoa(apiServerPort),
					"--tls-cert-file=" + pki(e, "apiserver.crt"), "--tls-private-key-file=" + pki(e, "apiserver.key"),
					"--client-ca-file=" + pki(e, "ca.crt"),
					// pods/log reaches the nodes' pod runners, which serve the kubelet's log API.
					"--kubelet-client-certificate=" + pki(e, "apiserver-kubelet-client.crt"),
					"--kubelet-client-key=" + pki(e, "apiserver-kubelet-client.key"),
					"--kubelet-certificate-authority=" + pki(e, "ca.crt"),
					"--kubelet-preferred-address-types=InternalIP",
					"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
					"--service-account-key-file=" + pki(e, "sa.pub"), "--service-account-signing-key-file=" + pki(e, "sa.key"),
					"--service-cluster-ip-range=" + serviceCIDRs(e.State),
					"--allow-privileged=true",
					"--authorization-mode=Node,RBAC",
					"--enable-admission-plugins=NodeRestriction",
					"--profiling=false",
				}
			},
		},
		{
			Name: "kube-controller-manager", Binary: "kube-controller-manager",
			Identity: Identity{User: "system:kube-controller-manager"},
			Args: func(e ComponentEnv) []string {
				a := []string{
					"--kubeconfig=" + e.Kubeconfig, "--authentication-kubeconfig=" + e.Kubeconfig, "--authorization-kubeconfig=" + e.Kubeconfig,
					"--use-service-account-credentials=true",
					"--service-account-private-key-file=" + pki(e, "sa.key"),
					"--root-ca-file=" + pki(e, "ca.crt"),
					"--cluster-signing-cert-file=" + pki(e, "ca.crt"), "--cluster-signing-key-file=" + pki(e, "ca.key"),
					"--service-cluster-ip-range=" + serviceCIDRs(e.State),
					"--leader-elect=false", "--secure-port=0",
					// No cloud: its controllers have nothing to do and only log errors.
					"--controllers=*,-cloud-node-lifecycle-controller,-node-route-controller,-service-lb-controller",
				}
				if e.State.IPAMMode == "kubernetes" {
					// Kubernetes IPAM mode: Node spec.podCIDRs come from here.
					a = append(a, "--allocate-node-cidrs=true", "--cluster-cidr="+PodCIDR, "--node-cidr-mask-size="+strconv.Itoa(PodCIDRMaskSize))
				}
				return a
			},
		},
		{
			Name: "kube-scheduler", Binary: "kube-scheduler",
			Identity: Identity{User: "system:kube-scheduler"},
			Args: func(e ComponentEnv) []string {
				return []string{"--kubeconfig=" + e.Kubeconfig, "--authentication-kubeconfig=" + e.Kubeconfig,
					"--authorization-kubeconfig=" + e.Kubeconfig, "--leader-elect=false", "--secure-port=0"}
			},
		},
	}
}

// plexusControllers are the Plexus controller binaries the lab runs when
// they are built; each authenticates as the chart's ServiceAccount for it.
func plexusControllers() []Component {
	common := func(e ComponentEnv) []string {
		gw := e.Layout.GatewayIP().String()
		return []string{"--kubeconfig=" + e.Kubeconfig, "--leader-election-namespace=" + PlexusNamespace,
			fmt.Sprintf("--metrics-bind-address=%s:%d", gw, e.Port), fmt.Sprintf("--health-probe-bind-address=%s:%d", gw, e.Port+1)}
	}
	return []Component{
		{
			Name: "plexus-ipam-controller", Binary: "plexus-ipam-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-ipam"),
			Args: func(e ComponentEnv) []string {
				args := append(common(e), "--ipam-mode="+e.State.IPAMMode,
					"--cluster-pool-ipv4-cidr="+PodCIDR, "--cluster-pool-ipv4-mask-size="+strconv.Itoa(PodCIDRMaskSize))
				var pool []string
				if e.State.IPv4() {
					pool = append(pool, "ipv4-cidrs:"+MultiPoolDefaultCIDR, "ipv4-mask-size:"+strconv.Itoa(MultiPoolMaskSize))
				} else {
					args = append(args, "--enable-ipv4=false")
				}
				if e.State.IPv6() {
					args = append(args, "--enable-ipv6=true",
						"--cluster-pool-ipv6-cidr="+PodCIDRv6, "--cluster-pool-ipv6-mask-size="+strconv.Itoa(PodCIDRv6MaskSize))
					pool = append(pool, "ipv6-cidrs:"+MultiPoolDefaultCIDRv6, "ipv6-mask-size:"+strconv.Itoa(MultiPoolMaskSizeV6))
				}
				if e.State.IPAMMode == "multi-pool" {
					args = append(args, "--auto-create-pool=default="+strings.Join(pool, ";"))
				}
				return args
			},
		},
		{
			Name: "plexus-lbipam-controller", Binary: "plexus-lbipam-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-lbipam"),
			Args: func(e ComponentEnv) []string {
				return append(common(e), fmt.Sprintf("--enable-ipv4=%t", e.State.IPv4()), fmt.Sprintf("--enable-ipv6=%t", e.State.IPv6()))
			},
		},
		{
			Name: "plexus-nodeipam-controller", Binary: "plexus-nodeipam-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-nodeipam"),
			Args:     common,
		},
		{
			Name: "plexus-l2announcer-controller", Binary: "plexus-l2announcer-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-l2announcer"),
			Args:     common,
		},
		{
			Name: "plexus-egressgateway-controller", Binary: "plexus-egressgateway-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-egressgateway"),
			Args:     common,
		},
		{
			Name: "plexus-identity-controller", Binary: "plexus-identity-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-identity"),
			Enabled:  func(s *State) bool { return s.Policy },
			Args:     common,
		},
		{
			Name: "plexus-policy-controller", Binary: "plexus-policy-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-policy"),
			Enabled:  func(s *State) bool { return s.Policy },
			Args:     common,
		},
		{
			Name: "plexus-gateway-controller", Binary: "plexus-gateway-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-gateway"),
			Enabled:  func(s *State) bool { return s.Gateway },
			Args: func(e ComponentEnv) []string {
				a := append(common(e), "--secrets-namespace="+GatewaySecretsNamespace,
					"--ingress", "--ingress-shared-service="+PlexusNamespace+"/"+SharedIngressService)
				if e.State.GatewayHostNetwork {
					a = append(a, "--host-network", "--host-network-node-labels="+e.State.GatewayHostNodes)
				}
				return a
			},
		},
		{
			Name: "plexus-bgp-controller", Binary: "plexus-bgp-controller", Optional: true,
			Identity: ServiceAccountIdentity(PlexusNamespace, "plexus-bgp"),
			Args: func(e ComponentEnv) []string {
				return append(common(e), "--secret-namespace="+BGPSecretNamespace)
			},
		},
	}
}

// nodeComponents run inside each node's namespace, in this order: the
// Plexus node plugins the lab uses, kube-proxy, and the pod runner.
func nodeComponents(s *State) []Component {
	var cs []Component
	for _, c := range plexusNodeComponents() {
		if c.Name == CNINode && s.CNI == "plexus" || c.Name == DatapathNode && s.Datapath == "plexus" ||
			c.Name == L2AnnouncerNode && s.L2Announcer || c.Name == EgressGatewayNode && s.EgressGateway ||
			c.Name == BGPNode && s.BGP || c.Name == PolicyNode && s.Policy ||
			(c.Name == L7ProxyNode || c.Name == L7StandIn) && s.Gateway {
			cs = append(cs, c)
		}
	}
	return append(cs, baseNodeComponents()...)
}

// plexusNodeComponents are the Plexus node plugins. The CNI plugin itself
// is not a process: the pod runner executes bin/plexus-cni through the
// conflist writeCNIConfig writes.
func plexusNodeComponents() []Component {
	return []Component{
		{
			Name: CNINode, Binary: CNINode,
			Identity: ServiceAccountIdentity(PlexusNamespace, CNINode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig,
					"--socket=" + agentSocket(e.NodeDir), "--state-dir=" + filepath.Join(e.NodeDir, "cni-agent"),
					"--ipam-mode=" + e.State.IPAMMode}
			},
		},
		{
			Name: DatapathNode, Binary: DatapathNode,
			Identity: ServiceAccountIdentity(PlexusNamespace, DatapathNode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig,
					"--routing-mode=" + e.State.RoutingMode, "--device=eth0"}
			},
		},
		{
			// Heartbeats with its peers from the node's address on the
			// segment and answers ARP there; timers stay at their defaults.
			Name: L2AnnouncerNode, Binary: L2AnnouncerNode,
			Identity: ServiceAccountIdentity(PlexusNamespace, L2AnnouncerNode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig, "--address=" + e.Node.IP}
			},
		},
		{
			// Steers pods' traffic to egress gateways; on candidates, holds
			// the floating egress IP (heartbeats on their own port).
			Name: EgressGatewayNode, Binary: EgressGatewayNode,
			Identity: ServiceAccountIdentity(PlexusNamespace, EgressGatewayNode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig, "--address=" + e.Node.IP, "--clear-on-stop",
					"--zap-time-encoding=rfc3339nano"}
			},
		},
		{
			// GoBGP in the node's namespace: peers dial the router on the
			// segment; status is refreshed every second for the tests.
			Name: BGPNode, Binary: BGPNode,
			Identity: ServiceAccountIdentity(PlexusNamespace, BGPNode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig, "--ipam-mode=" + e.State.IPAMMode,
					"--secret-namespace=" + BGPSecretNamespace, "--status-interval=1s", "--zap-time-encoding=rfc3339nano",
					fmt.Sprintf("--enable-ipv4=%t", e.State.IPv4()), fmt.Sprintf("--enable-ipv6=%t", e.State.IPv6())}
			},
		},
		{
			// Policy programs on the pods' veths; maps and links pinned in a
			// bpffs under the node's state dir (mounted by the plugin, and
			// unmounted by lab down), so a restart adopts them.
			Name: PolicyNode, Binary: PolicyNode,
			Identity: ServiceAccountIdentity(PlexusNamespace, PolicyNode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig,
					"--bpf-root=" + filepath.Join(e.NodeDir, "bpf"), "--zap-time-encoding=rfc3339nano",
					// A lab node has no default route: its device is eth0.
					"--host-devices=eth0",
					"--hubble-socket-path=" + HubbleSocket(e.NodeDir)}
			},
		},
		{
			Name: L7ProxyNode, Binary: L7ProxyNode,
			Identity: ServiceAccountIdentity(PlexusNamespace, L7ProxyNode),
			Args: func(e ComponentEnv) []string {
				return []string{"--node-name=" + e.Node.Name, "--kubeconfig=" + e.Kubeconfig,
					"--secrets-namespace=" + GatewaySecretsNamespace, "--xds-address=unix://" + l7Socket(e.NodeDir),
					"--state-file=" + filepath.Join(e.NodeDir, "l7proxy", "accepted.json"), "--zap-time-encoding=rfc3339nano"}
			},
		},
		{
			// Plays the node's Envoy: needs no API access, only the socket.
			Name: L7StandIn, Binary: "lab",
			Args: func(e ComponentEnv) []string {
				return []string{"l7standin", "--node=" + e.Node.Name, "--xds=" + l7Socket(e.NodeDir)}
			},
		},
	}
}

// HubbleSocket is where a lab node's policy plugin serves the Hubble API
// on a Unix socket (as /var/run/cilium/hubble.sock in its pod on a real
// node), below the node's directory.
func HubbleSocket(nodeDir string) string { return filepath.Join(nodeDir, "hubble.sock") }

// The node plugins: each component, its binary and its ServiceAccount (the
// chart's, bound to the ClusterRole in config/rbac/<feature>-node) share
// one name. The controllers' ServiceAccounts are plexus-<feature>.
const (
	CNINode           = "plexus-cni-node"
	DatapathNode      = "plexus-datapath-node"
	L2AnnouncerNode   = "plexus-l2announcer-node"
	EgressGatewayNode = "plexus-egressgateway-node"
	BGPNode           = "plexus-bgp-node"
	PolicyNode        = "plexus-policy-node"
	L7ProxyNode       = "plexus-l7proxy-node"
	// L7StandIn is the stand-in for Envoy (test/l7standin), run by the lab
	// binary; it takes the node's xDS from L7ProxyNode.
	L7StandIn = "l7-standin"
)

// SharedIngressService is the shared Ingress load balancer's Service (in
// PlexusNamespace).
const SharedIngressService = "cilium-ingress"

// GatewaySecretsNamespace is where the gateway controller copies
// certificates and the l7proxy plugins read them (the chart's default).
const GatewaySecretsNamespace = "cilium-secrets"

// l7Socket is where a lab node's l7proxy plugin serves xDS to the node's
// proxy (a Unix socket, as in the chart's pod).
func l7Socket(nodeDir string) string { return filepath.Join(nodeDir, "l7proxy", "xds.sock") }

// BGPSecretNamespace is where the lab's BGP auth Secrets live (the chart's
// default, bgp.secretNamespace).
const BGPSecretNamespace = "kube-system"

// serviceCIDRs is the Service range of each family the lab runs.
func serviceCIDRs(s *State) string { return perFamily(s, ServiceCIDR, ServiceCIDRv6) }

// podCIDRs is the pod range of each family the lab runs.
func podCIDRs(s *State) string { return perFamily(s, PodCIDR, PodCIDRv6) }

// perFamily joins v4 and v6 as the lab's families ask, IPv4 first.
func perFamily(s *State, v4, v6 string) string {
	var out []string
	if s.IPv4() {
		out = append(out, v4)
	}
	if s.IPv6() {
		out = append(out, v6)
	}
	return strings.Join(out, ",")
}

func baseNodeComponents() []Component {
	return []Component{
		{
			Name: "kube-proxy", Binary: "kube-proxy",
			Identity: Identity{User: "system:kube-proxy"},
			Args: func(e ComponentEnv) []string {
				return []string{"--kubeconfig=" + e.Kubeconfig, "--proxy-mode=nftables",
					"--hostname-override=" + e.Node.Name, "--cluster-cidr=" + podCIDRs(e.State),
					"--bind-address=" + e.Node.Addr(), "--nodeport-addresses=primary",
					// The conntrack table size is global (not per namespace): leave it alone.
					"--conntrack-max-per-core=0"}
			},
		},
		{
			Name: "podrunner", Binary: "lab",
			Identity: Identity{User: "system:node:" + "%NODE%", Groups: []string{"system:nodes"}},
			Args: func(e ComponentEnv) []string {
				crt, key := kubeletServingFiles(e.Layout, e.Node.Name)
				return []string{"podrunner", "--node=" + e.Node.Name, "--node-ip=" + strings.Join(e.Node.IPs(), ","),
					"--kubeconfig=" + e.Kubeconfig,
					"--cni-conf-dir=" + filepath.Join(e.NodeDir, "cni", "net.d"),
					"--cni-bin-dir=" + strings.Join(cniBinDirs(e.State), ","),
					"--state-dir=" + filepath.Join(e.NodeDir, "podrunner"),
					"--netns-prefix=" + e.Layout.Name,
					"--image-binary=" + filepath.Join(e.State.BinDir, "lab-image"),
					"--tls-cert-file=" + crt, "--tls-private-key-file=" + key,
					"--client-ca-file=" + filepath.Join(e.Layout.PKIDir(), "ca.crt"), "--log-client=" + kubeletClientName}
			},
		},
	}
}

// ServiceAccount is the name of the Plexus ServiceAccount an identity
// stands for, or "" for other identities.
func (id Identity) ServiceAccount() string {
	name, ok := strings.CutPrefix(id.User, "system:serviceaccount:"+PlexusNamespace+":")
	if !ok {
		return ""
	}
	return name
}

// identityFor fills in per-node parts of an identity.
func identityFor(c Component, node string) Identity {
	id := c.Identity
	id.User = strings.ReplaceAll(id.User, "%NODE%", node)
	return id
}

func agentSocket(nodeDir string) string { return filepath.Join(nodeDir, "cni-agent", "agent.sock") }

// cniBinDirs is where the pod runner looks for CNI plugins: bin/ holds
// plexus-cni, the reference folder loopback, ptp and host-local.
func cniBinDirs(s *State) []string { return []string{s.BinDir, s.CNIBin} }

// binaryPath finds a component's binary.
func binaryPath(s *State, c Component) (string, bool) {
	for _, dir := range []string{s.ControlPlaneBin, s.BinDir} {
		p := filepath.Join(dir, c.Binary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// plexusBinaries are what --cni plexus and --datapath plexus need in bin/
// (the IPAM controller gives nodes the CIDRs both work from).
var plexusBinaries = map[string][]string{
	"cni":      {"plexus-cni", CNINode, "plexus-ipam-controller"},
	"datapath": {DatapathNode, "plexus-ipam-controller"},
}

// writeCNIConfig writes node n's pod network conflist. STAND-IN: ptp with
// host-local on the node's pod CIDR; pods get routes to the pod, Service
// and lab ranges through their node, and no default route.
func writeCNIConfig(l Layout, s *State, n Node, dir string) error {
	var conf string
	switch s.CNI {
	case "plexus":
		conf = fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "plexus",
  "plugins": [
    {"type": "plexus-cni", "socket": %q, "mtu": %d}
  ]
}
`, agentSocket(l.NodeDir(n.Name)), mtu(s))
	default:
		cidr := s.PodCIDRs[n.Name]
		conf = fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "lab-standin",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": %d,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": %q}, {"dst": %q}, {"dst": %q}]
      }
    }
  ]
}
`, mtu(s), filepath.Join(l.NodeDir(n.Name), "cni", "host-local"), cidr, PodCIDR, ServiceCIDR, l.UnderlayPrefix().String())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "10-lab.conflist"), []byte(conf), 0o644)
}

// mtu leaves room for the VXLAN header in vxlan mode.
func mtu(s *State) int {
	if s.RoutingMode == "vxlan" {
		return 1450
	}
	return 1500
}

// startComponent starts c (for node n, or the control plane when n is nil)
// and records it in the state.
func startComponent(l Layout, s *State, c Component, n *Node, port int) error {
	path, ok := binaryPath(s, c)
	if !ok {
		if c.Optional {
			return nil
		}
		return fmt.Errorf("%s: binary %s not found in %s or %s", c.Name, c.Binary, s.ControlPlaneBin, s.BinDir)
	}
	e := ComponentEnv{Layout: l, State: s, LogDir: l.LogDir(), Node: n, Port: port}
	nodeName, netns, logName := "", "", c.Name+".log"
	if n != nil {
		nodeName, netns, logName = n.Name, n.Name, n.Name+"-"+c.Name+".log"
		e.NodeDir = l.NodeDir(n.Name)
	}
	if c.Identity.User != "" {
		e.Kubeconfig = componentKubeconfig(l, c.Name, nodeName)
	}
	spec := proc.Spec{Path: path, Args: c.Args(e), Netns: netns, Log: filepath.Join(l.LogDir(), logName)}
	h, err := proc.Start(spec)
	if err != nil {
		return err
	}
	p := Process{Name: c.Name, Node: nodeName, Spec: spec, Handle: h}
	if i := s.findProcess(nodeName, c.Name); i >= 0 {
		s.Processes[i] = p
	} else {
		s.Processes = append(s.Processes, p)
	}
	return s.save()
}
