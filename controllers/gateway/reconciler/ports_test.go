package reconciler

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// A released proxy port is reused last: its listener may still be draining
// on the proxies when another load balancer would take it.
func TestProxyPortsReuseReleasedPortsLast(t *testing.T) {
	p := proxyPorts{First: 10000, Last: 10002}
	a, b, c := types.NamespacedName{Namespace: "x", Name: "a"}, types.NamespacedName{Namespace: "x", Name: "b"}, types.NamespacedName{Namespace: "x", Name: "c"}
	got, errs := p.plan(nil, map[types.NamespacedName][]int32{a: {80}})
	if got[servicePort{a, 80}] != 10000 || len(errs) > 0 {
		t.Fatalf("first plan %v %v", got, errs)
	}
	// a goes, b comes: b does not get a's port.
	if got, _ = p.plan(nil, map[types.NamespacedName][]int32{b: {80}}); got[servicePort{b, 80}] != 10001 {
		t.Errorf("b got %d, want 10001", got[servicePort{b, 80}])
	}
	// The range wraps around once the end is reached.
	got, _ = p.plan(nil, map[types.NamespacedName][]int32{b: {80}, c: {80, 443}})
	if got[servicePort{b, 80}] != 10001 || got[servicePort{c, 80}] != 10002 || got[servicePort{c, 443}] != 10000 {
		t.Errorf("plan %v", got)
	}
	if _, errs = p.plan(nil, map[types.NamespacedName][]int32{b: {80}, c: {80, 443, 8443}}); errs[c] == nil {
		t.Error("a full range gave no error")
	}
}
