package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
	"github.com/plexus-net/plexus/test/netnstest"
)

// The policy truth table on the lab, in native routing and in VXLAN:
// each case applies policies (CiliumNetworkPolicy, clusterwide, or
// Kubernetes NetworkPolicy), waits until every probe gives the expected
// verdict (real TCP, UDP and ICMP from pod namespaces, backends on both
// nodes so that each rule is crossed on one node and between nodes), and
// removes them again; egress through a Service's ClusterIP is judged by
// its backends. Enforcement modes and host policies are not in the table
// (see docs/policy.md).
func TestPolicyTable(t *testing.T) {
	t.Run("native", func(t *testing.T) { policyTable(t, "native") })
	t.Run("vxlan", func(t *testing.T) { policyTable(t, "vxlan") })
}

// probe is one connection attempt and the verdict expected.
type probe struct {
	from string // a pod's network namespace
	name string // for messages: "client→backend-1"
	to   string // address
	kind string // tcp (HTTP on 8080), plain (TCP 9090), udp (8081), icmp, ext (the external host's HTTP on 8080), connect (a TCP connection to "to", an address:port)
	want bool
}

func (p probe) String() string {
	verdict := "denied"
	if p.want {
		verdict = "allowed"
	}
	return fmt.Sprintf("%s %s %s", p.name, p.kind, verdict)
}

// run tries the probe once: whether the connection got its answer.
func (p probe) run() bool {
	var ok bool
	_ = netnstest.Do(p.from, func() error {
		switch p.kind {
		case "icmp":
			return nil // below: ping runs as a process
		case "connect":
			c, err := net.DialTimeout("tcp4", p.to, time.Second)
			if err == nil {
				ok = true
				_ = c.Close()
			}
			return nil
		case "udp":
			c, err := net.DialTimeout("udp4", net.JoinHostPort(p.to, "8081"), time.Second)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 16)
			if _, err := io.WriteString(c, "policy"); err != nil {
				return err
			}
			n, err := c.Read(buf)
			ok = err == nil && string(buf[:n]) == "policy"
			return nil
		}
		port, ask, answer := "8080", "GET / HTTP/1.0\r\n\r\n", "HTTP/1."
		if p.kind == "plain" {
			port, ask, answer = "9090", "", "ok"
		}
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(p.to, port), time.Second)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if ask != "" {
			if _, err := io.WriteString(c, ask); err != nil {
				return err
			}
		}
		got, _ := io.ReadAll(io.LimitReader(c, 64))
		ok = strings.HasPrefix(string(got), answer)
		return nil
	})
	if p.kind == "icmp" {
		_, err := netnstest.Exec(p.from, "ping", "-c1", "-W1", p.to)
		ok = err == nil
	}
	return ok
}

// table runs the cases of one lab: each applies its policies, checks its
// probes, deletes the policies and waits for the open baseline again.
type table struct {
	l    *labtest.Lab
	open []probe
}

func (tb table) check(t *testing.T, policies string, probes ...probe) {
	t.Helper()
	objs := applyPolicies(t, tb.l, policies)
	checkProbes(t, probes)
	for _, o := range objs {
		if err := tb.l.Cilium.Delete(context.Background(), o); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Errorf("deleting %s: %v", o.GetName(), err)
		}
	}
	if len(objs) > 0 {
		checkProbes(t, tb.open) // back to no policy before the next case
	}
}

