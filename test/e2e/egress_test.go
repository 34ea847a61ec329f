package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// The egress gateway tests run on one 3-node lab (native routing,
// cluster-pool, Plexus CNI and datapath with masquerading) with the
// plexus-egressgateway node plugin on every node. The lab's external host
// (the client namespace on the segment) serves on three addresses and
// answers with the source address it sees. Nodes 2 and 3 are the gateway
// candidates; the floating egress IP is 198.18.<segment>.240. Subtests are
// named after the egress checklist rows (spec §8.4) and run in order.

const egressPlugin = lab.EgressGatewayNode

type egressLab struct {
	*labtest.Lab
	t        *testing.T
	external []string   // URLs: .250 (in the policy), .251 (excluded), .252 (outside the destinations)
	egressIP netip.Addr // the floating egress IP
	nodeIP   map[string]string
	backend  map[string]*corev1.Pod // by node
	frontend *corev1.Pod
}

// seen is the source address the external server sees for a new connection
// from pod to url ("" and an error when it cannot connect).
func (e *egressLab) seen(pod *corev1.Pod, url string) (string, error) {
	// A new client per request: a new connection, which is what a policy
	// change or a failover is promised to affect.
	c := e.HTTPClient(e.PodNetns(pod))
	c.Timeout = 2 * time.Second
	tr := c.Transport.(*http.Transport)
	tr.DisableKeepAlives, tr.MaxConnsPerHost = true, 0
	return labtest.SourceSeen(c, url)
}

// expect waits until pod's new connections to url are seen from want.
func (e *egressLab) expect(t *testing.T, pod *corev1.Pod, url, want string, within time.Duration) {
	t.Helper()
	e.EventuallyIn(t, within, fmt.Sprintf("%s (on %s) → %s seen from %s", pod.Name, pod.Spec.NodeName, url, want), func() error {
		got, err := e.seen(pod, url)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("seen from %s", got)
		}
		return nil
	})
}

// newEgressLab starts a 3-node lab in routing mode mode with the egress
// plugin on every node, the external host serving on .250-.252, nodes 2
// and 3 labelled egress-node=true, and a backend and a frontend echo pod on
// every node.
func newEgressLab(t *testing.T, mode string) *egressLab {
	l := labtest.Start(t, lab.Options{Nodes: 3, RoutingMode: mode, IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	for i := 1; i <= 3; i++ {
		if n := l.Layout.NodeName(i); !l.Running(n, egressPlugin) {
			t.Fatalf("%s does not run on %s: the lab did not start it (see its output above)", egressPlugin, n)
		}
	}
	n1 := l.Layout.NodeName(1)
	e := &egressLab{Lab: l, t: t, external: l.ExternalServer(t, 2), nodeIP: map[string]string{}, backend: map[string]*corev1.Pod{}}
	first, _ := l.Layout.LBPoolRange()
	a := first.As4()
	a[3] = 240
	e.egressIP = netip.AddrFrom4(a)
	for i := 1; i <= 3; i++ {
		e.nodeIP[l.Layout.NodeName(i)] = l.Layout.NodeIP(i).String()
	}
	for _, n := range []string{l.Layout.NodeName(2), l.Layout.NodeName(3)} {
		l.LabelNode(t, n, "egress-node", "true")
	}
	backends := labtest.Deploy(t, l, labtest.Echo("backend", 3, nil))
	for i := range backends {
		e.backend[backends[i].Spec.NodeName] = &backends[i]
	}
	frontends := labtest.Deploy(t, l, labtest.Echo("frontend", 3, nil))
	for i := range frontends {
		if frontends[i].Spec.NodeName == n1 {
			e.frontend = &frontends[i]
		}
	}
	if len(e.backend) != 3 || e.frontend == nil {
		t.Fatalf("want a backend on every node and a frontend on %s: %v", n1, e.backend)
	}
	return e
}

// cidr is the prefix of the lab segment's address .last with bits bits.
func (e *egressLab) cidr(last byte, bits int) string {
	x := e.Layout.UnderlayPrefix().Addr().As4()
	x[3] = last
	return netip.PrefixFrom(netip.AddrFrom4(x), bits).String()
}

// samplePolicy selects the backend pods (namespace key included) for
// .248-.251 except .251, through the candidates with the egress IP.
func (e *egressLab) samplePolicy() *ciliumv2.CiliumEgressGatewayPolicy {
	return &ciliumv2.CiliumEgressGatewayPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "egress-sample"},
		Spec: ciliumv2.CiliumEgressGatewayPolicySpec{
			Selectors: []ciliumv2.EgressRule{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"app": "backend", "io.kubernetes.pod.namespace": labtest.Namespace}}}},
			// .248-.251, except .251; .252 is outside.
			DestinationCIDRs: []string{e.cidr(248, 30)},
			ExcludedCIDRs:    []string{e.cidr(251, 32)},
			EgressGateways: []ciliumv2.EgressGateway{{
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"egress-node": "true"}},
				EgressIP:     e.egressIP.String(),
			}},
		},
	}
}

