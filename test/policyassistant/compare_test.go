// Package policyassistant compares Plexus's Kubernetes NetworkPolicy
// semantics with the reference engine of sigs.k8s.io/network-policy-api,
// policy-assistant (its code is under upstream/, see README.md).
package policyassistant

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/policy-assistant/pkg/generator"
	"sigs.k8s.io/network-policy-api/policy-assistant/pkg/matcher"

	"github.com/plexus-net/plexus/controllers/policy/compiler"
	"github.com/plexus-net/plexus/internal/identity"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
)

// The model is policy-assistant's: namespaces x, y and z (labelled
// ns=<name>), pods a, b and c in each (pod=<name>), each serving ports 80
// and 81 over TCP, UDP and SCTP under the names serve-<port>-<protocol>.
var (
	namespaces = []string{"x", "y", "z"}
	podNames   = []string{"a", "b", "c"}
	ports      = []int{80, 81}
	protocols  = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
)

type pod struct {
	namespace, name string
	ip              netip.Addr
}

func (p pod) String() string { return p.namespace + "/" + p.name }

// cluster is the model's state in one step of a test case.
type cluster struct {
	nsLabels  map[string]map[string]string
	podLabels map[string]map[string]string // by namespace/name
	policies  map[string]*networkingv1.NetworkPolicy
}

func newCluster() *cluster {
	c := &cluster{nsLabels: map[string]map[string]string{}, podLabels: map[string]map[string]string{}, policies: map[string]*networkingv1.NetworkPolicy{}}
	for _, ns := range namespaces {
		c.nsLabels[ns] = map[string]string{"ns": ns, corev1.LabelMetadataName: ns}
		for _, p := range podNames {
			c.podLabels[ns+"/"+p] = map[string]string{"pod": p}
		}
	}
	return c
}

func pods() []pod {
	var out []pod
	for i, ns := range namespaces {
		for j, p := range podNames {
			out = append(out, pod{ns, p, netip.AddrFrom4([4]byte{10, 0, byte(i + 1), byte(j + 1)})})
		}
	}
	return out
}

// apply performs a step's actions; false for an action the model does
// not cover (the case is then skipped, and counted).
func (c *cluster) apply(a *generator.Action) bool {
	switch {
	case a.CreatePolicy != nil:
		c.policies[a.CreatePolicy.Policy.Namespace+"/"+a.CreatePolicy.Policy.Name] = a.CreatePolicy.Policy
	case a.UpdatePolicy != nil:
		c.policies[a.UpdatePolicy.Policy.Namespace+"/"+a.UpdatePolicy.Policy.Name] = a.UpdatePolicy.Policy
	case a.DeletePolicy != nil:
		delete(c.policies, a.DeletePolicy.Namespace+"/"+a.DeletePolicy.Name)
	case a.SetNamespaceLabels != nil:
		labels := map[string]string{corev1.LabelMetadataName: a.SetNamespaceLabels.Namespace}
		for k, v := range a.SetNamespaceLabels.Labels {
			labels[k] = v
		}
		c.nsLabels[a.SetNamespaceLabels.Namespace] = labels
	case a.SetPodLabels != nil:
		c.podLabels[a.SetPodLabels.Namespace+"/"+a.SetPodLabels.Pod] = a.SetPodLabels.Labels
	default:
		return false
	}
	return true
}

// usesIPBlock says whether a policy has an ipBlock peer: Kubernetes lets
// an implementation decide whether one matches pods; Cilium's never do
// (a pod is its identity), and neither do Plexus's, while policy-assistant
// matches them by address. Such cases are compared for the rest only in
// the lab; here they are skipped and counted.
func usesIPBlock(p *networkingv1.NetworkPolicy) bool {
	for _, r := range p.Spec.Ingress {
		for _, peer := range r.From {
			if peer.IPBlock != nil {
				return true
			}
		}
	}
	for _, r := range p.Spec.Egress {
		for _, peer := range r.To {
			if peer.IPBlock != nil {
				return true
			}
		}
	}
	return false
}

// probe is one port and protocol to try between every pair of pods.
type probe struct {
	port     int
	name     string // the port's name when the step probes by name
	protocol corev1.Protocol
}

