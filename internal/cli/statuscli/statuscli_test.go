package statuscli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const ns = "plexus-system"

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func setReady(t *testing.T, obj client.Object, conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: obj.GetGeneration()})
	if err := env.Client.Status().Update(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// The report reads a real API server: controllers by their Deployment and
// leader-election Lease (the lab has only Leases), objects by their Ready
// condition, per-node objects by whether their node applied them, LB
// Services by LB-IPAM's condition; a kind whose CRD is missing is left
// out. Healthy only when all of it is, and the problems are named.
func TestCollectAndRender(t *testing.T) {
	testenv.Require(t, env)
	ctx := t.Context()
	now := time.Now()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	lease := func(name string, renewed time.Time) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plexus-" + name}, Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(name + "-7d9f_1"), LeaseDurationSeconds: ptr.To[int32](15), RenewTime: &metav1.MicroTime{Time: renewed}}}
	}
	ipamLease, bgpLease := lease("ipam", now.Add(-2*time.Second)), lease("bgp", now.Add(-time.Minute))
	egressLease := lease("egressgateway", now.Add(-time.Second))
	// A controller turned off leaves its Lease released: it counts as disabled.
	l2Lease := lease("l2announcer", now.Add(-time.Minute))
	l2Lease.Spec.HolderIdentity = ptr.To("")
	lbDeploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plexus-lbipam"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](1),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "lbipam"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "lbipam"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}}},
	}}
	good := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{
		Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "198.18.100.0/24"}}}}
	bad := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{
		Blocks: []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "198.18.100.0/24"}}}}
	cn := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	egress := &nodesv1alpha1.Egress{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	// A policy of the (disabled) policy controller is not judged.
	cnp := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"namespace": "default", "name": "orphan"},
		"spec":     map[string]any{"endpointSelector": map[string]any{}, "ingress": []any{}}}}
	create(t, ipamLease, bgpLease, egressLease, l2Lease, lbDeploy, good, bad, cn, egress, svc, cnp)
	setReady(t, good, &good.Status.Conditions, "Ready", metav1.ConditionTrue, "Ready", "0 of 256 addresses in use")
	setReady(t, bad, &bad.Status.Conditions, "Ready", metav1.ConditionFalse, "PoolConflict", "Pool conflicts since CIDR '198.18.100.0/24' overlaps")
	setReady(t, svc, &svc.Status.Conditions, "cilium.io/IPAMRequestSatisfied", metav1.ConditionFalse, "out_of_ips", "All enabled pools ran out")

	r, err := Collect(ctx, env.Client, ns, now)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Render(&out, r); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Log("\n" + text)
	var lines []string // columns collapsed to single spaces
	for _, l := range strings.Split(text, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	text = strings.Join(lines, "\n")
	if r.Healthy() {
		t.Error("healthy with a stale Lease, an unready Deployment and failing objects")
	}
	for _, want := range []string{
		"ipam - ipam-7d9f_1 2s ago OK",
		"lbipam 0/1 - - NOT READY",
		"l2announcer - - - disabled",
		"egressgateway - egressgateway-7d9f_1 1s ago OK",
		"bgp - bgp-7d9f_1 1m0s ago NOT READY",
		"LB-IPAM CiliumLoadBalancerIPPool 1/2 1",
		"LB-IPAM Service 0/1 1",
		"Egress gateway Egress 0/1 1",
		"IPAM CiliumNode 0/1 1",
		"CiliumLoadBalancerIPPool bad: NotReady PoolConflict: Pool conflicts since",
		"Service default/web: NotReady out_of_ips: All enabled pools ran out",
		"Egress n1: Pending NotApplied: node has applied generation 0 of 1",
		"CiliumNode n1: Pending NoCondition",
		"controller bgp: lease held by bgp-7d9f_1, renewed 1m0s ago",
		"controller lbipam: deployment 0/1 ready",
		"Status: 6 not ready",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(text, "Service default/kubernetes") {
		t.Error("a ClusterIP Service LB-IPAM does not serve is counted")
	}
	if strings.Contains(text, "CiliumNetworkPolicy") {
		t.Error("a policy is judged while the policy controller is not installed")
	}

	// Everything put right: healthy.
	bgpLease.Spec.RenewTime = &metav1.MicroTime{Time: now}
	lbDeploy.Status.ReadyReplicas, lbDeploy.Status.Replicas = 1, 1
	for _, err := range []error{env.Client.Update(ctx, bgpLease), env.Client.Status().Update(ctx, lbDeploy), env.Client.Delete(ctx, bad)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	egress.Status.ObservedGeneration = egress.Generation
	if err := env.Client.Status().Update(ctx, egress); err != nil {
		t.Fatal(err)
	}
	setReady(t, cn, &cn.Status.Conditions, "Ready", metav1.ConditionTrue, "Allocated", "")
	setReady(t, svc, &svc.Status.Conditions, "cilium.io/IPAMRequestSatisfied", metav1.ConditionTrue, "satisfied", "")
	if r, err = Collect(ctx, env.Client, ns, now); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Render(&out, r); err != nil {
		t.Fatal(err)
	}
	if !r.Healthy() || !strings.Contains(out.String(), "Status: OK") {
		t.Errorf("not healthy once put right:\n%s", out.String())
	}
}
