package reconciler

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-net/plexus/internal/operator"
)

// The trimmed pod in the controller's cache (operator.TrimPods) gives the
// planner exactly what the whole pod would.
func TestTrimPodKeepsWhatThePlannerReads(t *testing.T) {
	now := metav1.Now()
	for _, p := range []*corev1.Pod{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "x"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}, Annotations: map[string]string{"big": "yes"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.5",
				PodIPs: []corev1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}}},
		},
		{ObjectMeta: metav1.ObjectMeta{Name: "h", Namespace: "kube-system", UID: "u2"},
			Spec: corev1.PodSpec{NodeName: "n1", HostNetwork: true}, Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.0.11"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default", UID: "u3", DeletionTimestamp: &now},
			Spec: corev1.PodSpec{NodeName: "n2"}, Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.1.5"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "f", Namespace: "default", UID: "u4"},
			Spec: corev1.PodSpec{NodeName: "n2"}, Status: corev1.PodStatus{Phase: corev1.PodFailed, PodIP: "10.0.1.6"}},
	} {
		trimmed, err := operator.TrimPod(p)
		if err != nil {
			t.Fatal(err)
		}
		tp := trimmed.(*corev1.Pod)
		want, wantOK := toPod(p)
		got, gotOK := toPod(tp)
		if gotOK != wantOK || !reflect.DeepEqual(got, want) {
			t.Errorf("pod %s: planner sees %+v (%v) from the trimmed pod, %+v (%v) from the whole one", p.Name, got, gotOK, want, wantOK)
		}
		if len(tp.ManagedFields) != 0 || len(tp.Spec.Containers) != 0 || len(tp.Annotations) != 0 {
			t.Errorf("pod %s: not trimmed: %+v", p.Name, tp)
		}
	}
	if out, _ := operator.TrimPod("tombstone"); out != "tombstone" {
		t.Error("a non-pod was changed")
	}
}
