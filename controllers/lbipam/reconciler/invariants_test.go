package reconciler_test

// The invariants of the LB-IPAM issue (a satisfied allocation never moves;
// two Services never hold one address unless they share it), GitOps safety,
// and admission of bad pools.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

func addresses(h *harness, names ...string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		out[n] = ingressOf(h.get(n))
	}
	return out
}

func TestInvariant_StableAcrossPoolEditsAndDeletes(t *testing.T) {
	h := newHarness(t)
	p := h.pool("p", []string{"20.0.10.10-20.0.10.20"})
	names := []string{"s0", "s1", "s2", "s3", "s4"}
	for _, n := range names {
		h.service(n)
	}
	for _, n := range names {
		h.expect(n, "*", "satisfied")
	}
	before := addresses(h, names...)

	h.update(p, func() { p.Spec.Blocks = toBlocks([]string{"20.0.10.0/24"}) }) // widened
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsTotal: "*/*/256"})
	h.update(p, func() { p.Spec.Blocks = toBlocks([]string{"20.0.10.10-20.0.10.14"}) }) // shrunk around the five
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsTotal: "*/*/5"})
	if after := addresses(h, names...); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("addresses moved on pool edits: %v -> %v", before, after)
	}
	h.delete(h.get("s2")) // another Service deleted
	h.service("later")
	h.expect("later", before["s2"], "satisfied")
	delete(before, "s2")
	if after := addresses(h, "s0", "s1", "s3", "s4"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("addresses moved when another Service was deleted: %v -> %v", before, after)
	}
	// Shrinking out from under a Service moves only that one, to a free
	// address the pool still has.
	h.update(p, func() { p.Spec.Blocks = toBlocks([]string{"20.0.10.11-20.0.10.15"}) })
	h.expect("s0", "20.0.10.15", "satisfied")
}

func TestInvariant_RestartRestoresBeforeAllocating(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/29"})
	for _, n := range []string{"a", "b", "c"} {
		h.service(n)
	}
	h.expect("a", "20.0.10.0", "satisfied")
	h.expect("b", "20.0.10.1", "satisfied")
	h.expect("c", "20.0.10.2", "satisfied")
	h.delete(h.get("a")) // frees .0 for whoever comes next
	h.eventually("a gone", func() error {
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "a"}, &corev1.Service{}); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	h.stop()
	// While down: a new Service, and a pool created before every other one is
	// no help to the restored ones. A controller that allocated before
	// restoring would hand .1 or .2 out again.
	for _, n := range []string{"new1", "new2", "new3"} {
		h.service(n)
	}
	before := addresses(h, "b", "c")
	h.startController()
	got := map[string]bool{}
	for _, n := range []string{"new1", "new2", "new3"} {
		got[ingressOf(h.expect(n, "*", "satisfied"))] = true
	}
	if after := addresses(h, "b", "c"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("restart moved addresses: %v -> %v", before, after)
	}
	if got["20.0.10.1"] || got["20.0.10.2"] || len(got) != 3 {
		t.Fatalf("new Services got %v; held addresses must not be handed out again", got)
	}
}

// A restart and a resync write nothing when nothing changed, and the
// controller never writes a spec.
func TestGitOps_RestartWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24", "2004::/64"})
	h.pool("z-conflicting", []string{"20.0.10.0/25"})
	h.service("a")
	h.service("b", dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	h.service("c", annotated("lbipam.cilium.io/ips", "99.9.9.9"))
	h.expect("a", "20.0.10.0", "satisfied")
	h.expect("b", "20.0.10.1,2004::", "satisfied")
	h.expect("c", "", "no_pool")
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/3"})
	h.expectPool("z-conflicting", map[string]string{ciliumv2.PoolConditionConflict: "True/*/*"})
	versions := func() string {
		var out []string
		for _, n := range []string{"a", "b", "c"} {
			s := h.get(n)
			out = append(out, n+"="+s.ResourceVersion)
		}
		for _, n := range []string{"p", "z-conflicting"} {
			p := h.getPool(n)
			out = append(out, fmt.Sprintf("%s=%s/gen%d", n, p.ResourceVersion, p.Generation))
		}
		return strings.Join(out, " ")
	}
	before := versions()
	h.stop()
	h.startController()
	// A new Service is a barrier: once it is served, the restarted controller
	// has made at least one full pass over everything.
	h.service("barrier")
	h.expect("barrier", "20.0.10.2", "satisfied")
	h.delete(h.get("barrier"))
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/3"})
	pNow := h.getPool("p")
	after := versions()
	// Only pool p's counts changed (barrier came and went); compare the rest.
	trim := func(s string) string {
		var keep []string
		for _, f := range strings.Fields(s) {
			if !strings.HasPrefix(f, "p=") {
				keep = append(keep, f)
			}
		}
		return strings.Join(keep, " ")
	}
	if trim(after) != trim(before) {
		t.Fatalf("restart wrote objects that did not change:\nbefore %s\nafter  %s", before, after)
	}
	if pNow.Generation != 1 || h.getPool("z-conflicting").Generation != 1 {
		t.Fatalf("a pool's spec was written (generation %d)", pNow.Generation)
	}
}