func probesOf(pc *generator.ProbeConfig) []probe {
	if pc.AllAvailable {
		var out []probe
		for _, port := range ports {
			for _, proto := range protocols {
				out = append(out, probe{port: port, protocol: proto})
			}
		}
		return out
	}
	pp := pc.PortProtocol
	if pp.Port.Type == intstr.String {
		var port int
		if _, err := fmt.Sscanf(pp.Port.StrVal, "serve-%d-", &port); err != nil {
			return nil
		}
		return []probe{{port: port, name: pp.Port.StrVal, protocol: pp.Protocol}}
	}
	return []probe{{port: pp.Port.IntValue(), protocol: pp.Protocol}}
}

// expected is policy-assistant's verdict for every pair and probe.
func (c *cluster) expected(all []pod, probes []probe) map[string]bool {
	var nps []*networkingv1.NetworkPolicy
	for _, p := range c.policies {
		nps = append(nps, p)
	}
	engine := matcher.BuildNetworkPolicies(true, nps)
	peer := func(p pod) *matcher.TrafficPeer {
		return &matcher.TrafficPeer{IP: p.ip.String(), Internal: &matcher.InternalPeer{
			PodLabels: c.podLabels[p.String()], NamespaceLabels: c.nsLabels[p.namespace], Namespace: p.namespace}}
	}
	out := map[string]bool{}
	for _, src := range all {
		for _, dst := range all {
			if src == dst {
				continue
			}
			for _, pr := range probes {
				name := pr.name
				if name == "" {
					name = fmt.Sprintf("serve-%d-%s", pr.port, strings.ToLower(string(pr.protocol)))
				}
				t := &matcher.Traffic{Source: peer(src), Destination: peer(dst), ResolvedPort: pr.port, ResolvedPortName: name, Protocol: pr.protocol}
				out[key(src, dst, pr)] = engine.IsTrafficAllowed(t).IsAllowed()
			}
		}
	}
	return out
}

func key(src, dst pod, pr probe) string {
	return fmt.Sprintf("%s → %s %s/%d", src, dst, pr.protocol, pr.port)
}

// plexus is Plexus's verdict for every pair and probe: the policies
// compiled as the controller does, the node's maps as the node plugin
// computes them, and each packet judged by the real programs, at the
// sender's egress and the receiver's ingress.
func (c *cluster) plexus(t *testing.T, maps *datapath.Maps, all []pod, probes []probe) map[string]bool {
	t.Helper()
	filter, err := identity.NewFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Identities by label set, numbered in a stable order.
	setOf := map[pod]identity.Labels{}
	byKey := map[string]identity.Labels{}
	for _, p := range all {
		obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: p.name, Labels: c.podLabels[p.String()]}}
		l := filter.PodSet(obj, c.nsLabels[p.namespace], "default")
		setOf[p], byKey[l.Key()] = l, l
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	number := map[string]identity.Number{}
	in := compiler.Input{Mode: compiler.ModeDefault, Pods: map[identity.Number]identity.Labels{}, NamedPorts: map[identity.Number][]compiler.NamedPort{}}
	var named []compiler.NamedPort
	var local []datapath.NamedPort
	for _, port := range ports {
		for _, proto := range protocols {
			n := fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto)))
			number := compiler.KubernetesProtocol(proto)
			named = append(named, compiler.NamedPort{Name: n, Protocol: number, Port: uint16(port)})
			local = append(local, datapath.NamedPort{Name: n, Protocol: uint8(number), Port: uint16(port)})
		}
	}
	for i, k := range keys {
		n := identity.Number(1000 + i)
		number[k] = n
		in.Pods[n] = byKey[k]
		in.NamedPorts[n] = named
	}
	for _, p := range c.policies {
		in.NetworkPolicies = append(in.NetworkPolicies, *p)
	}
	out := compiler.Compile(in)
	ids := make([]identity.Number, 0, len(in.Pods))
	for n := range in.Pods {
		ids = append(ids, n)
	}
	spec := out.NodeSpec("n1", ids)
	dpIn := datapath.Input{Spec: spec, Addresses: map[netip.Addr]uint32{}}
	for _, n := range ids {
		dpIn.Endpoints = append(dpIn.Endpoints, datapath.Endpoint{Ifindex: uint32(100 + n), Identity: uint32(n), NamedPorts: local})
	}
	for _, p := range all {
		dpIn.Addresses[p.ip] = uint32(number[setOf[p].Key()])
	}
	res := datapath.Desired(dpIn)
	if len(res.Problems) > 0 {
		t.Fatalf("datapath problems: %+v", res.Problems)
	}
	have, err := maps.Read()
	if err != nil {
		t.Fatal(err)
	}
	// Entry 1 (the test run's interface) stands for the endpoint whose
	// direction is judged.
	judge := func(n identity.Number, dir datapath.Direction, src, dst pod, pr probe) bool {
		want := res.State
		want.Endpoints = map[uint32]datapath.EndpointValue{1: res.State.Endpoints[uint32(100+n)]}
		if _, err := maps.Apply(have, want); err != nil {
			t.Fatal(err)
		}
		have = want
		verdict, err := maps.TestRun(dir, frame(src.ip, dst.ip, pr))
		if err != nil {
			t.Fatal(err)
		}
		return verdict == 0
	}
	got := map[string]bool{}
	for _, src := range all {
		for _, dst := range all {
			if src == dst {
				continue
			}
			for _, pr := range probes {
				egress := judge(number[setOf[src].Key()], datapath.Egress, src, dst, pr)
				ingress := judge(number[setOf[dst].Key()], datapath.Ingress, src, dst, pr)
				got[key(src, dst, pr)] = egress && ingress
			}
		}
	}
	return got
}

