package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func mustNew(t testing.TB, store Store, pools ...Pool) *Allocator {
	t.Helper()
	a, err := New(store, Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	a.SetPools(pools)
	return a
}

func pool(name string, cidrs ...string) Pool {
	p := Pool{Name: name}
	for _, c := range cidrs {
		p.CIDRs = append(p.CIDRs, netip.MustParsePrefix(c))
	}
	return p
}

func req(id, pool string) Request {
	return Request{Key: Key{ContainerID: id, IfName: "eth0"}, Pod: Pod{Namespace: "ns", Name: "p-" + id, UID: "uid-" + id}, Pool: pool}
}

// drain allocates until the pool is exhausted and returns every address
// handed out and the error that stopped it.
func drain(t *testing.T, a *Allocator, pool string, max int) ([]netip.Addr, error) {
	t.Helper()
	var got []netip.Addr
	for i := range max {
		al, err := a.Allocate(req(fmt.Sprintf("c%d", i), pool))
		if err != nil {
			return got, err
		}
		for _, ip := range al.IPs {
			got = append(got, ip.Address)
		}
	}
	t.Fatalf("pool %s not exhausted after %d allocations", pool, max)
	return nil, nil
}

func TestI7_NetworkBroadcastAndGatewayNeverHandedOut(t *testing.T) {
	cases := []struct {
		cidr      string
		want      []string
		gateway   string
		exhausted string
	}{
		{"10.0.1.0/29", []string{"10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5", "10.0.1.6"}, "10.0.1.1", "1 CIDR, 5 addresses"},
		{"10.0.1.0/30", []string{"10.0.1.2"}, "10.0.1.1", "1 CIDR, 1 addresses"},
		{"10.0.1.0/31", []string{"10.0.1.0", "10.0.1.1"}, "", "1 CIDR, 2 addresses"},
		{"10.0.1.7/32", []string{"10.0.1.7"}, "", "1 CIDR, 1 addresses"},
		{"fd00::/125", []string{"fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6"}, "fd00::1", "5 addresses"},
		{"fd00::/127", []string{"fd00::", "fd00::1"}, "", "2 addresses"},
		{"fd00::9/128", []string{"fd00::9"}, "", "1 addresses"},
	}
	for _, c := range cases {
		t.Run(c.cidr, func(t *testing.T) {
			a := mustNew(t, &MemoryStore{}, pool("default", c.cidr))
			got, err := drain(t, a, "default", 20)
			if fmt.Sprint(got) != "["+strings.Join(c.want, " ")+"]" {
				t.Errorf("handed out %v, want %v", got, c.want)
			}
			if !IsReason(err, ReasonExhausted) || !strings.Contains(err.Error(), c.exhausted) {
				t.Errorf("error %v, want exhausted with %q", err, c.exhausted)
			}
			gw, ok := Gateway(netip.MustParsePrefix(c.cidr))
			if c.gateway == "" && ok || c.gateway != "" && gw.String() != c.gateway {
				t.Errorf("gateway %v %v, want %q", gw, ok, c.gateway)
			}
		})
	}
}

func TestI22_PoolCIDRFirstAndLastReserved(t *testing.T) {
	// Node CIDRs of /32 carved from pool CIDR 10.9.0.0/30: the pool's first and
	// last address come to the node as whole node CIDRs and stay unused.
	p := pool("mars", "10.9.0.0/32", "10.9.0.1/32", "10.9.0.2/32", "10.9.0.3/32")
	p.Reserved = []netip.Addr{netip.MustParseAddr("10.9.0.0"), netip.MustParseAddr("10.9.0.3")}
	a := mustNew(t, &MemoryStore{}, p)
	got, err := drain(t, a, "mars", 10)
	if fmt.Sprint(got) != "[10.9.0.1 10.9.0.2]" {
		t.Errorf("handed out %v, want [10.9.0.1 10.9.0.2]", got)
	}
	if err == nil || err.Error() != `pool "mars" has no free IPv4 address on node n1 (4 CIDRs, 2 addresses, all in use)` {
		t.Errorf("error %v", err)
	}
	if n := Capacity(netip.MustParsePrefix("10.9.0.0/32"), p.Layout); n.Sign() != 0 {
		t.Errorf("capacity of a reserved /32 is %v, want 0", n)
	}
}

// CiliumPodIPPool allowFirstIP and allowLastIP (Cilium 1.20): a node CIDR's
// network and broadcast addresses are handed out too, never its gateway;
// each alone, or both; and small CIDRs are unaffected.
func TestAllowFirstAndLastIP(t *testing.T) {
	for _, tc := range []struct {
		layout Layout
		want   string
	}{
		{Layout{}, "[10.9.0.2]"},
		{Layout{AllowFirst: true}, "[10.9.0.0 10.9.0.2]"},
		{Layout{AllowLast: true}, "[10.9.0.2 10.9.0.3]"},
		{Layout{AllowFirst: true, AllowLast: true}, "[10.9.0.0 10.9.0.2 10.9.0.3]"},
	} {
		p := pool("edge", "10.9.0.0/30")
		p.Layout = tc.layout
		a := mustNew(t, &MemoryStore{}, p)
		got, err := drain(t, a, "edge", 10)
		if fmt.Sprint(got) != tc.want || err == nil {
			t.Errorf("%+v: handed out %v (then %v), want %s then exhausted", tc.layout, got, err, tc.want)
		}
		if al, _ := a.Get(Key{ContainerID: "c0", IfName: "eth0"}); len(al.IPs) == 0 || al.IPs[0].Gateway != netip.MustParseAddr("10.9.0.1") {
			t.Errorf("%+v: the first pod has %v, want gateway 10.9.0.1", tc.layout, al.IPs)
		}
		if n := Capacity(netip.MustParsePrefix("10.9.0.0/30"), tc.layout); n.Cmp(big.NewInt(int64(len(got)))) != 0 {
			t.Errorf("%+v: capacity %v, handed out %d", tc.layout, n, len(got))
		}
	}
	if n := Capacity(netip.MustParsePrefix("10.9.0.0/31"), Layout{AllowFirst: true}); n.Cmp(big.NewInt(2)) != 0 {
		t.Errorf("a /31 holds %v, want 2 whatever the layout", n)
	}
}

func TestExhaustionNamesPool(t *testing.T) {
	a := mustNew(t, &MemoryStore{}, pool("mars", "10.0.1.0/24", "10.0.2.0/24"))
	got, err := drain(t, a, "mars", 600)
	if len(got) != 506 {
		t.Errorf("handed out %d addresses, want 2×253", len(got))
	}
	want := `pool "mars" has no free IPv4 address on node n1 (2 CIDRs, 506 addresses, all in use)`
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	_, err = a.Allocate(req("x", "venus"))
	if !IsReason(err, ReasonNoCIDR) || !strings.Contains(err.Error(), `pool "venus"`) {
		t.Errorf("unknown pool: %v", err)
	}
}

func TestAllocateIsIdempotentAndDualStack(t *testing.T) {
	a := mustNew(t, &MemoryStore{}, pool("default", "10.0.1.0/24", "fd00:1::/120"))
	first, err := a.Allocate(req("c1", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if len(first.IPs) != 2 || !first.IPs[0].Address.Is4() || !first.IPs[1].Address.Is6() {
		t.Fatalf("want one IPv4 and one IPv6 address, got %+v", first.IPs)
	}
	if first.IPs[0].Gateway.String() != "10.0.1.1" || first.IPs[1].Gateway.String() != "fd00:1::1" {
		t.Errorf("gateways %+v", first.IPs)
	}
	again, err := a.Allocate(req("c1", "default"))
	if err != nil || fmt.Sprint(again.IPs) != fmt.Sprint(first.IPs) {
		t.Errorf("retried ADD got %+v, %v; want %+v", again.IPs, err, first.IPs)
	}
	if n := len(a.List()); n != 1 {
		t.Errorf("%d allocations, want 1", n)
	}
	// Only IPv4 when asked.
	r := req("c2", "default")
	r.Families = []Family{IPv4}
	if al, err := a.Allocate(r); err != nil || len(al.IPs) != 1 {
		t.Errorf("IPv4 only: %+v %v", al, err)
	}
	// A family the pool lacks on the node.
	r = req("c3", "default")
	r.Families = []Family{IPv4, IPv6}
	a.SetPools([]Pool{pool("default", "10.0.1.0/24")})
	if _, err := a.Allocate(r); !IsReason(err, ReasonNoCIDR) || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("missing IPv6 CIDR: %v", err)
	}
}

func TestReleaseIsIdempotentAndAddressNotReusedAtOnce(t *testing.T) {
	a := mustNew(t, &MemoryStore{}, pool("default", "10.0.1.0/24"))
	one, _ := a.Allocate(req("c1", "default"))
	if _, ok, err := a.Release(one.Key); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	if _, ok, err := a.Release(one.Key); ok || err != nil {
		t.Fatalf("second release: %v %v", ok, err)
	}
	two, _ := a.Allocate(req("c2", "default"))
	if two.IPs[0].Address == one.IPs[0].Address {
		t.Errorf("released address %s handed out again at once", one.IPs[0].Address)
	}
}

func TestNewSandboxOfSamePodReplacesOld(t *testing.T) {
	var released []string
	a, _ := New(&MemoryStore{}, Options{Node: "n1", OnRelease: func(al Allocation, why string) { released = append(released, al.ContainerID) }})
	a.SetPools([]Pool{pool("default", "10.0.1.0/24")})
	old := req("old", "default")
	old.UID = "pod-1"
	if _, err := a.Allocate(old); err != nil {
		t.Fatal(err)
	}
	fresh := req("new", "default")
	fresh.UID = "pod-1"
	if _, err := a.Allocate(fresh); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Get(old.Key); ok || fmt.Sprint(released) != "[old]" {
		t.Errorf("old sandbox's allocation kept (released %v)", released)
	}
}

func TestRestoreAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	p := pool("default", "10.0.1.0/28")
	a := mustNew(t, FileStore{Path: path}, p)
	var before []string
	for i := range 5 {
		al, err := a.Allocate(req(fmt.Sprint(i), "default"))
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, al.IPs[0].Address.String())
	}
	// "Restart": a new allocator from the same file.
	b := mustNew(t, FileStore{Path: path}, p)
	for i := range 5 {
		al, err := b.Allocate(req(fmt.Sprint(i), "default"))
		if err != nil || al.IPs[0].Address.String() != before[i] {
			t.Errorf("after restart %d got %v %v, want %s", i, al.IPs, err, before[i])
		}
	}
	got, _ := drain(t, b, "default", 100)
	seen := map[netip.Addr]bool{}
	for _, x := range before {
		seen[netip.MustParseAddr(x)] = true
	}
	for _, x := range got {
		if seen[x] {
			t.Errorf("%s handed out twice after restart", x)
		}
		seen[x] = true
	}
	if len(seen) != 13 {
		t.Errorf("%d distinct addresses, want all 13 of the /28", len(seen))
	}
}

