package reconciler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// A plan is computed again only when its inputs change: the controller's
// own status write on a policy (a new resourceVersion, the same
// generation) changes nothing, a spec change recompiles but keeps the
// view of the pods, and a pod's change renews both.
func TestInputsKey(t *testing.T) {
	base := func() *world {
		w := &world{}
		w.cnps.Items = []ciliumv2.CiliumNetworkPolicy{{ObjectMeta: metav1.ObjectMeta{UID: "p1", ResourceVersion: "10", Generation: 1}}}
		w.pods.Items = []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{UID: "pod1", ResourceVersion: "5"}}}
		return w
	}
	before := inputsKey(base())

	status := base()
	status.cnps.Items[0].ResourceVersion = "11"
	if got := inputsKey(status); got != before {
		t.Errorf("a status write changed the key: %+v, was %+v", got, before)
	}
	spec := base()
	spec.cnps.Items[0].ResourceVersion, spec.cnps.Items[0].Generation = "11", 2
	if got := inputsKey(spec); got.all == before.all || got.pods != before.pods {
		t.Errorf("a spec change: %+v, was %+v; want a new key with the same view of the pods", got, before)
	}
	pod := base()
	pod.pods.Items[0].ResourceVersion = "6"
	if got := inputsKey(pod); got.all == before.all || got.pods == before.pods {
		t.Errorf("a pod change: %+v, was %+v; want both keys new", got, before)
	}
}
