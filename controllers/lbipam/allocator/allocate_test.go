package allocator

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

var (
	dualStack = Config{IPv4Enabled: true, IPv6Enabled: true}
	v4Only    = Config{IPv4Enabled: true}
	t0        = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func pool(name string, age int, blocks ...string) Pool {
	p := Pool{Name: name, Created: t0.Add(time.Duration(age) * time.Minute), Selector: labels.Everything(), AllowFirstLastIPs: true}
	for _, b := range blocks {
		if start, stop, ok := strings.Cut(b, "-"); ok {
			p.Blocks = append(p.Blocks, Block{Start: start, Stop: stop})
		} else if strings.Contains(b, "/") {
			p.Blocks = append(p.Blocks, Block{CIDR: b})
		} else {
			p.Blocks = append(p.Blocks, Block{Start: b})
		}
	}
	return p
}

func svc(name string, age int, mods ...func(*Service)) Service {
	s := Service{Key: types.NamespacedName{Namespace: "default", Name: name}, Created: t0.Add(time.Duration(age) * time.Minute), FamilyPolicy: SingleStack, Families: []Family{IPv4}}
	for _, m := range mods {
		m(&s)
	}
	if s.Labels == nil {
		s.Labels = labels.Set{"io.kubernetes.service.namespace": s.Key.Namespace, "io.kubernetes.service.name": s.Key.Name}
	}
	return s
}

func held(ips ...string) func(*Service) {
	return func(s *Service) {
		for _, ip := range ips {
			s.Held = append(s.Held, netip.MustParseAddr(ip))
		}
	}
}

func requested(ips ...string) func(*Service) {
	return func(s *Service) {
		for _, ip := range ips {
			s.Requested = append(s.Requested, netip.MustParseAddr(ip))
		}
	}
}

func sharing(key string, ports ...int32) func(*Service) {
	return func(s *Service) { s.SharingKey, s.Ports = key, ports }
}

func family(policy FamilyPolicy, fams ...Family) func(*Service) {
	return func(s *Service) { s.FamilyPolicy, s.Families = policy, fams }
}

func ns(namespace string, cross ...string) func(*Service) {
	return func(s *Service) { s.Key.Namespace, s.CrossNamespace = namespace, cross }
}

func addrsOf(r ServiceResult) string {
	var out []string
	for _, a := range r.Addresses {
		out = append(out, a.Addr.String())
	}
	return strings.Join(out, ",")
}

func key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name}
}

// expect checks each named Service's addresses and reason.
func expect(t *testing.T, res Result, want map[string][2]string) {
	t.Helper()
	for name, w := range want {
		k := key(name)
		if strings.Contains(name, "/") {
			nsName, n, _ := strings.Cut(name, "/")
			k = types.NamespacedName{Namespace: nsName, Name: n}
		}
		r, ok := res.Services[k]
		if !ok {
			t.Errorf("%s: no result", name)
			continue
		}
		if got := addrsOf(r); got != w[0] || r.Reason != w[1] {
			t.Errorf("%s: got [%s] %s (%s), want [%s] %s", name, got, r.Reason, r.Message, w[0], w[1])
		}
		if r.Satisfied != (r.Reason == ReasonSatisfied) {
			t.Errorf("%s: Satisfied=%v with reason %s", name, r.Satisfied, r.Reason)
		}
	}
}