func TestRebootDropsAllocations(t *testing.T) {
	store := &MemoryStore{}
	a, _ := New(store, Options{BootID: "boot-1"})
	a.SetPools([]Pool{pool("default", "10.0.1.0/24")})
	if _, err := a.Allocate(req("c1", "default")); err != nil {
		t.Fatal(err)
	}
	same, _ := New(store, Options{BootID: "boot-1"})
	if len(same.List()) != 1 {
		t.Errorf("same boot lost its allocation")
	}
	rebooted, _ := New(store, Options{BootID: "boot-2"})
	if len(rebooted.List()) != 0 || len(store.State.Allocations) != 0 {
		t.Errorf("allocations survived a reboot: %+v", rebooted.List())
	}
}

func TestFailedSaveChangesNothing(t *testing.T) {
	store := &MemoryStore{}
	a := mustNew(t, store, pool("default", "10.0.1.0/24"))
	one, _ := a.Allocate(req("c1", "default"))
	store.Err = errors.New("disk full")
	if _, err := a.Allocate(req("c2", "default")); err == nil {
		t.Error("allocation reported although it was not persisted")
	}
	if _, ok, err := a.Release(one.Key); ok || err == nil {
		t.Error("release reported although it was not persisted")
	}
	if len(a.List()) != 1 {
		t.Errorf("memory and store disagree: %+v", a.List())
	}
}

