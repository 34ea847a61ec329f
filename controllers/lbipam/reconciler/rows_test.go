package reconciler_test

// Tests named after the LB-IPAM checklist rows of the spec (L1…L43), each run
// against a real API server with the real reconciler.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
	"github.com/plexus-net/plexus/controllers/lbipam/reconciler"
)

func TestL1_L2_DormantUntilFirstPool(t *testing.T) {
	h := newHarness(t)
	h.service("web")
	h.consistently("L1: no pool, no address and no condition", func() error {
		if s := h.get("web"); ingressOf(s) != "" || len(s.Status.Conditions) != 0 {
			return fmt.Errorf("status touched: %+v", s.Status)
		}
		return nil
	})
	first := h.pool("first", []string{"20.0.10.0/24"})
	h.expect("web", "20.0.10.0", "satisfied") // L2, L3, L19
	// Deleting the last pool releases the address and says so.
	h.delete(first)
	h.expect("web", "", "no_pool")
}

func TestL3_L4_L5_Blocks(t *testing.T) {
	h := newHarness(t)
	h.pool("cidr", []string{"20.0.10.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"pool": "cidr"}}))
	h.pool("range", []string{"20.0.20.100-20.0.20.200"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"pool": "range"}}))
	h.pool("both", []string{"20.0.30.0/24", "2004::/64"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"pool": "both"}}))
	h.service("c", labelled("pool", "cidr"))
	h.service("r1", labelled("pool", "range"))
	h.service("r2", labelled("pool", "range"))
	h.service("v6", labelled("pool", "both"), dualStack(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))
	h.service("ds", labelled("pool", "both"), dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	h.expect("c", "20.0.10.0", "satisfied")
	h.expect("r1", "20.0.20.100", "satisfied")
	h.expect("r2", "20.0.20.101", "satisfied")
	// ds and v6 share the IPv6 block: which of them comes first depends on
	// whether they were created in the same second (then name order).
	ds := ingressOf(h.expect("ds", "*,*", "satisfied"))
	v6 := ingressOf(h.expect("v6", "*", "satisfied"))
	if !slices.Contains([]string{"20.0.30.0,2004::", "20.0.30.0,2004::1"}, ds) || strings.HasSuffix(ds, ","+v6) || !slices.Contains([]string{"2004::", "2004::1"}, v6) {
		t.Errorf("dual-stack got %s and IPv6-only got %s; want 20.0.30.0 plus 2004:: and 2004::1 between them", ds, v6)
	}
}

func TestL6_L7_L8_L9_FirstLastAndCounts(t *testing.T) {
	h := newHarness(t)
	no := func(p *ciliumv2.CiliumLoadBalancerIPPool) { p.Spec.AllowFirstLastIPs = ciliumv2.AllowFirstLastIPsNo }
	h.pool("default", []string{"10.0.0.0/30"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"p": "default"}}))
	h.pool("reserve", []string{"10.0.1.0/30", "10.0.2.0/31", "10.0.3.9/32", "10.0.4.10-10.0.4.11"}, no, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"p": "reserve"}}))
	h.pool("counted", []string{"10.0.10.0/24"}, no, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"p": "counted"}}))
	h.expectPool("counted", map[string]string{ // L9 before any allocation
		ciliumv2.PoolConditionIPsTotal: "Unknown/noreason/254", ciliumv2.PoolConditionIPsAvailable: "Unknown/noreason/254", ciliumv2.PoolConditionIPsUsed: "Unknown/noreason/0",
	})
	for i := range 5 {
		h.service(fmt.Sprintf("d%d", i), labelled("p", "default"))
	}
	for i := range 8 {
		h.service(fmt.Sprintf("r%d", i), labelled("p", "reserve"))
	}
	h.service("one", labelled("p", "counted"))
	got := map[string]bool{}
	for i := range 4 {
		got[ingressOf(h.expect(fmt.Sprintf("d%d", i), "*", "satisfied"))] = true
	}
	if len(got) != 4 || !got["10.0.0.0"] || !got["10.0.0.3"] {
		t.Errorf("L6: a /30 gave %v, want all four addresses", got)
	}
	h.expectPool("default", map[string]string{ciliumv2.PoolConditionIPsUsed: "Unknown/noreason/4", ciliumv2.PoolConditionIPsAvailable: "*/*/0"})
	h.expect("d4", "", "out_of_ips") // L6: 4 allocations from a /30, the 5th waits
	h.expectPool("reserve", map[string]string{ciliumv2.PoolConditionIPsTotal: "*/*/7", ciliumv2.PoolConditionIPsUsed: "*/*/7"})
	assigned := map[string]bool{}
	for i := range 8 {
		s := h.get(fmt.Sprintf("r%d", i))
		if ip := ingressOf(s); ip != "" {
			assigned[ip] = true
		}
	}
	for _, want := range []string{"10.0.1.1", "10.0.1.2", "10.0.2.0", "10.0.2.1", "10.0.3.9", "10.0.4.10", "10.0.4.11"} { // L7, L8
		if !assigned[want] {
			t.Errorf("L7/L8: %s not allocated; allocated %v", want, assigned)
		}
	}
	if assigned["10.0.1.0"] || assigned["10.0.1.3"] {
		t.Errorf("L7: network or broadcast address of a /30 allocated with allowFirstLastIPs No: %v", assigned)
	}
	h.expectPool("counted", map[string]string{ // L9 after one allocation
		ciliumv2.PoolConditionIPsTotal: "*/*/254", ciliumv2.PoolConditionIPsAvailable: "*/*/253", ciliumv2.PoolConditionIPsUsed: "*/*/1",
	})
}

