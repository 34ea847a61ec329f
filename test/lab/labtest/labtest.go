// Package labtest starts labs for tests: it builds the binaries a lab runs,
// brings a lab up under a unique name and underlay segment, hands the test a
// client, ways to reach pods, and removes everything when the test ends,
// failing it if anything of the lab is left. Tests that use it need root and
// the binaries `make test` builds; without them they skip and say why.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/operator"
	cniipam "github.com/plexus-net/plexus/nodeplugins/cni/ipam"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/netnstest"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Lab is a running lab.
type Lab struct {
	t         testing.TB
	Options   lab.Options
	Layout    lab.Layout
	Bin       string               // where the lab's binaries are
	Client    kubernetes.Interface // cluster admin
	Cilium    client.Client        // cluster admin, with the cilium.io and nodes.plexus.dev kinds
	StateRoot string
}

// Root is the repository root.
func Root() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// binaryPackages are the programs the lab runs, by output name: every
// command of this checkout (controllers/*/cmd/*, nodeplugins/*/cmd/*,
// cmd/*, named after its folder), the lab itself and the programs its pods
// run (lab-image, and echo-basic for the Gateway API conformance suite).
func binaryPackages(root string) (map[string]string, error) {
	pkgs := map[string]string{"lab": "./hack/lab", "lab-image": "./test/lab/images", "echo-basic": "sigs.k8s.io/gateway-api/conformance/echo-basic"}
	for _, glob := range []string{"controllers/*/cmd/*", "nodeplugins/*/cmd/*", "cmd/*"} {
		dirs, err := filepath.Glob(filepath.Join(root, glob))
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			rel, err := filepath.Rel(root, d)
			if err != nil {
				return nil, err
			}
			pkgs[filepath.Base(d)] = "./" + rel
		}
	}
	return pkgs, nil
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// build builds binaryPackages once per test process into bin/labtest/
// (ignored by git, replaced on every run).
func build() (string, error) {
	buildOnce.Do(func() {
		root := Root()
		buildDir = filepath.Join(root, "bin", "labtest")
		if buildErr = os.MkdirAll(buildDir, 0o755); buildErr != nil {
			return
		}
		pkgs, err := binaryPackages(root)
		if err != nil {
			buildErr = err
			return
		}
		for out, pkg := range pkgs {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, out), pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
				return
			}
		}
	})
	return buildDir, buildErr
}