func TestL3_to_L9_AllocateBlocks(t *testing.T) {
	t.Run("L3 cidr block", func(t *testing.T) {
		res := Allocate(v4Only, []Pool{pool("p", 0, "20.0.10.0/24")}, []Service{svc("a", 0)})
		expect(t, res, map[string][2]string{"a": {"20.0.10.0", ReasonSatisfied}})
	})
	t.Run("L4 range block is inclusive", func(t *testing.T) {
		var svcs []Service
		for i := range 102 {
			svcs = append(svcs, svc(fmt.Sprintf("s%03d", i), i))
		}
		res := Allocate(v4Only, []Pool{pool("p", 0, "20.0.20.100-20.0.20.200")}, svcs)
		expect(t, res, map[string][2]string{
			"s000": {"20.0.20.100", ReasonSatisfied},
			"s100": {"20.0.20.200", ReasonSatisfied},
			"s101": {"", ReasonOutOfIPs},
		})
	})
	t.Run("L6 first and last usable by default", func(t *testing.T) {
		svcs := []Service{svc("a", 0), svc("b", 1), svc("c", 2), svc("d", 3), svc("e", 4)}
		res := Allocate(v4Only, []Pool{pool("p", 0, "10.0.0.0/30")}, svcs)
		expect(t, res, map[string][2]string{"a": {"10.0.0.0", ReasonSatisfied}, "d": {"10.0.0.3", ReasonSatisfied}, "e": {"", ReasonOutOfIPs}})
	})
	t.Run("L7 L8 allowFirstLastIPs No", func(t *testing.T) {
		p := pool("p", 0, "10.0.0.0/30", "10.0.1.0/31", "10.0.2.9/32", "10.0.3.10-10.0.3.11")
		p.AllowFirstLastIPs = false
		var svcs []Service
		for i := range 8 {
			svcs = append(svcs, svc(fmt.Sprintf("s%d", i), i))
		}
		res := Allocate(v4Only, []Pool{p}, svcs)
		expect(t, res, map[string][2]string{
			"s0": {"10.0.0.1", ReasonSatisfied}, "s1": {"10.0.0.2", ReasonSatisfied},
			"s2": {"10.0.1.0", ReasonSatisfied}, "s3": {"10.0.1.1", ReasonSatisfied},
			"s4": {"10.0.2.9", ReasonSatisfied},
			"s5": {"10.0.3.10", ReasonSatisfied}, "s6": {"10.0.3.11", ReasonSatisfied},
			"s7": {"", ReasonOutOfIPs},
		})
		if got := res.Pools["p"].Total.String(); got != "7" {
			t.Errorf("total = %s, want 7", got)
		}
	})
	t.Run("L9 counts", func(t *testing.T) {
		p := pool("p", 0, "10.0.10.0/24")
		p.AllowFirstLastIPs = false
		res := Allocate(v4Only, []Pool{p}, nil)
		if r := res.Pools["p"]; r.Total.String() != "254" || r.Used.String() != "0" {
			t.Errorf("empty pool: total %s used %s, want 254 0", r.Total, r.Used)
		}
		res = Allocate(v4Only, []Pool{p}, []Service{svc("a", 0)})
		if r := res.Pools["p"]; r.Total.String() != "254" || r.Used.String() != "1" {
			t.Errorf("one allocation: total %s used %s, want 254 1", r.Total, r.Used)
		}
	})
	t.Run("overlapping blocks in one pool count once", func(t *testing.T) {
		res := Allocate(v4Only, []Pool{pool("p", 0, "10.0.0.0/24", "10.0.0.100-10.0.1.9")}, nil)
		if got := res.Pools["p"].Total.String(); got != "266" {
			t.Errorf("total = %s, want 266", got)
		}
	})
	t.Run("IPv6 start after stop is a block error", func(t *testing.T) {
		res := Allocate(dualStack, []Pool{pool("p", 0, "2004::20-2004::1", "10.0.0.0/31")}, nil)
		if r := res.Pools["p"]; len(r.BlockErrors) != 1 || r.Total.String() != "2" {
			t.Errorf("got %+v, want one block error and the other block counted", r)
		}
	})
}

