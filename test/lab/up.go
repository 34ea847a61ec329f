package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Up brings a lab up and returns once every Node is Ready and the default
// ServiceAccounts exist; its processes keep running after the caller exits.
// On failure it leaves what it made for `lab down` (and says so).
func Up(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	l := LayoutFor(o.StateRoot, o.Name, o.Segment)
	if old, err := loadState(l.StateFile()); err == nil {
		if i := old.findProcess("", "kube-apiserver"); i >= 0 && old.Processes[i].Handle.Alive() {
			return fmt.Errorf("lab %s is already up (state in %s): `lab down --name %s` first", o.Name, l.Dir, o.Name)
		}
	}
	// Whatever a crashed run of this name left goes first.
	if err := Down(ctx, o.StateRoot, o.Name, o.Out); err != nil {
		return fmt.Errorf("cleaning up an earlier run: %w", err)
	}
	if err := checkSegmentFree(l); err != nil {
		return err
	}
	if err := ensureHostTools(o.Out); err != nil {
		return err
	}
	cni, why, err := pickPlugin(o, "cni", o.CNI)
	if err != nil {
		return err
	}
	if why != "" {
		fmt.Fprintf(o.Out, "== CNI: STAND-IN (reference ptp + host-local) because %s\n", why)
	}
	datapath, why, err := pickPlugin(o, "datapath", o.Datapath)
	if err != nil {
		return err
	}
	if why != "" {
		fmt.Fprintf(o.Out, "== datapath: STAND-IN (static routes by the lab) because %s\n", why)
	}
	if o.IPFamily != "ipv4" && (cni != "plexus" || datapath != "plexus") {
		return fmt.Errorf("--ip-family %s needs the Plexus CNI and datapath (the stand-ins are IPv4 only): build them (make build) or pass --cni plexus --datapath plexus", o.IPFamily)
	}
	l2, why := pickNodePlugin(o, L2AnnouncerNode)
	if o.IPFamily == "ipv6" {
		l2, why = false, "L2 announcements are IPv4 (ARP) only and the lab is IPv6 only"
	}
	if why != "" {
		fmt.Fprintf(o.Out, "== L2 announcements: no %s on the nodes because %s\n", L2AnnouncerNode, why)
	}
	egress, why := pickNodePlugin(o, EgressGatewayNode)
	if o.IPFamily == "ipv6" {
		egress, why = false, "the egress gateway is IPv4 only and the lab is IPv6 only"
	}
	if why != "" {
		fmt.Fprintf(o.Out, "== egress gateway: no %s on the nodes because %s\n", EgressGatewayNode, why)
	}
	bgpNode, why := pickNodePlugin(o, BGPNode)
	if why != "" {
		fmt.Fprintf(o.Out, "== BGP: no %s on the nodes because %s\n", BGPNode, why)
	}
	if o.Policy {
		if ok, why := pickNodePlugin(o, PolicyNode); !ok {
			return fmt.Errorf("policy asked for, but %s", why)
		}
	}
	if o.Gateway {
		if ok, why := pickNodePlugin(o, L7ProxyNode); !ok {
			return fmt.Errorf("the Gateway API asked for, but %s", why)
		}
	}
	s := &State{Name: o.Name, Segment: o.Segment, RoutingMode: o.RoutingMode, IPAMMode: o.IPAMMode, IPFamily: o.IPFamily, CNI: cni, Datapath: datapath,
		L2Announcer: l2, EgressGateway: egress, BGP: bgpNode, Policy: o.Policy, Gateway: o.Gateway, GatewayHostNetwork: o.GatewayHostNetwork, GatewayHostNodes: o.GatewayHostNodes, BinDir: abs(o.BinDir), ControlPlaneBin: abs(o.ControlPlaneBin), CNIBin: abs(o.CNIBin), path: l.StateFile()}
	for i := 1; i <= o.Nodes; i++ {
		n := Node{Index: i, Name: l.NodeName(i)}
		if s.IPv4() {
			n.IP = l.NodeIP(i).String()
		}
		if s.IPv6() {
			n.IPv6 = l.NodeIPv6(i).String()
		}
		s.Nodes = append(s.Nodes, n)
	}
	for _, d := range []string{l.Dir, l.LogDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := s.save(); err != nil {
		return err
	}
	err = up(ctx, &o, l, s)
	if err != nil {
		return fmt.Errorf("%w\nlogs are in %s; `lab down --name %s` removes what was made", err, l.LogDir(), o.Name)
	}
	return nil
}

func up(ctx context.Context, o *Options, l Layout, s *State) error {
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, "== "+format+"\n", a...) }
	say("lab %s: %d nodes, CNI %s, datapath %s, routing %s, IPAM mode %s, IP family %s, state in %s", s.Name, len(s.Nodes), s.CNI, s.Datapath, s.RoutingMode, s.IPAMMode, s.IPFamily, l.Dir)
	if err := writePKI(l, s); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	if err := setupBridge(l, s); err != nil {
		return err
	}
	for _, n := range s.Nodes {
		if err := setupNode(l, s, n); err != nil {
			return err
		}
	}
	if err := setupClient(l, s); err != nil {
		return err
	}
	say("network: bridge %s %s, nodes %s, client %s=%s", l.Bridge(), l.GatewayIP(), nodeList(s), l.ClientNetns(), l.ClientIP())
	if err := EnsureRouterTools(o.Out); err != nil {
		say("BGP router: none, because %v", err)
	} else {
		if err := setupRouter(ctx, l, s); err != nil {
			return fmt.Errorf("BGP router: %w", err)
		}
		say("BGP router: FRR AS %d in %s at %s (vtysh --vty_socket %s), external client %s=%s behind it", RouterASN, l.RouterNetns(), l.RouterIP(), l.RouterDir(), l.ExtNetns(), l.ExtClientIP())
		if err := BirdAvailable(); err != nil || !s.IPv4() {
			if err == nil {
				err = errors.New("the lab is IPv6 only and the BIRD router peers over IPv4")
			}
			say("second BGP router: none, because %v", err)
		} else {
			if err := setupBird(ctx, l, s); err != nil {
				return fmt.Errorf("second BGP router: %w", err)
			}
			say("second BGP router: BIRD AS %d in %s at %s (birdc -s %s)", BirdASN, l.BirdNetns(), l.BirdIP(), l.BirdSocket())
		}
	}

	cp := controlPlaneComponents()
	if err := startComponent(l, s, cp[0], nil, 0); err != nil { // etcd
		return err
	}
	client, _ := l.EtcdPorts()
	if err := waitFor(ctx, 60*time.Second, "etcd", func() error { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", client)) }); err != nil {
		return err
	}
	if err := startComponent(l, s, cp[1], nil, 0); err != nil { // kube-apiserver
		return err
	}
	cs, err := adminClient(l)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 120*time.Second, "kube-apiserver /readyz", func() error {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return err
	}
	say("control plane: etcd, kube-apiserver on %s", l.APIServerURL(s))

	identities := plexusIdentities(s)
	warnings, err := installPlexusAPI(o, l, s, identities)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		say("RBAC: %s", w)
	}
	for _, c := range cp[2:] {
		if err := startComponent(l, s, c, nil, 0); err != nil {
			return err
		}
	}
	var controllers []string
	for i, c := range plexusControllers() {
		if c.Enabled != nil && !c.Enabled(s) {
			continue
		}
		if err := startComponent(l, s, c, nil, 18080+100*s.Segment+10*i); err != nil {
			return err
		}
		if s.findProcess("", c.Name) >= 0 {
			controllers = append(controllers, c.Name)
		}
	}
	say("controllers: kube-controller-manager, kube-scheduler, Plexus %v", controllers)
	if err := kubectlApply(s, l, lbPool(l, s)); err != nil {
		return fmt.Errorf("LB-IPAM pool %s: %w", LBPoolName, err)
	}
	first, last := l.LBPoolRange()
	say("LB-IPAM pool %s: %s-%s on the segment (no L2 announcement policy: create one to announce)", LBPoolName, first, last)

	// Node processes first: the pod runner registers the Node, which the
	// IPAM controller answers with the node's CIDRs; the node turns Ready
	// once its CNI config is written below.
	for i := range s.Nodes {
		if err := startNode(l, s, &s.Nodes[i]); err != nil {
			return err
		}
	}
	if err := discoverPodCIDRs(ctx, l, s); err != nil {
		return err
	}
	for _, n := range s.Nodes {
		if err := writeCNIConfig(l, s, n, filepath.Join(l.NodeDir(n.Name), "cni", "net.d")); err != nil {
			return err
		}
	}
	if s.Datapath == "standin" {
		if err := setupStandinRoutes(l, s); err != nil {
			return err
		}
	}
	var names []string
	for _, c := range nodeComponents(s) {
		names = append(names, c.Name)
	}
	if s.CNI == "standin" || s.Datapath == "standin" {
		say("nodes: %s in each node namespace; stand-in pod CIDRs %v", strings.Join(names, ", "), s.PodCIDRs)
	} else {
		say("nodes: %s in each node namespace; pod CIDRs from the IPAM controller (kubectl get ciliumnodes)", strings.Join(names, ", "))
	}

	if err := waitFor(ctx, 180*time.Second, "every Node Ready", func() error { return nodesReady(ctx, cs, s) }); err != nil {
		return err
	}
	if err := waitFor(ctx, 60*time.Second, "default ServiceAccounts", func() error {
		for _, ns := range []string{"default", "kube-system"} {
			if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	say("lab %s is up", s.Name)
	return nil
}

// startNode starts node n's components in its namespace.
func startNode(l Layout, s *State, n *Node) error {
	dir := l.NodeDir(n.Name)
	for _, sub := range []string{"podrunner", "cni-agent", "cni/net.d"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	for _, c := range nodeComponents(s) {
		if err := startComponent(l, s, c, n, 0); err != nil {
			return err
		}
	}
	return nil
}

// plexusIdentities are the ServiceAccounts of the Plexus binaries this lab runs.
func plexusIdentities(s *State) []string {
	var ids []string
	for _, c := range plexusControllers() {
		if _, ok := binaryPath(s, c); ok && (c.Enabled == nil || c.Enabled(s)) {
			ids = append(ids, c.Identity.ServiceAccount())
		}
	}
	for _, c := range nodeComponents(s) {
		if sa := c.Identity.ServiceAccount(); sa != "" {
			ids = append(ids, sa)
		}
	}
	return ids
}

// pickNodePlugin decides whether the nodes run an optional node plugin
// (name is its binary and its ServiceAccount): it needs its binary and its
// ClusterRole; otherwise it returns why not (the lab works without it).
func pickNodePlugin(o Options, name string) (bool, string) {
	var missing []string
	if _, err := os.Stat(filepath.Join(o.BinDir, name)); err != nil {
		missing = append(missing, filepath.Join(o.BinDir, name))
	}
	if _, _, err := findClusterRole(o.Repo, name); err != nil {
		missing = append(missing, "RBAC for "+name+" ("+err.Error()+")")
	}
	if len(missing) > 0 {
		return false, "missing " + strings.Join(missing, ", ")
	}
	return true, ""
}

// lbPool is the CiliumLoadBalancerIPPool on the lab segment: a range of
// each family the lab runs.
func lbPool(l Layout, s *State) string {
	out := fmt.Sprintf(`apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata:
  name: %s
spec:
  blocks:
`, LBPoolName)
	var ranges [][2]netip.Addr
	if s.IPv4() {
		first, last := l.LBPoolRange()
		ranges = append(ranges, [2]netip.Addr{first, last})
	}
	if s.IPv6() {
		first, last := l.LBPoolRangeV6()
		ranges = append(ranges, [2]netip.Addr{first, last})
	}
	for _, r := range ranges {
		out += fmt.Sprintf("    - start: %s\n      stop: %s\n", r[0], r[1])
	}
	return out
}

// pickPlugin resolves --cni or --datapath: "plexus" needs the binaries and
// an RBAC source for the plugin; "auto" falls back to the stand-in and
// returns why.
func pickPlugin(o Options, kind, choice string) (string, string, error) {
	if choice == "standin" {
		return "standin", "--" + kind + " standin", nil
	}
	var missing []string
	for _, b := range plexusBinaries[kind] {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			missing = append(missing, filepath.Join(o.BinDir, b))
		}
	}
	sa := map[string]string{"cni": CNINode, "datapath": DatapathNode}[kind]
	if _, _, err := findClusterRole(o.Repo, sa); err != nil {
		missing = append(missing, "RBAC for "+sa+" ("+err.Error()+")")
	}
	switch {
	case len(missing) == 0:
		return "plexus", "", nil
	case choice == "plexus":
		return "", "", fmt.Errorf("--%s plexus needs %s", kind, strings.Join(missing, ", "))
	}
	return "standin", "missing " + strings.Join(missing, ", "), nil
}

// discoverPodCIDRs fills s.PodCIDRs for the stand-in parts: each node's
// first IPv4 CIDR (IPv6 on an IPv6-only lab) from its CiliumNode when the IPAM controller runs in a
// mode with per-node CIDRs, else the lab's static ones.
func discoverPodCIDRs(ctx context.Context, l Layout, s *State) error {
	s.PodCIDRs = map[string]string{}
	if s.findProcess("", "plexus-ipam-controller") < 0 || s.IPAMMode == "multi-pool" {
		for _, n := range s.Nodes {
			s.PodCIDRs[n.Name] = l.StandinPodCIDR(n.Index).String()
		}
		return s.save()
	}
	rc, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig())
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	gvr := schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnodes"}
	for _, n := range s.Nodes {
		err := waitFor(ctx, 90*time.Second, "CiliumNode "+n.Name+" pod CIDRs from the IPAM controller", func() error {
			cn, err := dc.Resource(gvr).Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cidrs, _, _ := unstructured.NestedStringSlice(cn.Object, "spec", "ipam", "podCIDRs")
			for _, c := range cidrs {
				// The lab's first family: IPv4, unless it is IPv6 only.
				if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() == s.IPv4() {
					s.PodCIDRs[n.Name] = c
					return nil
				}
			}
			return fmt.Errorf("no pod CIDR of the lab's first family yet (%v)", cidrs)
		})
		if err != nil {
			return err
		}
	}
	return s.save()
}

// checkSegmentFree refuses a segment another lab (or anything else) routes.
func checkSegmentFree(l Layout) error {
	out, err := exec.Command("ip", "-4", "route", "show", "root", l.UnderlayPrefix().String()).Output()
	if err != nil {
		return fmt.Errorf("ip route: %w", err)
	}
	if strings.TrimSpace(string(out)) != "" {
		return fmt.Errorf("segment %s is in use on this machine (%s): pick another --segment", l.UnderlayPrefix(), strings.TrimSpace(string(out)))
	}
	return nil
}

// ensureHostTools installs the Debian packages kube-proxy and the lab need
// (nft, conntrack, ip) when they are missing.
func ensureHostTools(out interface{ Write([]byte) (int, error) }) error {
	need := map[string]string{"nft": "nftables", "conntrack": "conntrack", "ip": "iproute2", "nsenter": "util-linux"}
	var pkgs []string
	for bin, pkg := range need {
		if _, err := exec.LookPath(bin); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	slices.Sort(pkgs)
	fmt.Fprintf(out, "== installing %v with apt-get\n", pkgs)
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq"}, pkgs...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, b)
		}
	}
	return nil
}

func adminClient(l Layout) (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig())
	if err != nil {
		return nil, err
	}
	rc.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(rc)
}

func nodesReady(ctx context.Context, cs kubernetes.Interface, s *State) error {
	for _, n := range s.Nodes {
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		}
		if !ready {
			return fmt.Errorf("node %s not Ready", n.Name)
		}
	}
	return nil
}

// waitFor polls check every 500ms until it passes or timeout ends; the
// error names what was awaited and the last failure.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func httpOK(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func nodeList(s *State) string {
	var parts []string
	for _, n := range s.Nodes {
		parts = append(parts, n.Name+"="+strings.Join(n.IPs(), ","))
	}
	return strings.Join(parts, " ")
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
