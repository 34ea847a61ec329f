package datapath_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/datapath"
	"github.com/plexus-net/plexus/test/netlab"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// TestPluginRestartKeepsConnections runs the real binary in two lab nodes
// against a real API server, kills one and starts it again while a TCP
// connection between their pods exchanges data: the new process must find
// everything in place, write nothing and not disturb the connection.
func TestPluginRestartKeepsConnections(t *testing.T) {
	testenv.Require(t, env)
	netnstest.RequireRoot(t)
	bin := buildPlugin(t)
	l := netlab.New(t, 2)
	n1, n2 := l.Nodes[0], l.Nodes[1]
	ctx := t.Context()
	c := env.Client

	for _, cn := range l.CiliumNodes() {
		cn := cn
		if err := c.Create(ctx, &cn); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(ctx, &cn) })
	}
	// The IPAM controller's own condition, which the plugin's must not replace.
	var cn1 ciliumv2.CiliumNode
	if err := c.Get(ctx, client.ObjectKey{Name: n1.Name}, &cn1); err != nil {
		t.Fatal(err)
	}
	meta.SetStatusCondition(&cn1.Status.Conditions, metav1.Condition{Type: ciliumv2.NodeConditionPodCIDRsAllocated, Status: metav1.ConditionTrue, Reason: "Allocated", Message: "test"})
	if err := c.Status().Update(ctx, &cn1); err != nil {
		t.Fatal(err)
	}

	p1 := startPlugin(t, bin, n1)
	startPlugin(t, bin, n2)
	for _, n := range l.Nodes {
		waitReady(t, n.Name, "vxlan: 1 nodes, 2 routes")
	}
	if err := c.Get(ctx, client.ObjectKey{Name: n1.Name}, &cn1); err != nil {
		t.Fatal(err)
	}
	if meta.FindStatusCondition(cn1.Status.Conditions, ciliumv2.NodeConditionPodCIDRsAllocated) == nil {
		t.Errorf("the IPAM controller's condition was lost: %+v", cn1.Status.Conditions)
	}
	l.RequireAllReach()

	stream := netlab.StartStream(t, n1.Pod, n2.EchoAddr())
	stream.Wait(20)
	before := l.State(n1)
	for round := range 2 {
		p1.kill(t)
		stream.Wait(5) // the kernel forwards with no plugin running
		p1 = startPlugin(t, bin, n1)
		p1.waitLog(t, `"msg":"pass done"`)
		if out := p1.output(); strings.Contains(out, "datapath changed") {
			t.Errorf("restart %d changed the kernel:\n%s", round, out)
		}
		if after := l.State(n1); after != before {
			t.Errorf("restart %d changed the kernel:\n%s\n---\n%s", round, before, after)
		}
		stream.Wait(20)
	}

	// node-2 leaves the cluster: the running plugin on node-1 removes it.
	if err := c.Delete(ctx, &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: n2.Name}}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n1.Name, "vxlan: 0 nodes, 0 routes")
	netlab.MustNotContain(t, "node-1 after node-2 left", l.State(n1), n2.CIDR(), n2.VXLANMAC())
}

func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "plexus-datapath-node")
	out, err := exec.Command("nice", "go", "build", "-o", bin, "./cmd/plexus-datapath-node").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type plugin struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *plugin) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *plugin) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *plugin) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("plugin had already exited:\n%s", p.output())
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *plugin) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin did not log %s:\n%s", s, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startPlugin runs the binary in node's namespace (ip netns exec execs it, so
// the process is the plugin). The API server listens on the host's loopback,
// which the node namespace cannot reach: a forwarder listening inside the
// namespace carries the connections over.
func startPlugin(t *testing.T, bin string, node netlab.Node) *plugin {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeKubeconfig(t, kubeconfig, env.Config, forwardAPIServer(t, node.NS))
	p := &plugin{done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", node.NS, bin,
		"--node-name", node.Name, "--kubeconfig", kubeconfig, "--routing-mode", "vxlan", "--device", "eth0",
		"--vxlan-device", netlab.VXLANDevice, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--debounce", "50ms", "--zap-log-level", "debug")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s plugin output:\n%s", node.Name, p.output())
		}
	})
	return p
}

// forwardAPIServer listens on 127.0.0.1 in ns and forwards each connection to
// the API server; it returns the address to use inside ns.
func forwardAPIServer(t *testing.T, ns string) string {
	t.Helper()
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	var ln net.Listener
	if err := netnstest.Do(ns, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", target) // from the host namespace
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.Close() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return ln.Addr().String()
}

func writeKubeconfig(t *testing.T, path string, cfg *rest.Config, hostPort string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: "https://" + hostPort, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits until node's DatapathReady condition is True with message
// and written by the plugin's field manager.
func waitReady(t *testing.T, node, message string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var cn ciliumv2.CiliumNode
	for {
		err := env.Client.Get(t.Context(), client.ObjectKey{Name: node}, &cn)
		if err == nil {
			c := meta.FindStatusCondition(cn.Status.Conditions, datapath.ConditionDatapathReady)
			if c != nil && c.Status == metav1.ConditionTrue && c.Reason == datapath.ReasonProgrammed && c.Message == message && ownedByPlugin(cn) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: DatapathReady not True with %q: %v %+v", node, message, err, cn.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ownedByPlugin(cn ciliumv2.CiliumNode) bool {
	for _, m := range cn.ManagedFields {
		if m.Manager == datapath.FieldOwner && m.Subresource == "status" && m.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}