func TestL11_L12_L13_AllocateConflicts(t *testing.T) {
	// L11 L12: the later pool conflicts and allocates nothing; the message names
	// both blocks and the older pool.
	blue := pool("blue", 0, "20.0.10.0/24")
	red := pool("red", 1, "20.0.10.128/25")
	red.Selector = labels.SelectorFromSet(labels.Set{"color": "red"})
	res := Allocate(v4Only, []Pool{red, blue}, []Service{svc("a", 0, func(s *Service) { s.Labels = labels.Set{"color": "red"} })})
	if got := res.Pools["red"].Conflict; got != "Pool conflicts since CIDR '20.0.10.128/25' overlaps CIDR '20.0.10.0/24' from IP Pool 'blue'" {
		t.Errorf("red conflict = %q", got)
	}
	if got := res.Pools["blue"].Conflict; got != "" {
		t.Errorf("blue conflict = %q, want none", got)
	}
	// a matches blue (no selector) too, so it is served from blue.
	expect(t, res, map[string][2]string{"a": {"20.0.10.0", ReasonSatisfied}})

	blue.Selector = labels.SelectorFromSet(labels.Set{"color": "blue"})
	res = Allocate(v4Only, []Pool{red, blue}, []Service{svc("a", 0, func(s *Service) { s.Labels = labels.Set{"color": "red"} })})
	expect(t, res, map[string][2]string{"a": {"", ReasonNoPool}})

	// L13: without the older pool the conflict clears and allocation resumes.
	res = Allocate(v4Only, []Pool{red}, []Service{svc("a", 0, func(s *Service) { s.Labels = labels.Set{"color": "red"} })})
	expect(t, res, map[string][2]string{"a": {"20.0.10.128", ReasonSatisfied}})

	// Only the pools that win take part: c overlaps only the loser b.
	res = Allocate(v4Only, []Pool{pool("a", 0, "10.0.0.0/24"), pool("b", 1, "10.0.0.0/23"), pool("c", 2, "10.0.1.0/24")}, nil)
	if res.Pools["b"].Conflict == "" || res.Pools["c"].Conflict != "" {
		t.Errorf("b conflict %q, c conflict %q; want only b", res.Pools["b"].Conflict, res.Pools["c"].Conflict)
	}
}

func TestL14_AllocateDisabledAndInvalidPools(t *testing.T) {
	// L14: disabled keeps holdings, allocates nothing new.
	p := pool("p", 0, "10.0.0.0/24")
	p.Disabled = true
	res := Allocate(v4Only, []Pool{p}, []Service{svc("old", 0, held("10.0.0.7")), svc("new", 1)})
	expect(t, res, map[string][2]string{"old": {"10.0.0.7", ReasonSatisfied}, "new": {"", ReasonNoPool}})

	// An invalid selector behaves like disabled and keeps every holding.
	p = pool("p", 0, "10.0.0.0/24")
	p.Selector, p.SelectorErr = nil, fmt.Errorf("bad")
	res = Allocate(v4Only, []Pool{p}, []Service{svc("old", 0, held("10.0.0.7")), svc("new", 1)})
	expect(t, res, map[string][2]string{"old": {"10.0.0.7", ReasonSatisfied}, "new": {"", ReasonNoPool}})
}

func TestL15_to_L19_L40_AllocateSelectors(t *testing.T) {
	blue := pool("blue", 0, "20.0.10.0/24")
	sel, _ := labels.Parse("color in (blue,cyan)")
	blue.Selector = sel
	tenant := pool("tenant", 1, "20.0.11.0/24")
	tenant.Selector = labels.SelectorFromSet(labels.Set{"io.kubernetes.service.namespace": "tenant-a"})
	colored := func(c string) func(*Service) {
		return func(s *Service) {
			s.Labels = labels.Set{"color": c, "io.kubernetes.service.namespace": s.Key.Namespace, "io.kubernetes.service.name": s.Key.Name}
		}
	}
	res := Allocate(v4Only, []Pool{blue, tenant}, []Service{
		svc("b", 0, colored("blue")), svc("r", 1, colored("red")),
		svc("t", 2, ns("tenant-a"), colored("red")),
	})
	expect(t, res, map[string][2]string{ // L15 L16 L18
		"b": {"20.0.10.0", ReasonSatisfied}, "r": {"", ReasonNoPool}, "tenant-a/t": {"20.0.11.0", ReasonSatisfied},
	})
	// L40: a held address from a pool that no longer selects the Service is
	// released and replaced from a pool that does.
	res = Allocate(v4Only, []Pool{blue, tenant}, []Service{svc("t", 0, ns("tenant-a"), colored("red"), held("20.0.10.5"))})
	expect(t, res, map[string][2]string{"tenant-a/t": {"20.0.11.0", ReasonSatisfied}})
}