func TestEgressGateway(t *testing.T) {
	e := newEgressLab(t, "native")
	l := e.Lab
	ctx := context.Background()
	n1, n2, n3 := l.Layout.NodeName(1), l.Layout.NodeName(2), l.Layout.NodeName(3)
	b1, b3 := e.backend[n1], e.backend[n3]
	inPolicy, excluded, outside := e.external[0], e.external[1], e.external[2]

	t.Run("E4_E26_WithoutPolicyPodsLeaveWithTheirNodeAddress", func(t *testing.T) {
		e.expect(t, b1, inPolicy, e.nodeIP[n1], 30*time.Second)
		e.expect(t, b3, inPolicy, e.nodeIP[n3], 10*time.Second)
	})

	policy := e.samplePolicy()
	if err := l.Cilium.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}

	t.Run("E3_E15_SelectedPodsLeaveWithTheEgressIP", func(t *testing.T) {
		e.expect(t, b1, inPolicy, e.egressIP.String(), 30*time.Second)
		// From a standby candidate's own pod too: it is steered to the holder.
		e.expect(t, b3, inPolicy, e.egressIP.String(), 10*time.Second)
	})

	t.Run("E4_OtherPodsUntouched", func(t *testing.T) {
		e.expect(t, e.frontend, inPolicy, e.nodeIP[n1], 10*time.Second)
	})
	t.Run("E5_E10_OtherAndExcludedDestinationsUntouched", func(t *testing.T) {
		e.expect(t, b1, excluded, e.nodeIP[n1], 10*time.Second)
		e.expect(t, b1, outside, e.nodeIP[n1], 10*time.Second)
	})

	t.Run("E11_ClusterTrafficUntouched", func(t *testing.T) {
		// Pod to pod on another node keeps the pod's own address.
		ans, err := l.Fetch(b1, "http://"+e.backend[n2].Status.PodIP+":8080/")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ans.ClientAddr, b1.Status.PodIP+":") {
			t.Fatalf("pod-to-pod seen from %s, want %s", ans.ClientAddr, b1.Status.PodIP)
		}
	})

	t.Run("E13_E23_FirstCandidateByNameIsActive", func(t *testing.T) {
		l.EventuallyIn(t, 30*time.Second, "policy status names the active gateway", func() error {
			return activeGateway(l, policy.Name, n2)
		})
		// Exactly one node answers ARP for the egress IP: the active one.
		macs, err := l.NodeByMAC()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if got := nodesOf(arpAsClient(t, l, e.egressIP), macs); len(got) != 1 || got[0] != n2 {
				t.Fatalf("probe %d: ARP for %s answered by %v, want only %s", i, e.egressIP, got, n2)
			}
		}
		var eg nodesv1alpha1.Egress
		if err := l.Cilium.Get(ctx, client.ObjectKey{Name: n1}, &eg); err != nil {
			t.Fatal(err)
		}
		if len(eg.Spec.Steering) != 1 || !slices.Contains(eg.Spec.Steering[0].SourceIPs, b1.Status.PodIP) || eg.Spec.Steering[0].EgressIP != e.egressIP.String() {
			t.Fatalf("%s steering %+v", n1, eg.Spec.Steering)
		}
	})

	t.Run("HA_KillingTheActiveGatewayMovesTheEgressIP", func(t *testing.T) {
		if err := lab.SetNodeLink(l.StateRoot, l.Options.Name, n2, false, testLog{t}); err != nil {
			t.Fatal(err)
		}
		if err := lab.KillComponent(l.StateRoot, l.Options.Name, n2, egressPlugin, testLog{t}); err != nil {
			t.Fatal(err)
		}
		restored := false
		restore := func() {
			if !restored {
				restored = true
				_ = lab.SetNodeLink(l.StateRoot, l.Options.Name, n2, true, testLog{t})
				_ = lab.StartComponent(l.StateRoot, l.Options.Name, n2, egressPlugin, testLog{t})
			}
		}
		t.Cleanup(restore)
		killed := time.Now()
		// New connections succeed again, with the same source address.
		e.expect(t, b1, inPolicy, e.egressIP.String(), failoverBound)
		t.Logf("first new connection through the standby after %v", time.Since(killed).Round(time.Millisecond))
		e.expect(t, b3, inPolicy, e.egressIP.String(), failoverBound)
		l.EventuallyIn(t, 30*time.Second, "policy status names the new active gateway", func() error {
			return activeGateway(l, policy.Name, n3)
		})

		restore()
		// n2 comes back, counts as alive after the rejoin time and takes
		// the address back; traffic keeps its source address.
		l.EventuallyIn(t, 30*time.Second, "n2 active again", func() error { return activeGateway(l, policy.Name, n2) })
		e.expect(t, b1, inPolicy, e.egressIP.String(), failoverBound)
	})

	t.Run("E24_NewPodIsSteered", func(t *testing.T) {
		template := labtest.Echo("backend", 1, nil).Spec.Template
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: labtest.Namespace, Labels: template.Labels},
			Spec: *template.Spec.DeepCopy()}
		pod.Spec.NodeName, pod.Spec.TopologySpreadConstraints = n1, nil
		created, err := l.Client.CoreV1().Pods(labtest.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = l.Client.CoreV1().Pods(labtest.Namespace).Delete(ctx, created.Name, metav1.DeleteOptions{})
		})
		e.expect(t, created, inPolicy, e.egressIP.String(), 30*time.Second)
	})

	t.Run("E25_PolicyUpdateLive", func(t *testing.T) {
		if err := l.Cilium.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			t.Fatal(err)
		}
		// A merge patch of the spec, as kubectl apply would send: the
		// controller writes status meanwhile.
		orig := policy.DeepCopy()
		policy.Spec.DestinationCIDRs = []string{e.cidr(248, 29)} // now takes .252 too
		if err := l.Cilium.Patch(ctx, policy, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		e.expect(t, b1, outside, e.egressIP.String(), 10*time.Second)
	})

	t.Run("E26_PolicyDeleteRestoresNormalEgress", func(t *testing.T) {
		if err := l.Cilium.Delete(ctx, policy); err != nil {
			t.Fatal(err)
		}
		e.expect(t, b1, inPolicy, e.nodeIP[n1], 10*time.Second)
		e.expect(t, b3, inPolicy, e.nodeIP[n3], 10*time.Second)
	})

	t.Run("E14_NoGatewayNodeDropsTraffic", func(t *testing.T) {
		nowhere := policy.DeepCopy()
		nowhere.ObjectMeta = metav1.ObjectMeta{Name: "nowhere"}
		nowhere.Spec.EgressGateways = nil
		nowhere.Spec.EgressGateway = &ciliumv2.EgressGateway{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"egress-node": "nowhere"}}}
		if err := l.Cilium.Create(ctx, nowhere); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Cilium.Delete(ctx, nowhere) })
		l.EventuallyIn(t, 10*time.Second, "traffic dropped", func() error {
			if got, err := e.seen(b1, inPolicy); err == nil {
				return fmt.Errorf("still answered (seen from %s)", got)
			}
			return nil
		})
		// Not redirected does not mean unaffected: other pods still leave.
		e.expect(t, e.frontend, inPolicy, e.nodeIP[n1], 10*time.Second)
		l.EventuallyIn(t, 10*time.Second, "Ready=False NoGatewayNode", func() error {
			var p ciliumv2.CiliumEgressGatewayPolicy
			if err := l.Cilium.Get(ctx, client.ObjectKey{Name: "nowhere"}, &p); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(p.Status.Conditions, "Ready"); c == nil || c.Reason != "NoGatewayNode" {
				return fmt.Errorf("Ready %+v", c)
			}
			return nil
		})
	})
}

