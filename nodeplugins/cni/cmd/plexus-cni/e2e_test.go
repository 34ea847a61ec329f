package main

// End-to-end tests of the plugin as a container runtime drives it: the real
// plexus-cni and plexus-cni-node binaries, the agent against a real API
// server, and real network namespaces. The runtime is libcni, the library
// containerd and CRI-O run CNI plugins with: it builds each plugin's
// configuration from the list, chains prevResult, caches the ADD result in
// a cache directory for CHECK and DEL, and runs DEL in reverse order.
//
// The plugin must run in the "node" network namespace (where it creates the
// host end of the veth and the host routes). The runtime is called from a
// goroutine locked to an OS thread that was switched into the node
// namespace (netnstest.Do): the plugin process is forked from that thread
// and inherits its namespace. That keeps the test's own mount namespace
// (unlike `ip netns exec`, which remounts /sys), so the agent's socket is
// reachable as it is on a real node.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/cni/client"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/testenv"
)

var (
	env *testenv.Env
	// binDir holds plexus-cni and plexus-cni-node built for this run;
	// refDir the reference plugins (bridge, ptp).
	binDir, refDir string
	kubeconfig     string
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	code := func() int {
		if os.Geteuid() != 0 || os.Getenv("KUBEBUILDER_ASSETS") == "" {
			return m.Run() // every test skips with its reason
		}
		var err error
		if env, err = testenv.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer env.Stop()
		tmp, err := os.MkdirTemp("", "plexus-cni-e2e")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		if err := setup(tmp); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// setup builds the binaries, the reference plugins, and a kubeconfig for
// the agent.
func setup(tmp string) error {
	root, err := filepath.Abs("../../../..")
	if err != nil {
		return err
	}
	binDir = filepath.Join(tmp, "bin")
	for _, pkg := range []string{"plexus-cni", "plexus-cni-node"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, pkg), "./nodeplugins/cni/cmd/"+pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}
	cmd := exec.Command("bash", "hack/build-cniplugins.sh")
	cmd.Dir, cmd.Stderr = root, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("building the reference CNI plugins: %w", err)
	}
	refDir = strings.TrimSpace(string(out))

	c := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	kubeconfig = filepath.Join(tmp, "kubeconfig")
	return clientcmd.WriteToFile(*kc, kubeconfig)
}

var nodeCounter atomic.Int32

// node is one simulated node: a network namespace, its CiliumNode and its
// agent process.
type node struct {
	t      *testing.T
	name   string // CiliumNode
	netns  string
	dir    string
	socket string
	cni    *libcni.CNIConfig
	agent  *exec.Cmd
	log    *bytes.Buffer
}

func newNode(t *testing.T, podCIDRs ...string) *node {
	t.Helper()
	netnstest.RequireRoot(t)
	testenv.Require(t, env)
	dir, err := os.MkdirTemp("", "pcni") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &node{
		t:      t,
		name:   fmt.Sprintf("e2e-node-%d", nodeCounter.Add(1)),
		netns:  netnstest.New(t, "pcnin"),
		dir:    dir,
		socket: filepath.Join(dir, "cni.sock"),
	}
	// As a runtime does: the plugin directories, and a cache directory that
	// keeps each attachment's ADD result for CHECK and DEL.
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir, refDir}, t.TempDir(), nil)
	// The node's own (underlay) address, the source of its traffic to pods.
	netnstest.Run(t, "ip", "-n", n.netns, "addr", "add", "198.18.0.1/32", "dev", "lo")
	netnstest.Run(t, "ip", "-n", n.netns, "addr", "add", "fd00:198::1/128", "dev", "lo")
	cn := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
	cn.Spec.IPAM.PodCIDRs = podCIDRs
	if err := env.Client.Create(t.Context(), cn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cn) })
	n.startAgent()
	t.Cleanup(n.stopAgent)
	t.Cleanup(func() {
		if t.Failed() && n.log != nil {
			t.Logf("agent log:\n%s", n.log)
		}
	})
	return n
}