func TestL21_to_L24_AllocateFamilies(t *testing.T) {
	pools := []Pool{pool("p", 0, "10.0.0.0/24", "2004::/64")}
	cases := []struct {
		name string
		cfg  Config
		mod  func(*Service)
		want [2]string
	}{
		{"L21 SingleStack on dual stack", dualStack, family(SingleStack, IPv4), [2]string{"10.0.0.0", ReasonSatisfied}},
		{"SingleStack IPv6", dualStack, family(SingleStack, IPv6), [2]string{"2004::", ReasonSatisfied}},
		{"SingleStack no families on IPv6-only", Config{IPv6Enabled: true}, family(SingleStack), [2]string{"2004::", ReasonSatisfied}},
		{"L22 PreferDualStack dual", dualStack, family(PreferDualStack, IPv4, IPv6), [2]string{"10.0.0.0,2004::", ReasonSatisfied}},
		{"L24 PreferDualStack order ignored", dualStack, family(PreferDualStack, IPv6, IPv4), [2]string{"10.0.0.0,2004::", ReasonSatisfied}},
		{"L22 PreferDualStack v4 only", v4Only, family(PreferDualStack, IPv4, IPv6), [2]string{"10.0.0.0", ReasonSatisfied}},
		{"L23 RequireDualStack v4 only", v4Only, family(RequireDualStack, IPv4, IPv6), [2]string{"", ReasonFamilyDisabled}},
		{"L23 RequireDualStack dual", dualStack, family(RequireDualStack, IPv6, IPv4), [2]string{"10.0.0.0,2004::", ReasonSatisfied}},
		{"SingleStack IPv6 on v4 only", v4Only, family(SingleStack, IPv6), [2]string{"", ReasonFamilyDisabled}},
		{"family no longer wanted is released", dualStack, func(s *Service) { family(SingleStack, IPv4)(s); held("10.0.0.9", "2004::9")(s) }, [2]string{"10.0.0.9", ReasonSatisfied}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Allocate(tc.cfg, pools, []Service{svc("a", 0, tc.mod)}), map[string][2]string{"a": tc.want})
		})
	}
	// PreferDualStack with only an IPv4 pool: satisfied, and says why not IPv6.
	res := Allocate(dualStack, []Pool{pool("p", 0, "10.0.0.0/24")}, []Service{svc("a", 0, family(PreferDualStack, IPv4, IPv6))})
	expect(t, res, map[string][2]string{"a": {"10.0.0.0", ReasonSatisfied}})
	if m := res.Services[key("a")].Message; !strings.Contains(m, "Only IPv4") {
		t.Errorf("message %q does not explain the missing family", m)
	}
}