// frame is a packet of the probe from src to dst.
func frame(src, dst netip.Addr, pr probe) []byte {
	proto := map[corev1.Protocol]uint8{corev1.ProtocolTCP: 6, corev1.ProtocolUDP: 17, corev1.ProtocolSCTP: 132}[pr.protocol]
	return policytest.Frame(src, dst, proto, 40000, uint16(pr.port))
}

// Every test case policy-assistant generates (its own cases for targets,
// rules, peers, ports and protocols, actions, conflicts, namespaces, and
// the upstream Kubernetes e2e cases) is run step by step: after each
// step's actions, policy-assistant's verdict and Plexus's must agree for
// every pair of distinct pods and every probed port and protocol.
func TestNP09_NetworkPolicyAgreesWithPolicyAssistant(t *testing.T) {
	netnstest.RequireRoot(t)
	maps, err := datapath.Open(policytest.BPFFSFor(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = maps.Unpin(); _ = maps.Close() })
	gen := generator.NewTestCaseGenerator(false, "10.0.1.1", namespaces, nil, nil)
	all := pods()
	var compared, skippedActions, skippedIPBlock, verdicts int
	for _, tc := range gen.GenerateAllTestCases() {
		c := newCluster()
		ok := true
	steps:
		for _, step := range tc.Steps {
			for _, a := range step.Actions {
				if !c.apply(a) {
					skippedActions++
					ok = false
					break steps
				}
			}
			for _, p := range c.policies {
				if usesIPBlock(p) {
					skippedIPBlock++
					ok = false
					break steps
				}
			}
			probes := probesOf(step.Probe)
			want, got := c.expected(all, probes), c.plexus(t, maps, all, probes)
			var wrong []string
			for k, w := range want {
				if got[k] != w {
					wrong = append(wrong, fmt.Sprintf("%s: plexus %v, policy-assistant %v", k, got[k], w))
				}
			}
			verdicts += len(want)
			if len(wrong) > 0 {
				slices.Sort(wrong)
				t.Errorf("%q: %d of %d verdicts differ, e.g.\n  %s", tc.Description, len(wrong), len(want), strings.Join(wrong[:min(len(wrong), 8)], "\n  "))
			}
		}
		if ok {
			compared++
		}
	}
	t.Logf("%d test cases compared (%d verdicts); skipped: %d with pod or namespace creation/deletion, %d with ipBlock peers", compared, verdicts, skippedActions, skippedIPBlock)
	if compared < 50 {
		t.Errorf("only %d cases compared", compared)
	}
}