func (n *node) startAgent() {
	n.t.Helper()
	if n.log == nil {
		n.log = &bytes.Buffer{}
	}
	n.agent = exec.Command(filepath.Join(binDir, "plexus-cni-node"),
		"--kubeconfig", kubeconfig, "--node-name", n.name, "--socket", n.socket,
		"--state-dir", filepath.Join(n.dir, "state"), "--ipam-mode", "cluster-pool", "--zap-encoder", "console")
	n.agent.Stdout, n.agent.Stderr = n.log, n.log
	if err := n.agent.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.eventually("agent ready", func() error {
		st, err := client.New(n.socket, time.Second).Status(n.t.Context())
		if err == nil && !st.Ready {
			err = errors.New(st.Reason)
		}
		return err
	})
}

func (n *node) stopAgent() {
	if n.agent == nil {
		return
	}
	_ = n.agent.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = n.agent.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = n.agent.Process.Kill()
		<-done
	}
	n.agent = nil
}

func (n *node) eventually(what string, f func() error) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inNode runs f in the node's network namespace, as a runtime on the node
// would run the plugin.
func (n *node) inNode(f func() error) error {
	return netnstest.Do(n.netns, f)
}

// pod is one pod sandbox: a network namespace and the CNI arguments.
type pod struct {
	netns string
	rt    *libcni.RuntimeConf
}

func (n *node) newPod(name string) *pod {
	ns := netnstest.New(n.t, "pcnip")
	return &pod{netns: ns, rt: &libcni.RuntimeConf{
		ContainerID: "ctr-" + ns,
		NetNS:       "/run/netns/" + ns,
		IfName:      "eth0",
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", name}, {"K8S_POD_UID", "uid-" + ns}},
	}}
}