func TestL28_to_L32_AllocateRequested(t *testing.T) {
	blue := pool("blue", 0, "20.0.10.0/24")
	red := pool("red", 1, "20.0.30.0/24")
	red.Selector = labels.Nothing()
	reserving := pool("res", 2, "20.0.40.0/24")
	reserving.AllowFirstLastIPs = false
	pools := []Pool{blue, red, reserving}
	res := Allocate(v4Only, pools, []Service{
		svc("two", 0, requested("20.0.10.100", "20.0.10.200")),            // L28
		svc("spec", 1, requested("20.0.10.50")),                           // L29
		svc("nowhere", 2, requested("30.0.0.1")),                          // L30
		svc("mismatch", 3, requested("20.0.30.5")),                        // L31
		svc("taken", 4, requested("20.0.10.100")),                         // L32
		svc("reserved", 5, requested("20.0.40.0")),                        // first address reserved
		svc("drops-extra", 6, requested("20.0.10.60"), held("20.0.10.1")), // unrequested holding released
		svc("bad", 7, func(s *Service) { s.RequestErrors = []string{"not-an-ip"} }),
	})
	expect(t, res, map[string][2]string{
		"two":         {"20.0.10.100,20.0.10.200", ReasonSatisfied},
		"spec":        {"20.0.10.50", ReasonSatisfied},
		"nowhere":     {"", ReasonNoPool},
		"mismatch":    {"", ReasonPoolSelectorMismatch},
		"taken":       {"", ReasonAlreadyAllocated},
		"reserved":    {"", ReasonNoPool},
		"drops-extra": {"20.0.10.60", ReasonSatisfied},
		"bad":         {"", ReasonInvalidRequestedIP},
	})
	if m := res.Services[key("reserved")].Message; !strings.Contains(m, "allowFirstLastIPs") {
		t.Errorf("reserved message %q does not name allowFirstLastIPs", m)
	}
	// A requested address in a disabled pool is refused with the reason.
	blue.Disabled = true
	res = Allocate(v4Only, []Pool{blue}, []Service{svc("a", 0, requested("20.0.10.9"))})
	expect(t, res, map[string][2]string{"a": {"", ReasonNoPool}})
	if m := res.Services[key("a")].Message; !strings.Contains(m, "disabled") {
		t.Errorf("message %q does not say the pool is disabled", m)
	}
}

func TestL33_to_L38_AllocateSharing(t *testing.T) {
	pools := []Pool{pool("p", 0, "20.0.10.0/24")}
	local := func(sel map[string]string) func(*Service) {
		return func(s *Service) { s.ExternalTrafficPolicy, s.PodSelector = ExternalTrafficPolicyLocal, sel }
	}
	res := Allocate(v4Only, pools, []Service{
		svc("a", 0, sharing("k", 1234)), svc("b", 1, sharing("k", 2345)), // L33
		svc("c", 2, sharing("k", 1234)), // L34: conflicts with a, shares with... b? b has 2345: yes
		svc("d", 3, sharing("k", 1234)), // conflicts with a and c: new address
		svc("x", 4, sharing("other", 9)),
	})
	expect(t, res, map[string][2]string{
		"a": {"20.0.10.0", ReasonSatisfied}, "b": {"20.0.10.0", ReasonSatisfied},
		"c": {"20.0.10.1", ReasonSatisfied}, "d": {"20.0.10.2", ReasonSatisfied},
		"x": {"20.0.10.3", ReasonSatisfied},
	})
	if used := res.Pools["p"].Used.String(); used != "4" {
		t.Errorf("shared address counted more than once: used %s, want 4", used)
	}

	// L35: a requested address joins the key's set, and later sharers use it.
	res = Allocate(v4Only, pools, []Service{svc("a", 0, sharing("k", 80), requested("20.0.10.100")), svc("b", 1, sharing("k", 443))})
	expect(t, res, map[string][2]string{"a": {"20.0.10.100", ReasonSatisfied}, "b": {"20.0.10.100", ReasonSatisfied}})

	// L36: different externalTrafficPolicy; Local needs equal non-empty selectors.
	res = Allocate(v4Only, pools, []Service{
		svc("a", 0, sharing("k", 80)), svc("b", 1, sharing("k", 443), local(map[string]string{"app": "x"})),
		svc("c", 2, sharing("k", 444), local(map[string]string{"app": "x"})),
		svc("d", 3, sharing("k", 445), local(map[string]string{"app": "y"})),
	})
	expect(t, res, map[string][2]string{
		"a": {"20.0.10.0", ReasonSatisfied}, "b": {"20.0.10.1", ReasonSatisfied},
		"c": {"20.0.10.1", ReasonSatisfied}, "d": {"20.0.10.2", ReasonSatisfied},
	})

	// L37 L38: across namespaces only when both allow it.
	res = Allocate(v4Only, pools, []Service{
		svc("a", 0, sharing("k", 80), ns("one", "two")), svc("b", 1, sharing("k", 81), ns("two")),
		svc("c", 2, sharing("j", 80), ns("one", "*")), svc("d", 3, sharing("j", 81), ns("two", "one")),
	})
	expect(t, res, map[string][2]string{
		"one/a": {"20.0.10.0", ReasonSatisfied}, "two/b": {"20.0.10.1", ReasonSatisfied},
		"one/c": {"20.0.10.2", ReasonSatisfied}, "two/d": {"20.0.10.2", ReasonSatisfied},
	})

	// A requested address held under the same key but with a port clash.
	res = Allocate(v4Only, pools, []Service{svc("a", 0, sharing("k", 80), requested("20.0.10.5")), svc("b", 1, sharing("k", 80), requested("20.0.10.5"))})
	expect(t, res, map[string][2]string{"a": {"20.0.10.5", ReasonSatisfied}, "b": {"", ReasonAlreadyAllocatedIncompat}})
	if m := res.Services[key("b")].Message; !strings.Contains(m, "port 80") {
		t.Errorf("message %q does not name the clashing port", m)
	}
}

