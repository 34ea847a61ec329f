package labtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Namespace is where the workloads of lab tests run.
const Namespace = "default"

// Echo is a Deployment of the lab's echo server spread evenly over the nodes.
func Echo(name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	field := func(n, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
					Containers: []corev1.Container{{
						Name: "echo", Image: "plexus.dev/lab/echo:e2e",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "plain", ContainerPort: 9090},
							{Name: "udp-echo", ContainerPort: 8081, Protocol: corev1.ProtocolUDP}},
						ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
						Env:            []corev1.EnvVar{field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"), field("NODE_NAME", "spec.nodeName"), field("POD_IP", "status.podIP")},
					}},
				},
			},
		},
	}
}

// Deploy creates d (in its namespace) and waits until its replicas are
// Ready, then returns them.
func Deploy(t testing.TB, l *Lab, d *appsv1.Deployment) []corev1.Pod {
	t.Helper()
	if _, err := l.Client.AppsV1().Deployments(d.Namespace).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	l.EventuallyIn(t, 3*time.Minute, d.Name+" Ready", func() error {
		var err error
		if pods, err = l.ReadyPods(d.Namespace, "app="+d.Name); err != nil {
			return err
		}
		if len(pods) != int(*d.Spec.Replicas) {
			return fmt.Errorf("%d of %d pods Ready", len(pods), *d.Spec.Replicas)
		}
		return nil
	})
	return pods
}

// Service puts a ClusterIP Service in front of the pods labelled app=name.
func Service(t testing.TB, l *Lab, name string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	svc, err := l.Client.CoreV1().Services(Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// ReachAll checks that every pod of from reaches every pod of to, the answer
// coming from the pod addressed and seeing the client's own pod address (no
// NAT between pods).
func ReachAll(t *testing.T, l *Lab, from, to []corev1.Pod) {
	t.Helper()
	ReachAllOver(t, l, from, to, false)
}

// ReachAllOver is ReachAll over the pods' IPv6 (v6) or IPv4 addresses.
func ReachAllOver(t *testing.T, l *Lab, from, to []corev1.Pod, v6 bool) {
	t.Helper()
	for i := range from {
		for j := range to {
			src, dst := &from[i], &to[j]
			srcIP, dstIP := PodIP(src, v6), PodIP(dst, v6)
			if srcIP == "" || dstIP == "" {
				t.Errorf("%s or %s has no address of the family (IPv6: %v): %v, %v", src.Name, dst.Name, v6, src.Status.PodIPs, dst.Status.PodIPs)
				continue
			}
			a, err := fetchConverged(l, src, "http://"+HostPort(dstIP, 8080)+"/")
			if err != nil {
				t.Errorf("%s (%s) -> %s (%s) at %s: %v", src.Name, src.Spec.NodeName, dst.Name, dst.Spec.NodeName, dstIP, err)
				continue
			}
			// "10.0.0.5:" or "[fd00::5]:", whatever the client's port.
			if client := strings.TrimSuffix(HostPort(srcIP, 0), "0"); a.Pod != dst.Name || a.Node != dst.Spec.NodeName || !strings.HasPrefix(a.ClientAddr, client) {
				t.Errorf("%s -> %s: answer %+v; want %s on %s seeing client %s", src.Name, dst.Name, a, dst.Name, dst.Spec.NodeName, srcIP)
			}
		}
	}
}

// PodIP is the pod's address of one family (IPv6 when v6), "" if it has
// none.
func PodIP(p *corev1.Pod, v6 bool) string {
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is6() == v6 {
			return ip.IP
		}
	}
	return ""
}

// Convergence is how long a new pod's address may take to become routable
// from other nodes after the pod is Ready: a pod is Ready once its own node
// has wired it, while the other nodes' datapath plugins learn a new node
// CIDR from its CiliumNode (multi-pool CIDRs are allocated on demand, as the
// pod arrives).
const Convergence = 10 * time.Second

// fetchConverged retries a failing request until Convergence has passed.
func fetchConverged(l *Lab, from *corev1.Pod, url string) (Answer, error) {
	deadline := time.Now().Add(Convergence)
	for {
		a, err := l.Fetch(from, url)
		if err == nil || time.Now().After(deadline) {
			return a, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// HostPort joins an address and a port, bracketing IPv6 addresses.
func HostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// NodesOf lists the nodes the pods run on, sorted.
func NodesOf(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		if !slices.Contains(out, p.Spec.NodeName) {
			out = append(out, p.Spec.NodeName)
		}
	}
	slices.Sort(out)
	return out
}

// ReachesAllNodesThrough checks that requests from pod to svc's ClusterIP
// (through kube-proxy) are answered by pods on n different nodes.
func ReachesAllNodesThrough(t *testing.T, l *Lab, from *corev1.Pod, svc *corev1.Service, n int) {
	t.Helper()
	seen := map[string]bool{}
	l.Eventually(time.Minute, fmt.Sprintf("answers from %d nodes through ClusterIP %s", n, svc.Spec.ClusterIP), func() error {
		a, err := l.Fetch(from, "http://"+HostPort(svc.Spec.ClusterIP, 80)+"/")
		if err != nil {
			return err
		}
		seen[a.Node] = true
		if len(seen) < n {
			return fmt.Errorf("answers so far from %v", seen)
		}
		return nil
	})
}

// LabelNode sets a label on a Node, or removes it when value is "", with
// a merge patch: a read-modify-write would race the node's heartbeats.
func (l *Lab) LabelNode(t testing.TB, node, key, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, key, v)
	if _, err := l.Client.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