func policyTable(t *testing.T, routing string) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: routing, IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus", Policy: true})
	ctx := context.Background()
	if _, err := l.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"team": "other"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	backends := labtest.Deploy(t, l, labtest.Echo("backend", 2, nil))
	frontend := labtest.Deploy(t, l, labtest.Echo("frontend", 1, nil))[0]
	cl := labtest.Deploy(t, l, labtest.Echo("client", 1, nil))[0]
	strangerDeploy := labtest.Echo("stranger", 1, nil)
	strangerDeploy.Namespace = "other"
	stranger := labtest.Deploy(t, l, strangerDeploy)[0]
	ext := l.ExternalServer(t, 1)
	extIP := func(i int) string { return strings.TrimSuffix(strings.TrimPrefix(ext[i], "http://"), ":8080/") }
	segment := netip.PrefixFrom(l.ClientIP(), 24).Masked()

	b1, b2 := &backends[0], &backends[1]
	pr := func(from *corev1.Pod, to *corev1.Pod, kind string, want bool) probe {
		return probe{from: l.PodNetns(from), name: from.Labels["app"] + "→" + to.Name + "@" + to.Spec.NodeName, to: to.Status.PodIP, kind: kind, want: want}
	}
	toExt := func(from *corev1.Pod, i int, want bool) probe {
		return probe{from: l.PodNetns(from), name: fmt.Sprintf("%s→external-%d", from.Labels["app"], i), to: extIP(i), kind: "ext", want: want}
	}
	open := []probe{
		pr(&cl, b1, "tcp", true), pr(&cl, b2, "tcp", true), pr(&cl, b1, "plain", true), pr(&cl, b2, "udp", true),
		pr(&cl, b1, "icmp", true), pr(&stranger, b2, "tcp", true), pr(b1, &cl, "tcp", true), toExt(&cl, 0, true),
	}
	tb := table{l: l, open: open}
	t.Run("NP01_NoPolicyAllowsAll", func(t *testing.T) { tb.check(t, "", open...) })
	t.Run("NP02_NP03_NP05_IngressFromFrontendOn8080", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-from-frontend, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`,
			pr(&frontend, b1, "tcp", true), pr(&frontend, b2, "tcp", true),
			pr(&frontend, b1, "plain", false), pr(&frontend, b2, "udp", false), pr(&frontend, b1, "icmp", false),
			pr(&cl, b1, "tcp", false), pr(&cl, b2, "tcp", false),
			pr(b1, &cl, "tcp", true), pr(b2, &cl, "plain", true)) // NP-03: egress untouched
	})
	t.Run("NP04_EgressClosedRepliesPass", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-closed, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
  egress: []
`,
			pr(&frontend, b1, "tcp", true), pr(&frontend, b2, "udp", true), pr(&frontend, b1, "icmp", true),
			pr(b1, &cl, "tcp", false), pr(b2, &frontend, "plain", false), pr(b1, &cl, "icmp", false))
	})
	t.Run("NP13_DenyWinsOverAllow", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-deny-client, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
`,
			pr(&frontend, b1, "tcp", true), pr(&stranger, b2, "plain", true),
			pr(&cl, b1, "tcp", false), pr(&cl, b2, "udp", false), pr(&cl, b1, "icmp", false))
	})
	t.Run("UDPAndICMPRules", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-udp-icmp, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8081", protocol: UDP}]}]
  - fromEndpoints: [{matchLabels: {app: client}}]
    icmps: [{fields: [{type: 8, family: IPv4}]}]
`,
			pr(&cl, b1, "udp", true), pr(&cl, b2, "icmp", true),
			pr(&cl, b1, "tcp", false), pr(&frontend, b2, "udp", false), pr(&frontend, b1, "icmp", false))
	})
	t.Run("PortRangeAndNamedPort", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-ports, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - toPorts: [{ports: [{port: "9000", endPort: 9100, protocol: TCP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-named-port, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: udp-echo, protocol: UDP}]
`,
			pr(&cl, b1, "plain", true), pr(&stranger, b2, "plain", true), // 9090 in 9000-9100
			pr(&cl, b1, "tcp", false), pr(&cl, b2, "udp", false),
			pr(&frontend, b1, "udp", true), // the named port, from the NetworkPolicy (NP-10: allows add up)
			pr(&frontend, b2, "tcp", false))
	})
	t.Run("EgressToNamedPort", func(t *testing.T) {
		// The port name is the backends' (plain: 9090); the client's node
		// cannot see their pods, the controller resolves it.
		tb.check(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-to-plain, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{port: plain}]
`,
			pr(&cl, b1, "plain", true), pr(&cl, b2, "plain", true),
			pr(&cl, b1, "tcp", false), pr(&cl, b2, "udp", false), pr(&cl, &frontend, "plain", false))
	})
	t.Run("NP09_NP22_NamespaceIsolation", func(t *testing.T) {
		tb.check(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-namespace, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: stranger-from-default-client, namespace: other}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}, podSelector: {matchLabels: {app: client}}}]