// The invariants: a satisfied allocation never moves.
func TestAllocateStability(t *testing.T) {
	base := []Pool{pool("p", 0, "10.0.0.10-10.0.0.20")}
	var svcs []Service
	for i := range 5 {
		svcs = append(svcs, svc(fmt.Sprintf("s%d", i), i))
	}
	first := Allocate(v4Only, base, svcs)
	restored := feedBack(svcs, first)
	check := func(name string, res Result, svcs []Service) {
		t.Helper()
		for _, s := range svcs {
			if got, want := addrsOf(res.Services[s.Key]), addrsOf(first.Services[s.Key]); got != want {
				t.Errorf("%s: %s moved from %s to %s", name, s.Key.Name, want, got)
			}
		}
	}
	check("widened", Allocate(v4Only, []Pool{pool("p", 0, "10.0.0.0/24")}, restored), restored)
	check("shrunk around", Allocate(v4Only, []Pool{pool("p", 0, "10.0.0.10-10.0.0.14")}, restored), restored)
	check("restart with a new pending Service first in line", Allocate(v4Only, base, append([]Service{svc("new", -5)}, restored...)), restored)
	// Another Service deleted: the rest keep theirs, the freed address is reused.
	rest := append(append([]Service{}, restored[:2]...), restored[3:]...)
	res := Allocate(v4Only, base, append(rest, svc("later", 9)))
	check("other deleted", res, rest)
	if got := addrsOf(res.Services[key("later")]); got != addrsOf(first.Services[key("s2")]) {
		t.Errorf("freed address not reused: later got %s", got)
	}
	// Two Services claiming one address (a manual edit, say): the older keeps it.
	res = Allocate(v4Only, base, []Service{svc("young", 5, held("10.0.0.12")), svc("old", 1, held("10.0.0.12"))})
	expect(t, res, map[string][2]string{"old": {"10.0.0.12", ReasonSatisfied}, "young": {"10.0.0.10", ReasonSatisfied}})
	// Imported: an address in a matching pool is adopted; one outside is dropped.
	res = Allocate(v4Only, base, []Service{svc("in", 0, held("10.0.0.19")), svc("out", 1, held("192.0.2.1"))})
	expect(t, res, map[string][2]string{"in": {"10.0.0.19", ReasonSatisfied}, "out": {"10.0.0.10", ReasonSatisfied}})
}