// activeGateway checks that the policy's status names node as the one
// active gateway.
func activeGateway(l *labtest.Lab, policy, node string) error {
	var p ciliumv2.CiliumEgressGatewayPolicy
	if err := l.Cilium.Get(context.Background(), client.ObjectKey{Name: policy}, &p); err != nil {
		return err
	}
	var active []string
	for _, g := range p.Status.Gateways {
		if g.State == "Active" {
			active = append(active, g.Node)
		}
	}
	if len(active) != 1 || active[0] != node {
		return fmt.Errorf("active gateways %v, want %s (status %+v)", active, node, p.Status)
	}
	return nil
}

// In VXLAN mode the steered packets still reach the gateway over the
// underlay (to the egress IP), and the gateway sends the replies to the pod
// through the tunnel: the same guarantees hold.
func TestEgressGatewayVXLAN(t *testing.T) {
	e := newEgressLab(t, "vxlan")
	l := e.Lab
	n1, n2, n3 := l.Layout.NodeName(1), l.Layout.NodeName(2), l.Layout.NodeName(3)
	b1, b3 := e.backend[n1], e.backend[n3]
	inPolicy := e.external[0]
	if err := l.Cilium.Create(context.Background(), e.samplePolicy()); err != nil {
		t.Fatal(err)
	}
	t.Run("E3_E4_E11", func(t *testing.T) {
		e.expect(t, b1, inPolicy, e.egressIP.String(), 30*time.Second)
		e.expect(t, b3, inPolicy, e.egressIP.String(), 10*time.Second)
		e.expect(t, e.frontend, inPolicy, e.nodeIP[n1], 10*time.Second)
		ans, err := l.Fetch(b1, "http://"+e.backend[n2].Status.PodIP+":8080/")
		if err != nil || !strings.HasPrefix(ans.ClientAddr, b1.Status.PodIP+":") {
			t.Fatalf("pod-to-pod through the tunnel: %+v, %v", ans, err)
		}
	})
	t.Run("HA_FailoverKeepsTheEgressIP", func(t *testing.T) {
		l.EventuallyIn(t, 30*time.Second, "n2 active", func() error { return activeGateway(l, "egress-sample", n2) })
		if err := lab.SetNodeLink(l.StateRoot, l.Options.Name, n2, false, testLog{t}); err != nil {
			t.Fatal(err)
		}
		if err := lab.KillComponent(l.StateRoot, l.Options.Name, n2, egressPlugin, testLog{t}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = lab.SetNodeLink(l.StateRoot, l.Options.Name, n2, true, testLog{t})
			_ = lab.StartComponent(l.StateRoot, l.Options.Name, n2, egressPlugin, testLog{t})
		})
		e.expect(t, b1, inPolicy, e.egressIP.String(), failoverBound)
	})
}
