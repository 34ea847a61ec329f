// Package e2e_test runs Plexus end to end on labs (see docs/lab.md): real
// pods in network namespaces, addressed by the Plexus CNI plugin from the
// CIDRs the IPAM controller gave their nodes, routed by the datapath plugin,
// with kube-proxy in front of Services. Each test brings up its own lab and
// removes it. They need root and the binaries `make test` builds.
package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

func ciliumNode(t *testing.T, l *labtest.Lab, name string) *ciliumv2.CiliumNode {
	t.Helper()
	cn := &ciliumv2.CiliumNode{}
	if err := l.Cilium.Get(context.Background(), client.ObjectKey{Name: name}, cn); err != nil {
		t.Fatal(err)
	}
	return cn
}

// keepsConnection holds one TCP connection from a pod on one node to a pod
// on another and restarts the datapath plugin of both nodes while requests
// keep flowing over it: every request must succeed over the same connection.
func keepsConnection(t *testing.T, l *labtest.Lab, from, to *corev1.Pod) {
	t.Helper()
	c := l.HTTPClient(l.PodNetns(from))
	url := "http://" + labtest.HostPort(to.Status.PodIP, 8080) + "/"
	var first string
	get := func() (reused bool, local string, err error) {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			reused, local = i.Reused, i.Conn.LocalAddr().String()
		}})
		req, _ := httpRequest(ctx, url)
		resp, err := c.Do(req)
		if err != nil {
			return false, "", err
		}
		// Read to the end, or the transport does not reuse the connection.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused, local, err
	}
	if _, l1, err := get(); err != nil {
		t.Fatalf("first request: %v", err)
	} else {
		first = l1
	}
	done := make(chan error, 1)
	go func() {
		for _, node := range []string{from.Spec.NodeName, to.Spec.NodeName} {
			if err := lab.Restart(l.StateRoot, l.Options.Name, node, lab.DatapathNode, testLog{t}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	restarted := false
	defer func() {
		if !restarted {
			<-done // never leave a restart running into the lab's teardown
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		reused, local, err := get()
		if err != nil {
			t.Fatalf("request %d during the datapath restart: %v", n, err)
		}
		if !reused || local != first {
			t.Fatalf("request %d went over a new connection (%s, first was %s)", n, local, first)
		}
		if !restarted {
			select {
			case err := <-done:
				restarted = true
				if err != nil {
					t.Fatal(err)
				}
				deadline = time.Now().Add(3 * time.Second) // and some more after
			default:
			}
		}
		if time.Now().After(deadline) {
			if !restarted {
				t.Fatal("the restarts did not finish in 20 s")
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// routesTo lists node's routes to prefix (from its kernel).
func routesTo(t *testing.T, node, prefix string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", node, "route", "show", prefix).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s route show %s: %v %s", node, prefix, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Native routing, cluster-pool IPAM, three nodes.
func TestNativeRoutingClusterPool(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 6, nil))
	if got := labtest.NodesOf(pods); len(got) != 3 {
		t.Fatalf("pods on %v, want all three nodes", got)
	}
	svc := labtest.Service(t, l, "echo")

	t.Run("I7_PodIPsFromTheirNodeCIDR", func(t *testing.T) {
		for _, p := range pods {
			cidr := netip.MustParsePrefix(ciliumNode(t, l, p.Spec.NodeName).Spec.IPAM.PodCIDRs[0])
			ip := netip.MustParseAddr(p.Status.PodIP)
			if !cidr.Contains(ip) || ip == cidr.Addr() {
				t.Errorf("pod %s on %s has %s, outside %s or its network address", p.Name, p.Spec.NodeName, ip, cidr)
			}
		}
	})
	t.Run("PodToPodSameNodeAndAcross", func(t *testing.T) { labtest.ReachAll(t, l, pods, pods) })
	t.Run("PodToClusterIP", func(t *testing.T) { labtest.ReachesAllNodesThrough(t, l, &pods[0], svc, 3) })
	t.Run("DatapathRestartKeepsConnection", func(t *testing.T) {
		from, to := pods[0], pods[slices.IndexFunc(pods, func(p corev1.Pod) bool { return p.Spec.NodeName != pods[0].Spec.NodeName })]
		keepsConnection(t, l, &from, &to)
	})
	t.Run("StatusCommand", func(t *testing.T) {
		// The lab runs the controllers as processes: status finds them by
		// their leader-election Leases, and every node's CiliumNode Ready.
		out := l.Kubectl(t, "kubectl-plexus", "status", "--plexus-namespace", lab.PlexusNamespace, "--wait", "--wait-duration", "60s")
		norm := strings.Join(strings.Fields(out), " ")
		for _, want := range []string{"ipam - ", "IPAM CiliumNode 3/3 0", "Status: OK"} {
			if !strings.Contains(norm, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("I32_NodeIPAMReachedFromOutside", func(t *testing.T) {
		labtest.LoadBalancerService(t, l, "echo-node", "echo", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("io.cilium/node") })
		var ips []string
		l.Eventually(time.Minute, "the three nodes' addresses as the Service's ingress", func() error {
			s, err := l.Client.CoreV1().Services(labtest.Namespace).Get(context.Background(), "echo-node", metav1.GetOptions{})
			if err != nil {
				return err
			}
			ips = nil
			for _, ing := range s.Status.LoadBalancer.Ingress {
				ips = append(ips, ing.IP)
			}
			if want := []string{l.Layout.NodeIP(1).String(), l.Layout.NodeIP(2).String(), l.Layout.NodeIP(3).String()}; !slices.Equal(ips, want) {
				return fmt.Errorf("ingress %v, want %v", ips, want)
			}
			return nil
		})
		c := clientHTTP(l, 5*time.Second)
		for _, ip := range ips {
			l.Eventually(30*time.Second, "the external client reaches the Service at "+ip, func() error {
				_, err := labtest.FetchWith(c, "http://"+ip+"/")
				return err
			})
		}
	})
	t.Run("PodDeletionReleasesIP", func(t *testing.T) {
		victim := pods[0]
		if err := l.Client.CoreV1().Pods(labtest.Namespace).Delete(context.Background(), victim.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		l.Eventually(time.Minute, "pod gone and its address released", func() error {
			if _, err := l.Client.CoreV1().Pods(labtest.Namespace).Get(context.Background(), victim.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod still there (%w)", err)
			}
			held, err := l.Allocations(victim.Spec.NodeName)
			if err != nil {
				return err
			}
			if owner, ok := held[victim.Status.PodIP]; ok && owner == labtest.Namespace+"/"+victim.Name {
				return fmt.Errorf("%s still held by %s", victim.Status.PodIP, owner)
			}
			if r := routesTo(t, victim.Spec.NodeName, victim.Status.PodIP+"/32"); r != "" {
				return fmt.Errorf("route to the deleted pod remains: %s", r)
			}
			return nil
		})
	})
	t.Run("I31_NodeDeletionReleasesCIDR", func(t *testing.T) {
		gone := l.Layout.NodeName(3)
		cidr := ciliumNode(t, l, gone).Spec.IPAM.PodCIDRs[0]
		if err := lab.NodeDelete(context.Background(), l.StateRoot, l.Options.Name, gone, testLog{t}); err != nil {
			t.Fatal(err)
		}
		l.Eventually(time.Minute, "CiliumNode and routes of the deleted node gone", func() error {
			var list ciliumv2.CiliumNodeList
			if err := l.Cilium.List(context.Background(), &list); err != nil {
				return err
			}
			for _, cn := range list.Items {
				if cn.Name == gone {
					return fmt.Errorf("CiliumNode %s still exists", gone)
				}
				if slices.Contains(cn.Spec.IPAM.PodCIDRs, cidr) {
					return fmt.Errorf("%s now held by %s", cidr, cn.Name)
				}
			}
			if r := routesTo(t, l.Layout.NodeName(1), cidr); r != "" {
				return fmt.Errorf("%s still routes %s", l.Layout.NodeName(1), r)
			}
			return nil
		})
	})
}

// VXLAN routing, multi-pool IPAM with a second pool, two nodes.
func TestVXLANMultiPool(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "vxlan", IPAMMode: "multi-pool", CNI: "plexus", Datapath: "plexus"})
	mars := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: "mars"},
		Spec: ciliumv2alpha1.IPPoolSpec{IPv4: &ciliumv2alpha1.IPPoolFamily{CIDRs: []string{"10.20.0.0/16"}, MaskSize: 26}}}
	if err := l.Cilium.Create(context.Background(), mars); err != nil {
		t.Fatal(err)
	}
	plain := labtest.Deploy(t, l, labtest.Echo("earth", 2, nil))
	red := labtest.Deploy(t, l, labtest.Echo("mars", 2, map[string]string{"ipam.cilium.io/ip-pool": "mars"}))
	for _, pods := range [][]corev1.Pod{plain, red} {
		if got := labtest.NodesOf(pods); len(got) != 2 {
			t.Fatalf("pods on %v, want both nodes", got)
		}
	}

	t.Run("I11_I12_PoolsGiveTheirAddresses", func(t *testing.T) {
		check := func(pods []corev1.Pod, cidr string) {
			for _, p := range pods {
				if !netip.MustParsePrefix(cidr).Contains(netip.MustParseAddr(p.Status.PodIP)) {
					t.Errorf("pod %s has %s, outside %s", p.Name, p.Status.PodIP, cidr)
				}
			}
		}
		check(plain, lab.MultiPoolDefaultCIDR)
		check(red, "10.20.0.0/16")
	})
	t.Run("TunnelDevice", func(t *testing.T) {
		out, err := exec.Command("ip", "-n", l.Layout.NodeName(1), "-d", "link", "show", "plexus_vxlan").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "vxlan id 2") {
			t.Fatalf("no VXLAN device: %v %s", err, out)
		}
	})
	t.Run("PodsOfBothPoolsReachEachOther", func(t *testing.T) {
		labtest.ReachAll(t, l, plain, red)
		labtest.ReachAll(t, l, red, plain)
	})
	t.Run("DatapathRestartKeepsConnection", func(t *testing.T) {
		from, to := red[0], plain[slices.IndexFunc(plain, func(p corev1.Pod) bool { return p.Spec.NodeName != red[0].Spec.NodeName })]
		keepsConnection(t, l, &from, &to)
	})
}

func httpRequest(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