// L7 on an edit: turning allowFirstLastIPs to No does not take the first and
// last addresses from the Services that hold them; it only stops handing
// them out.
func TestL7_AllowFirstLastIPsTurnedOffKeepsHeldAddresses(t *testing.T) {
	h := newHarness(t)
	p := h.pool("edge", []string{"10.0.5.0/30"})
	holder := map[string]string{} // address -> Service
	for i := range 4 {
		name := fmt.Sprintf("s%d", i)
		h.service(name)
		holder[ingressOf(h.expect(name, "*", "satisfied"))] = name
	}
	if holder["10.0.5.0"] == "" || holder["10.0.5.3"] == "" {
		t.Fatalf("a /30 gave %v, want all four addresses", holder)
	}
	h.update(p, func() { p.Spec.AllowFirstLastIPs = ciliumv2.AllowFirstLastIPsNo })
	h.expectPool("edge", map[string]string{
		ciliumv2.PoolConditionIPsTotal: "*/*/4", ciliumv2.PoolConditionIPsUsed: "*/*/4", ciliumv2.PoolConditionIPsAvailable: "*/*/0",
	})
	if m := meta.FindStatusCondition(h.getPool("edge").Status.Conditions, "Ready").Message; !strings.Contains(m, "2 of them are first or last addresses") {
		t.Errorf("pool Ready message %q does not count the kept addresses", m)
	}
	h.consistently("every Service keeps its address", func() error {
		for addr, name := range holder {
			s := h.get(name)
			if got := ingressOf(s); got != addr || reasonOf(s) != "satisfied" {
				return fmt.Errorf("%s has [%s] %s, want [%s] satisfied", name, got, reasonOf(s), addr)
			}
		}
		return nil
	})
	c := meta.FindStatusCondition(h.get(holder["10.0.5.0"]).Status.Conditions, reconciler.ServiceConditionType)
	if !strings.Contains(c.Message, "'10.0.5.0' is kept") || !strings.Contains(c.Message, "allowFirstLastIPs: No") {
		t.Errorf("holder of 10.0.5.0: condition message %q does not say the address is kept against allowFirstLastIPs: No", c.Message)
	}
	// Released, the reserved address is not given out again.
	h.service("late")
	h.expect("late", "", "out_of_ips")
	h.delete(h.get(holder["10.0.5.0"]))
	h.expectPool("edge", map[string]string{ciliumv2.PoolConditionIPsTotal: "*/*/3", ciliumv2.PoolConditionIPsUsed: "*/*/3"})
	h.expect("late", "", "out_of_ips")
}