func TestRetireOnlyUnusedCIDRs(t *testing.T) {
	a := mustNew(t, &MemoryStore{}, pool("mars", "10.0.1.0/24", "10.0.2.0/24"))
	al, _ := a.Allocate(req("c1", "mars"))
	used := al.IPs[0].CIDR
	other := netip.MustParsePrefix("10.0.2.0/24")
	if used == other {
		other = netip.MustParsePrefix("10.0.1.0/24")
	}
	if a.Retire("mars", used) {
		t.Errorf("retired %s although %s is in it", used, al.IPs[0].Address)
	}
	if !a.Retire("mars", other) {
		t.Errorf("did not retire unused %s", other)
	}
	for i := range 300 {
		al, err := a.Allocate(req(fmt.Sprint(i), "mars"))
		if err != nil {
			break
		}
		if other.Contains(al.IPs[0].Address) {
			t.Fatalf("allocated %s from retired %s", al.IPs[0].Address, other)
		}
	}
}

func TestConcurrentAllocationsNeverCollide(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	a := mustNew(t, FileStore{Path: path}, pool("default", "10.0.0.0/25", "fd00::/121"))
	var wg sync.WaitGroup
	results := make([]Allocation, 120)
	errs := make([]error, 120)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = a.Allocate(req(fmt.Sprint(i), "default"))
			if i%3 == 0 && errs[i] == nil {
				_, _, errs[i] = a.Release(results[i].Key)
				results[i] = Allocation{}
			}
		})
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i, al := range results {
		if errs[i] != nil {
			t.Fatalf("%d: %v", i, errs[i])
		}
		for _, ip := range al.IPs {
			if other, dup := seen[ip.Address]; dup {
				t.Errorf("%s given to %s and %s", ip.Address, other, al.Key)
			}
			seen[ip.Address] = al.Key.String()
		}
	}
	reloaded := mustNew(t, FileStore{Path: path})
	if len(reloaded.List()) != 80 {
		t.Errorf("file holds %d allocations, want 80", len(reloaded.List()))
	}
}