`,
			pr(&cl, b1, "tcp", true), pr(&frontend, b2, "udp", true),
			pr(&stranger, b1, "tcp", false), pr(&stranger, b2, "icmp", false),
			pr(&cl, &stranger, "tcp", true), pr(&frontend, &stranger, "tcp", false))
	})
	t.Run("NP11_ClusterwideAcrossNamespaces", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: stranger-only-client}
spec:
  endpointSelector: {matchLabels: {app: stranger, k8s:io.kubernetes.pod.namespace: other}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: default}}]
`,
			pr(&cl, &stranger, "tcp", true), pr(&cl, &stranger, "udp", true),
			pr(&frontend, &stranger, "tcp", false), pr(b1, &stranger, "plain", false),
			pr(&stranger, b1, "tcp", true)) // the policy selects the stranger only
	})
	t.Run("NP14_EntitiesWorldAndCluster", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-world-only, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-cluster-only, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEntities: [cluster]
`,
			toExt(&cl, 0, true), pr(&cl, b1, "tcp", false), pr(&cl, b2, "udp", false),
			pr(&frontend, b1, "tcp", true), pr(&frontend, &stranger, "udp", true), toExt(&frontend, 0, false))
	})
	// A Service in front of the backends: egress to its ClusterIP is
	// judged by the backends behind it (kube-proxy translates it after the
	// programs have seen the packet).
	svc, err := l.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "backend"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}, {Name: "plain", Port: 9090, TargetPort: intstr.FromInt32(9090)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	toSvc := func(from *corev1.Pod, kind string, want bool) probe {
		return probe{from: l.PodNetns(from), name: from.Labels["app"] + "→service/backend", to: svc.Spec.ClusterIP, kind: kind, want: want}
	}
	t.Run("NP21_ToServicesThroughClusterIP", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-to-backend-service, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toServices: [{k8sService: {serviceName: backend, namespace: default}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-to-stranger, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEndpoints: [{matchLabels: {app: stranger, k8s:io.kubernetes.pod.namespace: other}}]
`,
			toSvc(&cl, "tcp", true), pr(&cl, b2, "tcp", true), // the Service's backends on 8080, by address or by Service
			toSvc(&cl, "plain", false), pr(&cl, b1, "plain", false), pr(&cl, &stranger, "tcp", false),
			toSvc(&frontend, "tcp", false), pr(&frontend, &stranger, "tcp", true), // its egress reaches the stranger only
			toSvc(&stranger, "plain", true)) // not selected: open
	})
	// The nodes (kube-proxy's health port answers on each node address)
	// and the API server (through its ClusterIP, 10.96.0.1:443).
	nodeIP := map[string]string{}
	nodes, err := l.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nodeIP[n.Name] = a.Address
			}
		}
	}
	other := func(p *corev1.Pod) string {
		for name := range nodeIP {
			if name != p.Spec.NodeName {
				return name
			}
		}
		t.Fatal("the lab has one node")
		return ""
	}
	toNode := func(from *corev1.Pod, node string, want bool) probe {
		return probe{from: l.PodNetns(from), name: from.Labels["app"] + "→node/" + node, to: net.JoinHostPort(nodeIP[node], "10256"), kind: "connect", want: want}
	}
	toAPIServer := func(from *corev1.Pod, want bool) probe {
		return probe{from: l.PodNetns(from), name: from.Labels["app"] + "→kube-apiserver", to: "10.96.0.1:443", kind: "connect", want: want}
	}
	t.Run("NP14_EntitiesHostRemoteNodeAPIServer", func(t *testing.T) {
		tb.check(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-host-and-apiserver, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [host, kube-apiserver]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-remote-nodes, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toEntities: [remote-node]
`,
			toNode(&cl, cl.Spec.NodeName, true), toAPIServer(&cl, true), toNode(&cl, other(&cl), false), pr(&cl, b1, "tcp", false),
			toNode(&frontend, other(&frontend), true), toNode(&frontend, frontend.Spec.NodeName, false), toAPIServer(&frontend, false),
			toAPIServer(&stranger, true))
	})
	t.Run("NP15_CIDRWithExcept", func(t *testing.T) {
		tb.check(t, fmt.Sprintf(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-segment-but-one, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDRSet: [{cidr: %s, except: [%s/32]}]
`, segment, extIP(1)),
			toExt(&cl, 0, true), toExt(&cl, 1, false), pr(&cl, b1, "tcp", false))
	})
	if routing == "native" {
		// Host policies and the modes change the policy controller's
		// settings; once is enough, as they change what is compiled, not
		// how packets travel.
		hostPolicy(t, l, toNode, pr, &cl, &frontend, b1, nodeIP)
		enforcementModes(t, l, pr, func(from *corev1.Pod, want bool) probe { return toExt(from, 0, want) }, &cl, b1, b2)
	}
	if t.Failed() {
		l.DumpLogs()
	}
}

