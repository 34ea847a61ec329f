package lab_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
	"github.com/plexus-net/plexus/test/lab/podrunner"
)

// TestStandinLab brings up a 2-node lab with the stand-in network (the
// reference ptp + host-local plugins and static routes), so that the lab
// itself is tested apart from Plexus: pods scheduled, run and addressed,
// reachable across nodes and through a ClusterIP, the external client on
// the segment, `kubectl logs` through the API server, and `down` removing every namespace, link, process and file,
// twice without complaint. The Plexus
// network is tested in test/e2e.
func TestStandinLab(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", CNI: "standin", Datapath: "standin"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 2, nil))
	if pods[0].Spec.NodeName == pods[1].Spec.NodeName {
		t.Fatalf("both pods on %s", pods[0].Spec.NodeName)
	}
	svc := labtest.Service(t, l, "echo")
	labtest.ReachAll(t, l, pods, pods)
	labtest.ReachesAllNodesThrough(t, l, &pods[0], svc, 2)
	clientOnSegment(t, l)
	containerLogs(t, l, &pods[0])

	if n := len(netnsOf(l.Options.Name)); n < 5 { // 2 nodes + 2 pods + the client
		t.Errorf("expected node and pod namespaces before down, got %d", n)
	}
	for range 2 {
		if err := lab.Down(context.Background(), l.StateRoot, l.Options.Name, os.Stderr); err != nil {
			t.Fatalf("down: %v", err)
		}
		if left := lab.Leftovers(l.StateRoot, l.Options.Name); len(left) > 0 {
			t.Errorf("left after down: %v", left)
		}
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

// clientOnSegment checks the external client and the LB-IPAM pool `lab up`
// makes: ARP from the client finds exactly the node that has an address and
// nothing for an unused one (which also tests labtest's ARP helper), the
// client has no default route, and the pool covers the lab's range.
func clientOnSegment(t *testing.T, l *labtest.Lab) {
	t.Helper()
	node := l.Layout.NodeName(1)
	mac, err := l.NodeMAC(node)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.ARPReplies(l.Layout.NodeIP(1), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].String() != mac.String() {
		t.Errorf("ARP for %s from the client: replies %v, want exactly %s (%s eth0)", l.Layout.NodeIP(1), got, mac, node)
	}
	unused := netip.AddrFrom4([4]byte{198, 18, byte(l.Layout.Segment), 249})
	if got, err := l.ARPReplies(unused, 300*time.Millisecond); err != nil || len(got) != 0 {
		t.Errorf("ARP for unused %s: replies %v (%v), want none", unused, got, err)
	}
	if out, err := exec.Command("ip", "-n", l.ClientNetns(), "route", "show", "default").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("client %s has a default route: %q (%v)", l.ClientNetns(), out, err)
	}
	var pool ciliumv2.CiliumLoadBalancerIPPool
	if err := l.Cilium.Get(context.Background(), client.ObjectKey{Name: lab.LBPoolName}, &pool); err != nil {
		t.Fatalf("pool %s: %v", lab.LBPoolName, err)
	}
	first, last := l.Layout.LBPoolRange()
	if len(pool.Spec.Blocks) != 1 || pool.Spec.Blocks[0].Start != first.String() || pool.Spec.Blocks[0].Stop != last.String() {
		t.Errorf("pool %s blocks %+v, want %s-%s", lab.LBPoolName, pool.Spec.Blocks, first, last)
	}
}

// containerLogs reads a pod's log through the API server (pods/log), which
// reaches the pod runner's log API on the pod's node, with the kubelet's
// options; and checks that the log API answers only the API server.
func containerLogs(t *testing.T, l *labtest.Lab, pod *corev1.Pod) {
	t.Helper()
	const startLine = "echo serving on" // echo's first words (stderr)
	get := func(o corev1.PodLogOptions) string {
		t.Helper()
		o.Container = "echo"
		b, err := l.Client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &o).DoRaw(context.Background())
		if err != nil {
			t.Fatalf("logs of %s with %+v: %v", pod.Name, o, err)
		}
		return string(b)
	}
	if out := get(corev1.PodLogOptions{}); !strings.Contains(out, startLine) {
		t.Errorf("logs of %s lack %q:\n%s", pod.Name, startLine, out)
	}
	out := get(corev1.PodLogOptions{Timestamps: true, TailLines: ptr.To[int64](1)})
	stamp, text, _ := strings.Cut(strings.TrimSuffix(out, "\n"), " ")
	if at, err := time.Parse(time.RFC3339Nano, stamp); err != nil || time.Since(at) > 10*time.Minute || strings.Count(out, "\n") != 1 || text == "" {
		t.Errorf("one timestamped line: got %q (%v)", out, err)
	}
	if out := get(corev1.PodLogOptions{SinceTime: &metav1.Time{Time: time.Now().Add(time.Hour)}}); out != "" {
		t.Errorf("logs since an hour from now: %q, want none", out)
	}
	if out := get(corev1.PodLogOptions{LimitBytes: ptr.To[int64](4)}); len(out) != 4 {
		t.Errorf("limitBytes 4 gave %q", out)
	}
	if _, err := l.Client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "echo", Previous: true}).DoRaw(context.Background()); err == nil {
		t.Errorf("logs of a previous container that never was: no error")
	}

	// Straight to the node: a client of the lab's CA that is not the API
	// server is refused; one without a certificate gets no TLS session.
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Layout.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cfg.CAData)
	url := "https://" + net.JoinHostPort(pod.Status.HostIP, strconv.Itoa(podrunner.KubeletPort)) + "/containerLogs/" + pod.Namespace + "/" + pod.Name + "/echo"
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		want  int // 0: no TLS session
	}{{"the cluster admin", []tls.Certificate{admin}, http.StatusForbidden}, {"no certificate", nil, 0}} {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: tc.certs}}}
		resp, err := c.Get(url)
		switch {
		case tc.want == 0 && err == nil:
			resp.Body.Close()
			t.Errorf("%s: answered %s, want the TLS handshake refused", tc.name, resp.Status)
		case tc.want != 0 && err != nil:
			t.Errorf("%s: %v, want %d", tc.name, err, tc.want)
		case tc.want != 0:
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %s %q, want %d", tc.name, resp.Status, body, tc.want)
			}
		}
	}
}
