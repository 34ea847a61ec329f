package reconciler

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// CacheOptions returns the cache settings of the controller's manager:
// Secrets are watched only in secretNamespace (so a namespaced Role is
// enough) and kept without their values (only the presence of the password
// key matters here); Nodes are kept with just their labels and addresses,
// the only parts the plan reads.
func CacheOptions(secretNamespace string) func(*ctrl.Options) {
	return func(o *ctrl.Options) {
		if o.Cache.ByObject == nil {
			o.Cache.ByObject = map[client.Object]cache.ByObject{}
		}
		o.Cache.ByObject[&corev1.Secret{}] = cache.ByObject{
			Namespaces: map[string]cache.Config{secretNamespace: {}},
			Transform:  trimSecret,
		}
		o.Cache.ByObject[&corev1.Node{}] = cache.ByObject{Transform: trimNode}
	}
}

// trimSecret keeps a Secret's identity and the names of its keys.
func trimSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil // e.g. a deletion tombstone
	}
	keys := map[string][]byte{}
	for k := range s.Data {
		keys[k] = nil
	}
	for k := range s.StringData {
		keys[k] = nil
	}
	return &corev1.Secret{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, UID: s.UID,
			ResourceVersion: s.ResourceVersion, DeletionTimestamp: s.DeletionTimestamp},
		Data: keys,
	}, nil
}

// trimNode keeps a Node's identity, labels and addresses.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion,
			Labels: n.Labels, DeletionTimestamp: n.DeletionTimestamp},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}

// nodeChanged lets through Node updates that can change the plan (labels
// select nodes, the IPv4 address is the default router ID), not the status
// updates a kubelet makes all the time.
var nodeChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, okOld := e.ObjectOld.(*corev1.Node)
	n, okNew := e.ObjectNew.(*corev1.Node)
	if !okOld || !okNew {
		return true
	}
	return !maps.Equal(o.Labels, n.Labels) || !slices.Equal(o.Status.Addresses, n.Status.Addresses) ||
		(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
}}