func TestL10_PrinterColumns(t *testing.T) {
	h := newHarness(t)
	h.pool("blue", []string{"20.0.10.0/24"}, func(p *ciliumv2.CiliumLoadBalancerIPPool) { p.Spec.AllowFirstLastIPs = ciliumv2.AllowFirstLastIPsNo })
	h.pool("red", []string{"20.0.10.0/24"}, func(p *ciliumv2.CiliumLoadBalancerIPPool) { p.Spec.Disabled = true })
	h.expectPool("red", map[string]string{ciliumv2.PoolConditionConflict: "True/cidr_overlap/*"})
	h.expectPool("blue", map[string]string{ciliumv2.PoolConditionConflict: "False/*/*"})
	rows := serverTable(t, "/apis/cilium.io/v2/ciliumloadbalancerippools")
	want := map[string][]string{"blue": {"blue", "false", "False", "254"}, "red": {"red", "true", "True", "256"}}
	if strings.Join(rows["_columns"], ",") != "Name,Disabled,Conflicting,IPs Available,Age" {
		t.Fatalf("columns = %v", rows["_columns"])
	}
	for name, cells := range want {
		if got := rows[name]; len(got) < 4 || strings.Join(got[:4], ",") != strings.Join(cells, ",") {
			t.Errorf("row %s = %v, want %v then age", name, got, cells)
		}
	}
}

