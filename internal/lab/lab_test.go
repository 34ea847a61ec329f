package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/plexus-net/plexus/internal/netnstest"
)

// repoRoot is two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
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

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// freeSegment picks a lab segment no route on this machine uses.
func freeSegment(t *testing.T) int {
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

// TestLabEndToEnd brings up a 2-node lab (stand-in network, so it depends
// only on the reference plugins), runs a Deployment and a Service, checks
// that a pod on one node reaches a pod on the other and the ClusterIP through
// kube-proxy, and that `down` leaves nothing behind.
func TestLabEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	root := repoRoot(t)
	cp := findBinDir(filepath.Join(root, "bin", "k8s-v*-etcd-v*"), "etcd", "kube-apiserver", "kubectl", "kube-controller-manager", "kube-scheduler", "kube-proxy")
	if cp == "" {
		t.Skip("control-plane binaries missing: run `hack/build-controlplane.sh etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kube-proxy` (or `make lab`) first")
	}
	cni := findBinDir(filepath.Join(root, "bin", "cni-plugins-*"), "loopback", "ptp", "host-local")
	if cni == "" {
		t.Skip("reference CNI plugins missing: run hack/build-cniplugins.sh first")
	}
	for _, tool := range []string{"nft", "conntrack", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing: `make lab` installs nftables, conntrack, iproute2", tool)
		}
	}
	bin := t.TempDir()
	for out, pkg := range map[string]string{"lab": "./hack/lab", "lab-image": "./test/lab/images"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, out), pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}

	suffix := make([]byte, 2)
	_, _ = rand.Read(suffix)
	name := "plxt" + hex.EncodeToString(suffix)
	stateRoot := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	o := Options{Name: name, Nodes: 2, Segment: freeSegment(t), StateRoot: stateRoot, Repo: root, BinDir: bin,
		ControlPlaneBin: cp, CNIBin: cni, CNI: "standin", Datapath: "standin", Out: testWriter{t}}
	if m, _ := filepath.Glob(filepath.Join(root, "bin", "tools", "helm-*")); len(m) > 0 {
		o.Helm = m[0]
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			_ = Down(context.Background(), stateRoot, name, testWriter{t})
		}
	})
	if err := Up(ctx, o); err != nil {
		logs, _ := filepath.Glob(filepath.Join(stateRoot, name, "logs", "*"))
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			t.Logf("--- %s (tail)\n%s", f, tail(string(b), 1500))
		}
		t.Fatal(err)
	}
	l := LayoutFor(stateRoot, name, o.Segment)
	cs, err := adminClient(l)
	if err != nil {
		t.Fatal(err)
	}

	labels := map[string]string{"app": "echo"}
	field := func(n, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// One per node.
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
							LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: "kubernetes.io/hostname"}},
					}},
					Containers: []corev1.Container{{
						Name: "echo", Image: "plexus.dev/lab/echo:test",
						Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
						Env:            []corev1.EnvVar{field("POD_NAME", "metadata.name"), field("NODE_NAME", "spec.nodeName"), field("POD_IP", "status.podIP")},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	svc, err = cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Both pods Ready, one on each node.
	podOn := map[string]corev1.Pod{}
	if err := waitFor(ctx, 3*time.Minute, "two Ready echo pods on two nodes", func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			return err
		}
		clear(podOn)
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Status.PodIP != "" {
					podOn[p.Spec.NodeName] = p
				}
			}
		}
		if len(podOn) != 2 {
			return fmt.Errorf("ready pods by node: %d", len(podOn))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n1, n2 := l.NodeName(1), l.NodeName(2)
	from, to := podOn[n1], podOn[n2]
	fromNetns := name + "-p-" + strings.ReplaceAll(string(from.UID), "-", "")[:8]
	fetch := func(url string) (answer struct{ Pod, Node, PodIP, ClientAddr string }, err error) {
		out, err := netnstest.Exec(fromNetns, filepath.Join(bin, "lab-image"), "client", "-once", "-timeout", "2s", "-url", url)
		if err != nil {
			return answer, fmt.Errorf("%v: %s", err, out)
		}
		return answer, json.Unmarshal([]byte(out), &answer)
	}

	// Pod to pod across nodes: the answer comes from the other node's pod and
	// sees the client's own pod IP (no NAT on the way).
	a, err := fetch("http://" + to.Status.PodIP + ":8080/")
	if err != nil {
		t.Fatalf("pod %s on %s -> pod %s on %s: %v", from.Name, n1, to.Name, n2, err)
	}
	if a.Pod != to.Name || a.Node != n2 || !strings.HasPrefix(a.ClientAddr, from.Status.PodIP+":") {
		t.Errorf("pod-to-pod answer %+v; want pod %s on %s seeing client %s", a, to.Name, n2, from.Status.PodIP)
	}

	// Pod to ClusterIP through kube-proxy: answers from both nodes' pods.
	seen := map[string]bool{}
	if err := waitFor(ctx, 60*time.Second, "answers from both pods through the ClusterIP", func() error {
		a, err := fetch("http://" + svc.Spec.ClusterIP + "/")
		if err != nil {
			return err
		}
		seen[a.Node] = true
		if !seen[n1] || !seen[n2] {
			return fmt.Errorf("answers so far from %v", seen)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Down removes every namespace, link, process and file of the lab.
	podNetns := netnsOf(name)
	if len(podNetns) < 4 { // 2 nodes + 2 pods
		t.Errorf("expected node and pod namespaces before down, got %v", podNetns)
	}
	downed = true
	if err := Down(ctx, stateRoot, name, testWriter{t}); err != nil {
		t.Fatalf("down: %v", err)
	}
	if left := Leftovers(stateRoot, name); len(left) > 0 {
		t.Errorf("left after down: %v", left)
	}
	if err := Down(ctx, stateRoot, name, testWriter{t}); err != nil {
		t.Errorf("second down is not a no-op: %v", err)
	}
}

func netnsOf(name string) []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