func (n *node) confList(plugin string) *libcni.NetworkConfigList {
	n.t.Helper()
	list, err := libcni.NetworkConfFromBytes([]byte(fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "plexus", "plugins": [%s]}`, plugin)))
	if err != nil {
		n.t.Fatal(err)
	}
	return list
}

func (n *node) mainConf() *libcni.NetworkConfigList {
	return n.confList(fmt.Sprintf(`{"type": "plexus-cni", "socket": %q, "mtu": 1400}`, n.socket))
}

func (n *node) add(list *libcni.NetworkConfigList, p *pod) (*current.Result, error) {
	var res types.Result
	if err := n.inNode(func() (err error) {
		res, err = n.cni.AddNetworkList(n.t.Context(), list, p.rt)
		return err
	}); err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

func (n *node) mustAdd(list *libcni.NetworkConfigList, p *pod) *current.Result {
	n.t.Helper()
	r, err := n.add(list, p)
	if err != nil {
		n.t.Fatalf("ADD %s: %v", p.rt.ContainerID, err)
	}
	return r
}

func (n *node) del(list *libcni.NetworkConfigList, p *pod) error {
	return n.inNode(func() error { return n.cni.DelNetworkList(n.t.Context(), list, p.rt) })
}

func (n *node) check(list *libcni.NetworkConfigList, p *pod) error {
	return n.inNode(func() error { return n.cni.CheckNetworkList(n.t.Context(), list, p.rt) })
}

func (n *node) status(list *libcni.NetworkConfigList) error {
	return n.inNode(func() error { return n.cni.GetStatusNetworkList(n.t.Context(), list) })
}

// addrs returns the pod's addresses from a result, without prefix.
func addrs(r *current.Result) []net.IP {
	var out []net.IP
	for _, ip := range r.IPs {
		out = append(out, ip.Address.IP)
	}
	return out
}

// reach proves TCP connectivity: a listener on addr in toNS, a dial from
// fromNS, one echoed line.
func reach(t *testing.T, fromNS, toNS string, addr net.IP) {
	t.Helper()
	var ln net.Listener
	if err := netnstest.Do(toNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr.String(), "7777"))
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, toNS, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(c, io.LimitReader(c, 5))
	}()
	err := netnstest.Do(fromNS, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), "7777"), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "hello" {
			return fmt.Errorf("echo %q", buf)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s cannot reach %s in %s: %v", fromNS, addr, toNS, err)
	}
}

func linkExists(netns, name string) bool {
	_, err := netnstest.Exec(netns, "ip", "link", "show", "dev", name)
	return err == nil
}

func (n *node) allocation(p *pod) (*client.Allocation, error) {
	return client.New(n.socket, 5*time.Second).Check(n.t.Context(), client.Key{ContainerID: p.rt.ContainerID, IfName: p.rt.IfName})
}

func TestI4_MainPluginLifecycle(t *testing.T) {
	n := newNode(t, "10.40.0.0/24", "fd00:40::/120")
	list := n.mainConf()
	a, b := n.newPod("a"), n.newPod("b")
	ra, rb := n.mustAdd(list, a), n.mustAdd(list, b)

	// The result: host and pod interfaces, /32 and /128 addresses.
	if len(ra.Interfaces) != 2 || ra.Interfaces[1].Sandbox != a.rt.NetNS || ra.Interfaces[1].Name != "eth0" ||
		ra.Interfaces[0].Name != hostVethName(a.rt.ContainerID, "eth0") {
		t.Errorf("interfaces %+v", ra.Interfaces)
	}
	if len(ra.IPs) != 2 || ra.IPs[0].Address.String() != "10.40.0.2/32" || ra.IPs[1].Address.String() != "fd00:40::2/128" {
		t.Errorf("addresses of a: %v", ra.IPs)
	}
	if mtu := netnstest.Run(t, "ip", "-n", a.netns, "link", "show", "eth0"); !strings.Contains(mtu, "mtu 1400") {
		t.Errorf("pod interface: %s", mtu)
	}

	// Pod to pod and node to pod, both families.
	for i := range 2 {
		reach(t, a.netns, b.netns, addrs(rb)[i])
		reach(t, b.netns, a.netns, addrs(ra)[i])
		reach(t, n.netns, a.netns, addrs(ra)[i])
	}
	for _, p := range []*pod{a, b} {
		if err := n.check(list, p); err != nil {
			t.Errorf("CHECK %s: %v", p.rt.ContainerID, err)
		}
	}
	if err := n.status(list); err != nil {
		t.Errorf("STATUS with the agent up: %v", err)
	}
	info, err := n.cni.GetVersionInfo(t.Context(), "plexus-cni")
	if err != nil || strings.Join(info.SupportedVersions(), " ") != "0.3.0 0.3.1 0.4.0 1.0.0 1.1.0" {
		t.Errorf("VERSION: %v %v", info, err)
	}

	// CHECK notices a missing host route.
	hostA := hostVethName(a.rt.ContainerID, "eth0")
	netnstest.Run(t, "ip", "-n", n.netns, "route", "del", "10.40.0.2/32", "dev", hostA)
	if err := n.check(list, a); err == nil || !strings.Contains(err.Error(), "no host route") {
		t.Errorf("CHECK without the host route: %v", err)
	}
	netnstest.Run(t, "ip", "-n", n.netns, "route", "add", "10.40.0.2/32", "dev", hostA, "scope", "link")

	// STATUS fails while the agent is down; a restarted agent keeps its state.
	n.stopAgent()
	err = n.status(list)
	var ce *types.Error
	if !errors.As(err, &ce) || ce.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with the agent down: %v, want code 50", err)
	}
	n.startAgent()
	if err := n.check(list, a); err != nil {
		t.Errorf("CHECK after the agent restarted: %v", err)
	}
	c := n.newPod("c")
	if rc := n.mustAdd(list, c); rc.IPs[0].Address.String() != "10.40.0.4/32" {
		t.Errorf("pod c after restart got %v, want the next free address 10.40.0.4", rc.IPs)
	}

	// DEL twice: the veth, the host route and the allocation are gone.
	for i := range 2 {
		if err := n.del(list, a); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if linkExists(n.netns, hostA) || linkExists(a.netns, "eth0") {
		t.Error("veth left after DEL")
	}
	if _, err := n.allocation(a); !client.IsNotFound(err) {
		t.Errorf("allocation left after DEL: %v", err)
	}
	if routes := netnstest.Run(t, "ip", "-n", n.netns, "route", "show", "10.40.0.2/32"); strings.TrimSpace(routes) != "" {
		t.Errorf("host route left: %s", routes)
	}

	// DEL after the pod's namespace is gone still releases.
	netnstest.Run(t, "ip", "netns", "del", b.netns)
	if err := n.del(list, b); err != nil {
		t.Errorf("DEL without netns: %v", err)
	}
	if _, err := n.allocation(b); !client.IsNotFound(err) {
		t.Errorf("allocation of b left: %v", err)
	}
	if linkExists(n.netns, hostVethName(b.rt.ContainerID, "eth0")) {
		t.Error("host veth of b left")
	}
}

func TestExhaustedPoolAndNoLeakOnFailure(t *testing.T) {
	n := newNode(t, "10.41.0.0/30") // one address for pods
	list := n.mainConf()
	n.mustAdd(list, n.newPod("one"))
	two := n.newPod("two")
	_, err := n.add(list, two)
	var ce *types.Error
	if !errors.As(err, &ce) || ce.Code != types.ErrTryAgainLater || !strings.Contains(ce.Msg, `pool "default" has no free IPv4 address`) {
		t.Errorf("ADD on an exhausted pool: %v", err)
	}

	// A failure after the allocation (the pod already has an eth0) leaves
	// neither the address nor a veth behind.
	m := newNode(t, "10.42.0.0/24")
	bad := m.newPod("bad")
	netnstest.Run(t, "ip", "-n", bad.netns, "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	if _, err := m.add(m.mainConf(), bad); err == nil || !strings.Contains(err.Error(), "already has an interface eth0") {
		t.Errorf("ADD into a pod with an eth0: %v", err)
	}
	if _, err := m.allocation(bad); !client.IsNotFound(err) {
		t.Errorf("address kept after a failed ADD: %v", err)
	}
	if linkExists(m.netns, hostVethName(bad.rt.ContainerID, "eth0")) {
		t.Error("host veth kept after a failed ADD")
	}
}

func TestChainedUnderBridgeAndPTP(t *testing.T) {
	for _, tc := range []struct{ name, plugin string }{
		{"bridge", `{"type": "bridge", "bridge": "plxbr0", "isGateway": true, "ipam": {"type": "plexus-cni", "socket": %q}}`},
		{"ptp", `{"type": "ptp", "ipam": {"type": "plexus-cni", "socket": %q}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, "10.43.0.0/24")
			list := n.confList(fmt.Sprintf(tc.plugin, n.socket))
			a, b := n.newPod("a"), n.newPod("b")
			ra, rb := n.mustAdd(list, a), n.mustAdd(list, b)
			if tc.name == "bridge" && (ra.IPs[0].Address.String() != "10.43.0.2/24" || ra.IPs[0].Gateway.String() != "10.43.0.1") {
				t.Errorf("bridge result %v", ra.IPs)
			}
			reach(t, a.netns, b.netns, addrs(rb)[0])
			reach(t, n.netns, a.netns, addrs(ra)[0])
			if err := n.check(list, a); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			for range 2 {
				if err := n.del(list, a); err != nil {
					t.Fatalf("DEL: %v", err)
				}
			}
			if _, err := n.allocation(a); !client.IsNotFound(err) {
				t.Errorf("allocation left after DEL: %v", err)
			}
		})
	}
}