func TestL11_L12_L13_Conflicts(t *testing.T) {
	h := newHarness(t)
	h.pool("blue", []string{"20.0.10.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"color": "blue"}}))
	h.expectPool("blue", map[string]string{ciliumv2.PoolConditionConflict: "False/*/*"})
	red := h.pool("red", []string{"20.0.10.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"color": "red"}}))
	h.expectPool("red", map[string]string{
		ciliumv2.PoolConditionConflict: "True/cidr_overlap/Pool conflicts since CIDR '20.0.10.0/24' overlaps CIDR '20.0.10.0/24' from IP Pool 'blue'",
		"Ready":                        "False/PoolConflict/*",
	})
	h.expectPool("blue", map[string]string{ciliumv2.PoolConditionConflict: "False/*/*", "Ready": "True/*/*"}) // L11
	h.expectEvent("red", "PoolConflict", "overlaps")
	h.service("r", labelled("color", "red"))
	h.expect("r", "", "no_pool") // L12
	// L13: removing the overlap clears the conflict and allocation resumes.
	h.update(red, func() { red.Spec.Blocks = toBlocks([]string{"20.0.11.0/24"}) })
	h.expectPool("red", map[string]string{ciliumv2.PoolConditionConflict: "False/*/*", "Ready": "True/*/*"})
	h.expect("r", "20.0.11.0", "satisfied")
}

func TestL14_DisabledPool(t *testing.T) {
	h := newHarness(t)
	p := h.pool("p", []string{"20.0.10.0/24"})
	h.service("old")
	h.expect("old", "20.0.10.0", "satisfied")
	h.update(p, func() { p.Spec.Disabled = true })
	h.expectPool("p", map[string]string{"Ready": "True/Disabled/*"})
	h.service("new")
	h.expect("new", "", "no_pool")
	h.expect("old", "20.0.10.0", "satisfied")
	rows := serverTable(t, "/apis/cilium.io/v2/ciliumloadbalancerippools")
	if rows["p"][1] != "true" {
		t.Errorf("DISABLED column = %q", rows["p"][1])
	}
}

func TestL15_L16_L17_L18_L19_Selectors(t *testing.T) {
	h := newHarness(t)
	h.pool("blue", []string{"20.0.10.0/24"}, selecting(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "color", Operator: metav1.LabelSelectorOpIn, Values: []string{"blue", "cyan"}}}}))
	h.pool("tenant", []string{"20.0.20.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"io.kubernetes.service.namespace": "tenant-a"}}))
	h.pool("named", []string{"20.0.30.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"io.kubernetes.service.name": "by-name"}}))
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-a"}})
	t.Cleanup(func() { h.delete(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-a"}}) })
	h.service("b", labelled("color", "blue"))
	red := h.service("r", labelled("color", "red"))
	h.service("t", inNamespace("tenant-a"), labelled("color", "red"))
	h.service("by-name")
	h.expect("b", "20.0.10.0", "satisfied")                // L15
	h.expect("r", "", "no_pool")                           // L15, L18
	h.expect("tenant-a/t", "20.0.20.0", "satisfied")       // L16 namespace key
	h.expect("by-name", "20.0.30.0", "satisfied")          // L16 name key
	h.update(red, func() { red.Labels["color"] = "cyan" }) // L19
	s := h.expect("r", "20.0.10.1", "satisfied")
	if c := findCondition(s); c.Status != metav1.ConditionTrue {
		t.Errorf("L19: condition status %s", c.Status)
	}
	h.expectEvent("r", "IPAllocated", "20.0.10.1")

	// L17: a pool without a selector serves any Service.
	h.pool("all", []string{"20.0.40.0/24"})
	h.service("anything", labelled("color", "green"))
	h.expect("anything", "20.0.40.0", "satisfied")
}

func findCondition(s *corev1.Service) metav1.Condition {
	for _, c := range s.Status.Conditions {
		if c.Type == reconciler.ServiceConditionType {
			return c
		}
	}
	return metav1.Condition{}
}

func TestL20_OutOfIPsThenFreed(t *testing.T) {
	h := newHarness(t)
	h.pool("tiny", []string{"20.0.10.7/32"})
	first := h.service("first")
	h.expect("first", "20.0.10.7", "satisfied")
	h.service("second")
	s := h.expect("second", "", "out_of_ips")
	if c := findCondition(s); c.Message != "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs" {
		t.Errorf("message %q", c.Message)
	}
	h.expectEvent("second", "out_of_ips", "ran out")
	// As soon as space frees, the waiting Service gets it.
	h.delete(first)
	h.expect("second", "20.0.10.7", "satisfied")
}

func TestL21_L22_L23_L24_Families(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24", "2004::/64"})
	h.service("single")
	h.service("prefer", dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	h.service("prefer-reversed", dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol))
	h.service("require", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	// Which Service is served first depends on whether they were created in
	// the same second; what each gets does not.
	v4s, v6s := map[string]bool{}, map[string]bool{}
	for _, name := range []string{"prefer", "prefer-reversed", "require", "single"} { // L23, L24, L21
		want := "*,*"
		if name == "single" {
			want = "*"
		}
		for _, ip := range strings.Split(ingressOf(h.expect(name, want, "satisfied")), ",") {
			a := netip.MustParseAddr(ip)
			if a.Is4() {
				v4s[ip] = true
			} else {
				v6s[ip] = true
			}
		}
	}
	if len(v4s) != 4 || len(v6s) != 3 || !v4s["20.0.10.0"] || !v4s["20.0.10.3"] || !v6s["2004::"] || !v6s["2004::2"] {
		t.Errorf("IPv4 %v, IPv6 %v: want 20.0.10.0-3 and 2004::-2004::2, each once", v4s, v6s)
	}
}

func TestL22_L23_IPv4OnlyCluster(t *testing.T) {
	h := newHarness(t, func(r *reconciler.Reconciler) { r.Families = allocator.Config{IPv4Enabled: true} })
	h.pool("p", []string{"20.0.10.0/24", "2004::/64"})
	h.service("prefer", dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	h.service("require", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	h.expect("prefer", "20.0.10.0", "satisfied")  // L22
	h.expect("require", "", "ip_family_disabled") // L23
}

func TestL25_L26_L27_Classes(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24"})
	h.service("bgp", class(reconciler.ClassBGP))
	h.service("l2", class(reconciler.ClassL2))
	h.service("foreign", class("example.com/lb"))
	h.service("none")
	h.expect("bgp", "20.0.10.0", "satisfied") // L26
	h.expect("l2", "20.0.10.1", "satisfied")
	h.expect("none", "20.0.10.2", "satisfied")
	h.consistently("L25: a foreign class gets nothing, not even a condition", func() error {
		if s := h.get("foreign"); ingressOf(s) != "" || len(s.Status.Conditions) != 0 {
			return fmt.Errorf("foreign Service touched: %+v", s.Status)
		}
		return nil
	})
}

func TestL27_ClassRequiredMode(t *testing.T) {
	h := newHarness(t, func(r *reconciler.Reconciler) { r.ServeClassless = false })
	h.pool("p", []string{"20.0.10.0/24"})
	h.service("classless")
	h.service("bgp", class(reconciler.ClassBGP))
	h.expect("bgp", "20.0.10.0", "satisfied")
	if s := h.get("classless"); ingressOf(s) != "" || len(s.Status.Conditions) != 0 {
		t.Errorf("class-less Service served with default-lb-service-ipam=none: %+v", s.Status)
	}
}

func TestL28_to_L32_RequestedIPs(t *testing.T) {
	h := newHarness(t)
	h.pool("blue", []string{"20.0.10.0/24"})
	h.pool("red", []string{"20.0.30.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"color": "red"}}))
	h.service("two", annotated(reconciler.AnnotationIPs, " 20.0.10.100 , 20.0.10.200"))
	h.service("spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "20.0.10.50" })
	h.service("legacy", annotated(reconciler.AnnotationIPsLegacy, "20.0.10.60"))
	h.service("nowhere", annotated(reconciler.AnnotationIPs, "30.0.0.1"))
	h.service("mismatch", annotated(reconciler.AnnotationIPs, "20.0.30.5"))
	h.expect("two", "20.0.10.100,20.0.10.200", "satisfied") // L28
	h.expect("spec", "20.0.10.50", "satisfied")             // L29
	h.expect("legacy", "20.0.10.60", "satisfied")
	s := h.expect("nowhere", "", "no_pool") // L30
	if c := findCondition(s); c.Message != "No pool exists with a CIDR containing '30.0.0.1'" {
		t.Errorf("L30 message %q", c.Message)
	}
	h.expect("mismatch", "", "pool_selector_mismatch") // L31
	h.service("taken", annotated(reconciler.AnnotationIPs, "20.0.10.100"))
	s = h.expect("taken", "", "already_allocated") // L32
	if c := findCondition(s); c.Message != "The IP '20.0.10.100' is already allocated to another service" {
		t.Errorf("L32 message %q", c.Message)
	}
	h.service("garbage", annotated(reconciler.AnnotationIPs, "not-an-ip"))
	h.expect("garbage", "", "invalid_requested_ip")
}

func TestL33_to_L38_Sharing(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24"})
	key := func(k string) svcOpt { return annotated(reconciler.AnnotationSharingKey, k) }
	h.service("a", key("k"), ports(1234))
	h.service("b", key("k"), ports(2345))
	shared := ingressOf(h.expect("a", "20.0.10.0", "satisfied"))
	h.expect("b", shared, "satisfied") // L33
	h.service("c", key("k"), ports(1234))
	h.expect("c", "20.0.10.1", "satisfied") // L34
	h.service("d", key("r"), annotated(reconciler.AnnotationIPs, "20.0.10.100"), ports(80))
	h.service("e", key("r"), ports(443))
	h.expect("d", "20.0.10.100", "satisfied")
	h.expect("e", "20.0.10.100", "satisfied") // L35
	h.service("f", key("etp"), ports(80))
	h.service("g", key("etp"), ports(81), func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal })
	if f, g := ingressOf(h.expect("f", "20.0.10.2", "satisfied")), ingressOf(h.expect("g", "20.0.10.3", "satisfied")); f == g {
		t.Errorf("L36: Cluster and Local Services share %s", f)
	}
	for _, ns := range []string{"ns-one", "ns-two"} {
		h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	h.service("x", inNamespace("ns-one"), key("cross"), ports(80))
	h.service("y", inNamespace("ns-two"), key("cross"), ports(81))
	h.expect("ns-one/x", "20.0.10.4", "satisfied")
	h.expect("ns-two/y", "20.0.10.5", "satisfied") // L37
	h.service("v", inNamespace("ns-one"), key("ok"), ports(80), annotated(reconciler.AnnotationCrossNamespace, "ns-two"))
	h.service("w", inNamespace("ns-two"), key("ok"), ports(81), annotated(reconciler.AnnotationCrossNamespace, "*"))
	h.service("only-one-side", inNamespace("ns-two"), key("ok2"), ports(82), annotated(reconciler.AnnotationCrossNamespace, "ns-one"))
	h.service("other-side", inNamespace("ns-one"), key("ok2"), ports(83))
	h.expect("ns-one/v", "20.0.10.6", "satisfied")
	h.expect("ns-two/w", "20.0.10.6", "satisfied") // L38 both annotated
	if a, b := ingressOf(h.expect("ns-two/only-one-side", "*", "satisfied")), ingressOf(h.expect("ns-one/other-side", "*", "satisfied")); a == b {
		t.Errorf("L38: shared %s with the annotation on one side only", a)
	}
}

func TestL39_ReleaseOnDelete(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24"})
	a := h.service("a", annotated(reconciler.AnnotationSharingKey, "k"), ports(80))
	b := h.service("b", annotated(reconciler.AnnotationSharingKey, "k"), ports(81))
	c := h.service("c")
	h.expect("a", "20.0.10.0", "satisfied")
	h.expect("b", "20.0.10.0", "satisfied")
	h.expect("c", "20.0.10.1", "satisfied")
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/2"})
	h.delete(c)
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/1"})
	h.delete(a)
	h.expect("b", "20.0.10.0", "satisfied") // still held by the last sharer
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/1"})
	h.delete(b)
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/0"})
}

func TestL40_ReleaseOnSelectorChange(t *testing.T) {
	h := newHarness(t)
	h.pool("blue", []string{"20.0.10.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"color": "blue"}}))
	h.pool("red", []string{"20.0.20.0/24"}, selecting(&metav1.LabelSelector{MatchLabels: map[string]string{"color": "red"}}))
	s := h.service("s", labelled("color", "blue"))
	h.expect("s", "20.0.10.0", "satisfied")
	h.update(s, func() { s.Labels["color"] = "red" })
	h.expect("s", "20.0.20.0", "satisfied")
	h.update(s, func() { s.Labels["color"] = "green" })
	h.expect("s", "", "no_pool")
	h.expectPool("red", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/0"})
}

func TestL41_HandoverOnTypeAndClassChange(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24"})
	s := h.service("s")
	h.expect("s", "20.0.10.0", "satisfied")
	// The API server refuses a class change on a LoadBalancer Service, so the
	// handover goes through another type.
	foreign := "example.com/lb"
	s = h.get("s")
	s.Spec.LoadBalancerClass = &foreign
	if err := h.c.Update(h.ctx, s); err == nil {
		t.Fatal("the API server accepted a loadBalancerClass change; the test's premise is wrong")
	}
	h.update(s, func() { s.Spec.Type = corev1.ServiceTypeClusterIP; s.Spec.LoadBalancerClass = nil })
	h.expect("s", "", "")
	h.expectPool("p", map[string]string{ciliumv2.PoolConditionIPsUsed: "*/*/0"})
	h.update(s, func() { s.Spec.Type = corev1.ServiceTypeLoadBalancer; s.Spec.LoadBalancerClass = &foreign })
	h.consistently("a foreign class is left alone", func() error {
		if got := h.get("s"); ingressOf(got) != "" || len(got.Status.Conditions) != 0 {
			return fmt.Errorf("touched: %+v", got.Status)
		}
		return nil
	})
}

func TestL43_OperatorDown(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/24"})
	h.service("existing")
	h.expect("existing", "20.0.10.0", "satisfied")
	h.stop()
	h.service("while-down")
	h.consistently("nothing changes while the controller is down", func() error {
		if got := ingressOf(h.get("existing")); got != "20.0.10.0" {
			return fmt.Errorf("existing Service lost its address: %q", got)
		}
		if got := h.get("while-down"); ingressOf(got) != "" || len(got.Status.Conditions) != 0 {
			return fmt.Errorf("served without a controller: %+v", got.Status)
		}
		return nil
	})
	h.startController()
	h.expect("while-down", "20.0.10.1", "satisfied")
	h.expect("existing", "20.0.10.0", "satisfied")
}

// The seed system's older condition name is replaced by the current one.
func TestLegacyConditionReplaced(t *testing.T) {
	h := newHarness(t)
	s := h.service("old-style")
	s.Status.Conditions = []metav1.Condition{{
		Type: "io.cilium/lb-ipam-request-satisfied", Status: metav1.ConditionFalse, Reason: "no_pool",
		Message: "left by an older implementation", LastTransitionTime: metav1.Now(),
	}}
	if err := h.c.Status().Update(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	h.pool("p", []string{"20.0.10.0/24"})
	got := h.expect("old-style", "20.0.10.0", "satisfied")
	if len(got.Status.Conditions) != 1 {
		t.Errorf("conditions = %+v, want only %s", got.Status.Conditions, reconciler.ServiceConditionType)
	}
}

// A Service held by a finalizer keeps its address until it is really gone.
func TestTerminatingServiceKeepsItsAddress(t *testing.T) {
	h := newHarness(t)
	h.pool("p", []string{"20.0.10.0/31"})
	s := h.service("going", func(s *corev1.Service) { s.Finalizers = []string{"example.com/hold"} })
	h.expect("going", "20.0.10.0", "satisfied")
	h.delete(s)
	h.service("new")
	h.expect("new", "20.0.10.1", "satisfied")
	h.service("newer")
	h.expect("newer", "", "out_of_ips")
	if got := ingressOf(h.get("going")); got != "20.0.10.0" {
		t.Fatalf("a terminating Service lost its address: %q", got)
	}
	h.update(s, func() { s.Finalizers = nil })
	h.expect("newer", "20.0.10.0", "satisfied")
}