func TestAdmission_PoolValidation(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		blocks []ciliumv2.CiliumLoadBalancerIPPoolIPBlock
		want   string
	}{
		{"bad-cidr", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "10.0.0.0/33"}}, "spec.blocks[0].cidr: Invalid value"},
		{"not-cidr", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "banana"}}, "cidr must be an IPv4 or IPv6 prefix"},
		{"bad-start", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Start: "1.2.3.256"}}, "spec.blocks[0].start"},
		{"reversed", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Start: "20.0.20.200", Stop: "20.0.20.100"}}, "start must not be after stop"},
		{"mixed", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Start: "20.0.20.1", Stop: "2004::1"}}, "same IP family"},
		{"both", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Cidr: "10.0.0.0/24", Start: "10.0.0.1"}}, "either cidr or start"},
		{"neither", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{}}, "either cidr or start"},
		{"stop-only", []ciliumv2.CiliumLoadBalancerIPPoolIPBlock{{Stop: "10.0.0.1"}}, "stop needs start"},
		{"no-blocks", nil, "spec.blocks"},
	}
	for _, tc := range cases {
		p := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{Blocks: tc.blocks}}
		err := h.c.Create(h.ctx, p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	bad := &ciliumv2.CiliumLoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "enum"}, Spec: ciliumv2.CiliumLoadBalancerIPPoolSpec{Blocks: toBlocks([]string{"10.0.0.0/24"}), AllowFirstLastIPs: "maybe"}}
	if err := h.c.Create(h.ctx, bad); err == nil || !strings.Contains(err.Error(), "spec.allowFirstLastIPs") {
		t.Errorf("allowFirstLastIPs maybe: got %v", err)
	}
	// IPv6 order cannot be checked in CEL: the controller reports it.
	h.pool("v6-reversed", []string{"2004::20-2004::1", "20.0.10.0/24"})
	h.expectPool("v6-reversed", map[string]string{"Ready": "False/InvalidBlock/*", ciliumv2.PoolConditionIPsTotal: "*/*/256"})
	h.expectEvent("v6-reversed", "InvalidBlock", "start 2004::20 is after stop 2004::1")
	// A selector the schema admits but that is not valid.
	h.pool("bad-selector", []string{"20.0.11.0/24"}, selecting(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "In"}}}))
	h.expectPool("bad-selector", map[string]string{"Ready": "False/InvalidServiceSelector/*"})
}

// v2alpha1 manifests apply unchanged and are the same objects as v2.
func TestV2alpha1Served(t *testing.T) {
	h := newHarness(t)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumLoadBalancerIPPool",
		"metadata": map[string]any{"name": "old-style"},
		"spec":     map[string]any{"blocks": []any{map[string]any{"cidr": "20.0.10.0/24"}}},
	}}
	if err := h.c.Create(h.ctx, u); err != nil {
		t.Fatal(err)
	}
	h.service("s")
	h.expect("s", "20.0.10.0", "satisfied")
	h.expectPool("old-style", map[string]string{"Ready": "True/*/*"})
}

// serverTable asks the API server for the kubectl table of a list and returns
// rows by name, plus "_columns".
func serverTable(t *testing.T, path string) map[string][]string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath(path).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, c := range table.ColumnDefinitions {
		out["_columns"] = append(out["_columns"], c.Name)
	}
	for _, r := range table.Rows {
		var cells []string
		for _, c := range r.Cells {
			cells = append(cells, fmt.Sprint(c))
		}
		out[cells[0]] = cells
	}
	return out
}