// Switching a pool to allowFirstLastIPs: No only narrows future choices:
// Services that hold the first or last address of a CIDR keep it, told so in
// their condition; nobody new gets it, and once released it stays free.
func TestAllocateKeepsReservedAddressesWhenAllowFirstLastIPsTurnsOff(t *testing.T) {
	p := pool("p", 0, "10.0.0.0/30")
	svcs := []Service{svc("a", 0), svc("b", 1), svc("c", 2), svc("d", 3)}
	first := Allocate(v4Only, []Pool{p}, svcs)
	expect(t, first, map[string][2]string{"a": {"10.0.0.0", ReasonSatisfied}, "d": {"10.0.0.3", ReasonSatisfied}})

	p.AllowFirstLastIPs = false
	restored := feedBack(svcs, first)
	res := Allocate(v4Only, []Pool{p}, append(restored, svc("e", 4)))
	expect(t, res, map[string][2]string{
		"a": {"10.0.0.0", ReasonSatisfied}, "b": {"10.0.0.1", ReasonSatisfied},
		"c": {"10.0.0.2", ReasonSatisfied}, "d": {"10.0.0.3", ReasonSatisfied},
		"e": {"", ReasonOutOfIPs},
	})
	for name, want := range map[string]string{"a": "10.0.0.0", "d": "10.0.0.3"} {
		if m := res.Services[key(name)].Message; !strings.Contains(m, "'"+want+"' is kept") || !strings.Contains(m, "allowFirstLastIPs: No") {
			t.Errorf("%s: message %q does not say %s is kept against allowFirstLastIPs: No", name, m, want)
		}
	}
	if m := res.Services[key("b")].Message; m != "" {
		t.Errorf("b holds a usable address but its message is %q", m)
	}
	// Kept addresses count as in the pool and in use: nothing is available.
	if r := res.Pools["p"]; r.Total.String() != "4" || r.Used.String() != "4" || r.KeptReserved != 2 {
		t.Errorf("pool total %s used %s kept %d, want 4 4 2", r.Total, r.Used, r.KeptReserved)
	}

	// a goes away: its address is not handed to e, and the pool shrinks.
	rest := feedBack(append(append([]Service{}, svcs[1:]...), svc("e", 4)), res)
	res = Allocate(v4Only, []Pool{p}, rest)
	expect(t, res, map[string][2]string{"d": {"10.0.0.3", ReasonSatisfied}, "e": {"", ReasonOutOfIPs}})
	if r := res.Pools["p"]; r.Total.String() != "3" || r.Used.String() != "3" {
		t.Errorf("after release: pool total %s used %s, want 3 3", r.Total, r.Used)
	}

	// Someone else's status entry for a reserved address is not adopted; a
	// Service asking for it by name is refused.
	imported := svc("imported", 5, held("10.0.0.0"), func(s *Service) { s.HeldFrom = HeldImported })
	res = Allocate(v4Only, []Pool{p}, []Service{imported, svc("asks", 6, requested("10.0.0.3"))})
	expect(t, res, map[string][2]string{"imported": {"10.0.0.1", ReasonSatisfied}, "asks": {"", ReasonNoPool}})
	// Asking for a reserved address someone keeps says it is taken.
	res = Allocate(v4Only, []Pool{p}, append(rest, svc("asks", 6, requested("10.0.0.3"))))
	expect(t, res, map[string][2]string{"d": {"10.0.0.3", ReasonSatisfied}, "asks": {"", ReasonAlreadyAllocated}})
	if m := res.Services[key("asks")].Message; !strings.Contains(m, "keeps it") {
		t.Errorf("message %q does not say the address is kept", m)
	}
}

// Deterministic: the order of the input does not change the result.
func TestAllocateDeterministic(t *testing.T) {
	pools := []Pool{pool("a", 0, "10.0.0.0/29"), pool("b", 1, "10.0.1.0/29")}
	svcs := []Service{svc("x", 2), svc("y", 1), svc("z", 3, sharing("k", 1)), svc("w", 4, sharing("k", 2))}
	one := Allocate(v4Only, pools, svcs)
	rev := Allocate(v4Only, []Pool{pools[1], pools[0]}, []Service{svcs[3], svcs[2], svcs[1], svcs[0]})
	for k, r := range one.Services {
		if addrsOf(r) != addrsOf(rev.Services[k]) {
			t.Errorf("%s: %s vs %s depending on input order", k, addrsOf(r), addrsOf(rev.Services[k]))
		}
	}
}

