package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// A dual-stack lab (--ip-family dual): an IPv6 underlay beside the IPv4
// one, cluster-pool IPAM with both families, native routing by the Plexus
// datapath, and dual-stack Services.
func TestDualStack(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", IPAMMode: "cluster-pool", IPFamily: "dual", CNI: "plexus", Datapath: "plexus"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 4, nil))
	if got := labtest.NodesOf(pods); len(got) != 2 {
		t.Fatalf("pods on %v, want both nodes", got)
	}

	t.Run("I3_EveryPodHasAnAddressOfEachFamilyFromItsNode", func(t *testing.T) {
		for _, p := range pods {
			cidrs := ciliumNode(t, l, p.Spec.NodeName).Spec.IPAM.PodCIDRs
			if len(cidrs) != 2 {
				t.Fatalf("node %s holds %v, want one CIDR per family", p.Spec.NodeName, cidrs)
			}
			for _, v6 := range []bool{false, true} {
				ip, err := netip.ParseAddr(labtest.PodIP(&p, v6))
				if err != nil {
					t.Errorf("pod %s has no address of the family (IPv6: %v): %v", p.Name, v6, p.Status.PodIPs)
					continue
				}
				inside := false
				for _, c := range cidrs {
					inside = inside || netip.MustParsePrefix(c).Contains(ip)
				}
				if !inside {
					t.Errorf("pod %s on %s has %s, outside its node's %v", p.Name, p.Spec.NodeName, ip, cidrs)
				}
			}
		}
	})
	t.Run("PodToPodIPv6SameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, true) })
	t.Run("PodToPodIPv4SameNodeAndAcross", func(t *testing.T) { labtest.ReachAllOver(t, l, pods, pods, false) })
	t.Run("DualStackClusterIP", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "echo-dual", Namespace: labtest.Namespace},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "echo"}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
			},
		}
		svc, err := l.Client.CoreV1().Services(labtest.Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Spec.ClusterIPs) != 2 {
			t.Fatalf("ClusterIPs %v, want one per family", svc.Spec.ClusterIPs)
		}
		for _, ip := range svc.Spec.ClusterIPs {
			seen := map[string]bool{}
			l.Eventually(time.Minute, "answers from both nodes through ClusterIP "+ip, func() error {
				a, err := l.Fetch(&pods[0], "http://"+labtest.HostPort(ip, 80)+"/")
				if err != nil {
					return err
				}
				seen[a.Node] = true
				if len(seen) < 2 {
					return fmt.Errorf("answers so far from %v", seen)
				}
				return nil
			})
		}
	})
}
