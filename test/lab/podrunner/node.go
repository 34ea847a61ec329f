package podrunner

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// NodeCapacity is what every lab node reports: enough for the scheduler to
// place a few hundred small pods, nothing is enforced.
var NodeCapacity = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("4"),
	corev1.ResourceMemory: resource.MustParse("8Gi"),
	corev1.ResourcePods:   resource.MustParse("110"),
}

// registerNode creates the Node (as the node itself: NodeRestriction lets a
// node create only its own) and reports its status.
func (r *Runner) registerNode(ctx context.Context) error {
	nodes := r.client.CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: r.cfg.Node,
		Labels: map[string]string{
			"kubernetes.io/hostname": r.cfg.Node,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
		},
	}}
	var err error
	for attempt := 0; attempt < 60; attempt++ {
		_, err = nodes.Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			err = nil
			break
		}
		r.log.Info("registering node, API server not ready", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", r.cfg.Node, err)
	}
	if err := r.updateNodeStatus(ctx); err != nil {
		return err
	}
	return r.renewLease(ctx)
}

// heartbeat renews the node Lease every LeaseInterval and refreshes the
// Ready condition every StatusInterval, as the kubelet does; while the node
// is not Ready (no CNI config yet) it checks every 2 s, so the node turns
// Ready as soon as its network is configured.
func (r *Runner) heartbeat(ctx context.Context) {
	lease := time.NewTicker(r.cfg.LeaseInterval)
	check := time.NewTicker(2 * time.Second)
	defer lease.Stop()
	defer check.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			if err := r.renewLease(ctx); err != nil {
				r.log.Error("renewing node lease", "err", err)
			}
		case <-check.C:
			_, cniErr := r.cfg.CNI.LoadConfList()
			if time.Since(last) < r.cfg.StatusInterval && (cniErr == nil) == r.reportedReady.Load() {
				continue
			}
			if err := r.updateNodeStatus(ctx); err != nil {
				r.log.Error("updating node status", "err", err)
				continue
			}
			last = time.Now()
		}
	}
}

func (r *Runner) renewLease(ctx context.Context) error {
	leases := r.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, r.cfg.Node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, nerr := r.client.CoreV1().Nodes().Get(ctx, r.cfg.Node, metav1.GetOptions{})
		if nerr != nil {
			return nerr
		}
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.cfg.Node, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(r.cfg.Node), LeaseDurationSeconds: ptr.To(int32(40)), RenewTime: &now},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// updateNodeStatus writes addresses, capacity and conditions. The node is
// Ready when its CNI config is present, as a kubelet's runtime reports
// NetworkReady.
func (r *Runner) updateNodeStatus(ctx context.Context) error {
	node, err := r.client.CoreV1().Nodes().Get(ctx, r.cfg.Node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "lab pod runner is posting ready status"}
	if _, err := r.cfg.CNI.LoadConfList(); err != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "NetworkPluginNotReady", "network plugin not ready: "+err.Error()
	}
	want := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
		ready,
	}
	var conds []corev1.NodeCondition
	for _, c := range node.Status.Conditions {
		if !isOwnCondition(c.Type) {
			conds = append(conds, c) // e.g. NetworkUnavailable, owned by the network plugin
		}
	}
	for _, c := range want {
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		for _, old := range node.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		conds = append(conds, c)
	}
	node.Status.Conditions = conds
	r.reportedReady.Store(ready.Status == corev1.ConditionTrue)
	node.Status.Addresses = nil
	for _, ip := range r.cfg.nodeIPs() {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: r.cfg.Node})
	node.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{}
	if r.cfg.Serving.enabled() {
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = KubeletPort
	}
	node.Status.Capacity = NodeCapacity.DeepCopy()
	node.Status.Allocatable = NodeCapacity.DeepCopy()
	node.Status.NodeInfo = corev1.NodeSystemInfo{
		MachineID: r.cfg.Node, SystemUUID: r.cfg.Node, BootID: r.cfg.Node,
		KernelVersion: "lab", OSImage: "Plexus lab", ContainerRuntimeVersion: "plexus-lab://1",
		KubeletVersion: "v1.36.3", OperatingSystem: "linux", Architecture: "amd64",
	}
	_, err = r.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func isOwnCondition(t corev1.NodeConditionType) bool {
	switch t {
	case corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure:
		return true
	}
	return false
}