func BenchmarkAllocate10k(b *testing.B) {
	pools := []Pool{pool("p", 0, "10.0.0.0/16")}
	svcs := make([]Service, 10000)
	for i := range svcs {
		svcs[i] = svc(fmt.Sprintf("s%05d", i), i)
	}
	restored := Allocate(v4Only, pools, svcs)
	for i := range svcs {
		svcs[i].Held = []netip.Addr{restored.Services[svcs[i].Key].Addresses[0].Addr}
	}
	b.ResetTimer()
	for b.Loop() {
		Allocate(v4Only, pools, svcs)
	}
}

// Findings from review, each a way an address could go to the wrong Service.
func TestAllocateContestedAddresses(t *testing.T) {
	base := []Pool{pool("p", 0, "10.0.0.0/29")}
	from := func(src HeldSource) func(*Service) { return func(s *Service) { s.HeldFrom = src } }

	// A requested address is not picked for an older Service that asked for
	// nothing in particular.
	res := Allocate(v4Only, base, []Service{svc("old", 0), svc("req", 1, requested("10.0.0.0"))})
	expect(t, res, map[string][2]string{"old": {"10.0.0.1", ReasonSatisfied}, "req": {"10.0.0.0", ReasonSatisfied}})

	// What LB-IPAM decided beats what an older Service's status says, and
	// what it recorded beats what someone else wrote.
	res = Allocate(v4Only, base, []Service{svc("imp", 0, held("10.0.0.0"), from(HeldImported)), svc("holder", 1, held("10.0.0.0"))})
	expect(t, res, map[string][2]string{"holder": {"10.0.0.0", ReasonSatisfied}, "imp": {"10.0.0.1", ReasonSatisfied}})
	res = Allocate(v4Only, base, []Service{svc("imp", 0, held("10.0.0.0"), from(HeldImported)), svc("rec", 1, held("10.0.0.0"), from(HeldRecorded))})
	expect(t, res, map[string][2]string{"rec": {"10.0.0.0", ReasonSatisfied}, "imp": {"10.0.0.1", ReasonSatisfied}})

	// A typo in the annotation keeps the address held, adds nothing, and says why.
	res = Allocate(v4Only, base, []Service{svc("typo", 0, held("10.0.0.3"), func(s *Service) { s.RequestErrors = []string{"10.0.0.300"} }), svc("other", 1)})
	expect(t, res, map[string][2]string{"typo": {"10.0.0.3", ReasonInvalidRequestedIP}, "other": {"10.0.0.0", ReasonSatisfied}})

	// A requested address of a family LB-IPAM does not allocate.
	res = Allocate(v4Only, []Pool{pool("p", 0, "10.0.0.0/29", "2004::/64")}, []Service{svc("v6", 0, family(SingleStack, IPv6), requested("2004::1"))})
	expect(t, res, map[string][2]string{"v6": {"", ReasonFamilyDisabled}})

	// A Service being deleted keeps what it holds and gets nothing new.
	res = Allocate(v4Only, base, []Service{
		svc("going", 0, held("10.0.0.0"), func(s *Service) { s.Terminating = true }),
		svc("going-empty", 1, func(s *Service) { s.Terminating = true }), svc("new", 2),
	})
	expect(t, res, map[string][2]string{"going": {"10.0.0.0", ReasonSatisfied}, "new": {"10.0.0.1", ReasonSatisfied}})
	if got := addrsOf(res.Services[key("going-empty")]); got != "" {
		t.Errorf("a terminating Service got %s", got)
	}

	// A pool with an invalid selector is named as such for a requested address.
	bad := pool("bad", 0, "10.0.1.0/29")
	bad.Selector, bad.SelectorErr = nil, fmt.Errorf("bad")
	res = Allocate(v4Only, []Pool{bad}, []Service{svc("a", 0, requested("10.0.1.1"))})
	expect(t, res, map[string][2]string{"a": {"", ReasonNoPool}})
	if m := res.Services[key("a")].Message; !strings.Contains(m, "serviceSelector is invalid") {
		t.Errorf("message %q does not name the invalid selector", m)
	}
}