// findBinDir returns the first folder matching glob that holds every name.
func findBinDir(glob string, names ...string) string {
	dirs, _ := filepath.Glob(glob)
	for _, d := range dirs {
		ok := true
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(d, n)); err != nil {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	return ""
}

// Start brings a lab up with the given options (Name, Segment, paths and
// output are filled in) and tears it down when the test ends.
func Start(t testing.TB, o lab.Options) *Lab {
	t.Helper()
	netnstest.RequireRoot(t)
	root := Root()
	o.ControlPlaneBin = findBinDir(filepath.Join(root, "bin", "k8s-v*-etcd-v*"), "etcd", "kube-apiserver", "kubectl", "kube-controller-manager", "kube-scheduler", "kube-proxy")
	if o.ControlPlaneBin == "" {
		t.Skip("control-plane binaries missing: `make test` builds them (hack/build-controlplane.sh with all six components)")
	}
	o.CNIBin = findBinDir(filepath.Join(root, "bin", "cni-plugins-*"), "loopback", "ptp", "host-local")
	if o.CNIBin == "" {
		t.Skip("reference CNI plugins missing: `make test` builds them (hack/build-cniplugins.sh)")
	}
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 2)
	_, _ = rand.Read(suffix)
	o.Name = "plxt" + hex.EncodeToString(suffix)
	o.Segment = freeSegment(t)
	o.StateRoot = t.TempDir()
	o.Repo, o.BinDir, o.Out = root, bin, testWriter{t}
	if m, _ := filepath.Glob(filepath.Join(root, "bin", "tools", "helm-*")); len(m) > 0 {
		o.Helm = m[0]
	}
	l := &Lab{t: t, Options: o, Layout: lab.LayoutFor(o.StateRoot, o.Name, o.Segment), Bin: bin, StateRoot: o.StateRoot}
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), o.StateRoot, o.Name, testWriter{t}); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := lab.Leftovers(o.StateRoot, o.Name); len(left) > 0 {
			t.Errorf("left after lab down: %v", left)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := lab.Up(ctx, o); err != nil {
		l.DumpLogs()
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", l.Layout.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	rc.Timeout = 10 * time.Second
	if l.Client, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	scheme, err := operator.NewScheme(ciliumv2.AddToScheme, ciliumv2alpha1.AddToScheme, nodesv1alpha1.AddToScheme, gwv1.Install)
	if err != nil {
		t.Fatal(err)
	}
	if l.Cilium, err = client.New(rc, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	return l
}

// DumpLogs logs the tail of every log file of the lab (for failures).
func (l *Lab) DumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(l.Layout.LogDir(), "*"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		s := string(b)
		if len(s) > 2000 {
			s = s[len(s)-2000:]
		}
		l.t.Logf("--- %s (tail)\n%s", f, s)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// freeSegment picks a lab segment that no route on this machine uses.
func freeSegment(t testing.TB) int {
	b := make([]byte, 1)
	for range 50 {
		_, _ = rand.Read(b)
		seg := 100 + int(b[0])%100
		out, err := exec.Command("ip", "-4", "route", "show", "root", fmt.Sprintf("198.18.%d.0/24", seg)).Output()
		if err == nil && strings.TrimSpace(string(out)) == "" {
			return seg
		}
	}
	t.Fatal("no free 198.18.x.0/24 segment")
	return 0
}

// Eventually polls f every 200 ms until it returns nil or timeout passes,
// then fails the test with f's last error. From a subtest, use EventuallyIn
// with the subtest's t: failing the parent from a subtest is not allowed.
func (l *Lab) Eventually(timeout time.Duration, what string, f func() error) {
	l.t.Helper()
	l.EventuallyIn(l.t, timeout, what, f)
}

// EventuallyIn is Eventually failing t.
func (l *Lab) EventuallyIn(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	if err := Poll(timeout, f); err != nil {
		l.DumpLogs()
		t.Fatalf("%s: %v", what, err)
	}
}

// Poll calls f every 200 ms until it returns nil or timeout passes, and
// returns f's last error then.
func Poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// PodNetns is the network namespace the pod runner made for pod.
func (l *Lab) PodNetns(p *corev1.Pod) string {
	return l.Options.Name + "-p-" + strings.ReplaceAll(string(p.UID), "-", "")[:8]
}

// NodeNetns is node's network namespace.
func (l *Lab) NodeNetns(node string) string { return node }

// Answer is what the lab's echo server says about a request.
type Answer struct {
	Pod, Namespace, Node, PodIP, ClientAddr string
	ForwardedFor                            string // X-Forwarded-For, when a proxy set it
}

// HTTPClient returns a client whose connections start in the network
// namespace ns (a socket stays in the namespace it was made in). Each client
// keeps its connections alive, so a test can hold one TCP connection open
// across events.
func (l *Lab) HTTPClient(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netnstest.Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Hour}}
}

// Fetch sends GET url from inside pod's network namespace and decodes the
// echo server's answer.
func (l *Lab) Fetch(from *corev1.Pod, url string) (Answer, error) {
	return FetchWith(l.HTTPClient(l.PodNetns(from)), url)
}

// FetchWith sends GET url with c and decodes the echo server's answer.
func FetchWith(c *http.Client, url string) (Answer, error) {
	var a Answer
	resp, err := c.Get(url)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}

// ReadyPods lists the Ready pods in namespace matching selector.
func (l *Lab) ReadyPods(namespace, selector string) ([]corev1.Pod, error) {
	pods, err := l.Client.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// Allocations reads the addresses node's CNI agent holds, from its state
// file, by address.
func (l *Lab) Allocations(node string) (map[string]string, error) {
	st, err := cniipam.FileStore{Path: filepath.Join(l.Layout.NodeDir(node), "cni-agent", "allocations.json")}.Load()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range st.Allocations {
		for _, ip := range a.IPs {
			out[ip.Address.String()] = a.Namespace + "/" + a.Name
		}
	}
	return out, nil
}