// hostPolicy checks NP-12 on the lab: with the host firewall on, a
// clusterwide policy with a nodeSelector guards the nodes themselves
// (here kube-proxy's health port): from a local pod (judged on its veth)
// and from outside the cluster (judged on the node's eth0); the pods'
// own traffic, which the nodes forward, is not the host's to judge. The
// policy admits the API server and the other nodes, as a host policy
// must not to cut the node off its control plane.
func hostPolicy(t *testing.T, l *labtest.Lab, toNode func(from *corev1.Pod, node string, want bool) probe,
	pr func(from, to *corev1.Pod, kind string, want bool) probe, cl, frontend, b1 *corev1.Pod, nodeIP map[string]string) {
	fromOutside := func(node string, want bool) probe {
		return probe{from: l.ClientNetns(), name: "outside→node/" + node, to: net.JoinHostPort(nodeIP[node], "10256"), kind: "connect", want: want}
	}
	restart := func(t *testing.T, on string) {
		if err := lab.RestartWithFlag(l.StateRoot, l.Options.Name, "", "plexus-policy-controller", "host-firewall", on, testLog{t}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("NP12_HostPolicy", func(t *testing.T) {
		restart(t, "true")
		defer restart(t, "false")
		objs := applyPolicies(t, l, `
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: nodes-health-port-from-client}
spec:
  nodeSelector: {}
  ingress:
  - fromEntities: [kube-apiserver, remote-node]
  - fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: default}}]
    toPorts: [{ports: [{port: "10256", protocol: TCP}]}]
`)
		checkProbes(t, []probe{
			toNode(cl, cl.Spec.NodeName, true), toNode(frontend, frontend.Spec.NodeName, false),
			fromOutside(cl.Spec.NodeName, false), fromOutside(frontend.Spec.NodeName, false),
			pr(cl, b1, "tcp", true), pr(frontend, b1, "plain", true)})
		l.EventuallyIn(t, time.Minute, "the host policy Ready (enforced on every node)", func() error {
			return readyCondition(l, objs[0])
		})
		for _, o := range objs {
			if err := l.Cilium.Delete(context.Background(), o); err != nil {
				t.Error(err)
			}
		}
		checkProbes(t, []probe{toNode(frontend, frontend.Spec.NodeName, true), fromOutside(cl.Spec.NodeName, true)})
	})
}

// readyCondition is nil once a policy's status has Ready=True for its
// generation.
func readyCondition(l *labtest.Lab, o *unstructured.Unstructured) error {
	u := o.DeepCopy()
	if err := l.Cilium.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
		return err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["observedGeneration"] == u.GetGeneration() && m["status"] == "True" {
			return nil
		}
	}
	return fmt.Errorf("not Ready for generation %d: %v", u.GetGeneration(), conds)
}

// enforcementModes checks NP-07 and NP-08 on the lab: with always, a pod
// no policy selects can neither send nor receive (its node's probes still
// reach it), and allows work as in default; with never, nothing is
// enforced, deny rules included. The controller is set back to default
// at the end.
func enforcementModes(t *testing.T, l *labtest.Lab, pr func(from, to *corev1.Pod, kind string, want bool) probe,
	toExt func(from *corev1.Pod, want bool) probe, cl, b1, b2 *corev1.Pod) {
	setMode := func(t *testing.T, mode string) {
		t.Helper()
		if err := lab.RestartWithFlag(l.StateRoot, l.Options.Name, "", "plexus-policy-controller", "policy-enforcement-mode", mode, testLog{t}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = lab.RestartWithFlag(l.StateRoot, l.Options.Name, "", "plexus-policy-controller", "policy-enforcement-mode", "default", testLog{t})
	})
	t.Run("NP07_EnforcementModeAlways", func(t *testing.T) {
		setMode(t, "always")
		checkProbes(t, []probe{pr(cl, b1, "tcp", false), pr(cl, b2, "icmp", false), pr(b1, cl, "plain", false), toExt(cl, false)})
		objs := applyPolicies(t, l, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-to-backend, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: backend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-from-client, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
`)
		// Both ends must allow: the client's egress and the backend's ingress.
		checkProbes(t, []probe{pr(cl, b1, "tcp", true), pr(cl, b2, "tcp", true), pr(cl, b1, "plain", false), pr(b2, cl, "tcp", false)})
		for _, o := range objs {
			if err := l.Cilium.Delete(context.Background(), o); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("NP08_EnforcementModeNever", func(t *testing.T) {
		setMode(t, "never")
		objs := applyPolicies(t, l, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-deny-all, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingressDeny:
  - fromEntities: [all]
  egress: []
`)
		// The probes count once the controller (in mode never) has
		// reported on the policy: before, they would pass anyway.
		l.EventuallyIn(t, 30*time.Second, "the deny policy's status", func() error {
			u := objs[0].DeepCopy()
			if err := l.Cilium.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["observedGeneration"] == u.GetGeneration() {
					return nil
				}
			}
			return fmt.Errorf("no Ready condition for generation %d yet: %v", u.GetGeneration(), conds)
		})
		checkProbes(t, []probe{pr(cl, b1, "tcp", true), pr(cl, b2, "udp", true), pr(b1, cl, "plain", true), toExt(b2, true)})
	})
}

// applyPolicies creates the YAML documents as unstructured objects, as
// kubectl would (so that empty lists such as `egress: []` stay).
func applyPolicies(t *testing.T, l *labtest.Lab, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("policy YAML: %v\n%s", err, doc)
		}
		if err := l.Cilium.Create(context.Background(), u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		out = append(out, u)
		t.Cleanup(func() {
			_ = l.Cilium.Delete(context.Background(), u, client.PropagationPolicy(metav1.DeletePropagationBackground))
		})
	}
	return out
}

// checkProbes waits until every probe gives its expected verdict (policy
// changes take effect within seconds), then reports those that never did.
func checkProbes(t *testing.T, probes []probe) {
	t.Helper()
	var wrong []string
	deadline := time.Now().Add(45 * time.Second)
	for {
		wrong = wrong[:0]
		for _, p := range probes {
			if p.run() != p.want {
				wrong = append(wrong, p.String())
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(wrong) > 0 {
		t.Error(errors.New("these probes disagree with the table: " + strings.Join(wrong, "; ")))
	}
}
