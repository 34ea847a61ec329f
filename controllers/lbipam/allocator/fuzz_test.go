package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

// FuzzAllocateInvariants builds random pools and Services from a seed and
// checks what must hold whatever the input:
//   - an address is held by two Services only if they are compatible sharers;
//   - every held address lies in a pool that selects (or keeps) its Service;
//   - an address a pool reserves (allowFirstLastIPs: No) is only ever kept by
//     a Service that held it, never given out;
//   - a Service is satisfied exactly when it got what it asked for;
//   - fed back as holdings (a restart, or the next pass), every held address
//     stays with its Service; and a third pass changes nothing at all.
//
// (The second pass may still give an unsatisfied Service an address: an older
// Service that found nothing can join an address a younger one took later in
// the first pass. It never takes one away.)
//
// `go test` runs the seeds below; `go test -fuzz FuzzAllocateInvariants`
// explores further.
func FuzzAllocateInvariants(f *testing.F) {
	for seed := range uint64(64) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		pools, svcs := randomWorld(rng)
		res := Allocate(dualStack, pools, svcs)
		checkInvariants(t, pools, svcs, res)

		second := Allocate(dualStack, pools, feedBack(svcs, res))
		checkInvariants(t, pools, svcs, second)
		for k, r := range res.Services {
			for _, a := range r.Addresses {
				if !strings.Contains(","+addrsOf(second.Services[k])+",", ","+a.Addr.String()+",") {
					t.Fatalf("seed %d: %s lost %s on the second pass: [%s] -> [%s] %s", seed, k, a.Addr, addrsOf(r), addrsOf(second.Services[k]), second.Services[k].Reason)
				}
			}
		}
		third := Allocate(dualStack, pools, feedBack(svcs, second))
		for k, r := range second.Services {
			if addrsOf(r) != addrsOf(third.Services[k]) || r.Reason != third.Services[k].Reason {
				t.Fatalf("seed %d: %s changed on the third pass: [%s] %s -> [%s] %s", seed, k, addrsOf(r), r.Reason, addrsOf(third.Services[k]), third.Services[k].Reason)
			}
		}
		for name, p := range second.Pools {
			if p.Used.Cmp(third.Pools[name].Used) != 0 {
				t.Fatalf("seed %d: pool %s count changed on the third pass", seed, name)
			}
		}
	})
}

// feedBack returns svcs holding what res gave them.
func feedBack(svcs []Service, res Result) []Service {
	out := make([]Service, len(svcs))
	for i, s := range svcs {
		s.Held, s.HeldFrom = nil, HeldDecided
		for _, a := range res.Services[s.Key].Addresses {
			s.Held = append(s.Held, a.Addr)
		}
		out[i] = s
	}
	return out
}

func randomWorld(rng *rand.Rand) ([]Pool, []Service) {
	colors := []string{"red", "blue"}
	var pools []Pool
	for i := range 1 + rng.IntN(4) {
		var blocks []string
		for range 1 + rng.IntN(2) {
			if rng.IntN(4) == 0 {
				blocks = append(blocks, fmt.Sprintf("2004::%x/126", rng.IntN(4)*4))
			} else {
				blocks = append(blocks, fmt.Sprintf("10.0.%d.%d/30", rng.IntN(2), rng.IntN(3)*4))
			}
		}
		p := pool(fmt.Sprintf("p%d", i), rng.IntN(3), blocks...)
		p.AllowFirstLastIPs = rng.IntN(2) == 0
		p.Disabled = rng.IntN(6) == 0
		if rng.IntN(2) == 0 {
			p.Selector = labels.SelectorFromSet(labels.Set{"color": colors[rng.IntN(2)]})
		}
		pools = append(pools, p)
	}
	var svcs []Service
	for i := range 1 + rng.IntN(14) {
		mods := []func(*Service){func(s *Service) {
			s.Labels = labels.Set{"color": colors[rng.IntN(2)], "io.kubernetes.service.namespace": s.Key.Namespace, "io.kubernetes.service.name": s.Key.Name}
		}}
		if rng.IntN(3) == 0 {
			mods = append(mods, sharing("k", int32(80+rng.IntN(3))))
		}
		switch rng.IntN(5) {
		case 0:
			mods = append(mods, family(PreferDualStack, IPv4, IPv6))
		case 1:
			mods = append(mods, family(SingleStack, IPv6))
		}
		if rng.IntN(5) == 0 {
			mods = append(mods, requested(fmt.Sprintf("10.0.%d.%d", rng.IntN(2), rng.IntN(12))))
		}
		if rng.IntN(3) == 0 {
			mods = append(mods, held(fmt.Sprintf("10.0.%d.%d", rng.IntN(2), rng.IntN(12))))
			src := HeldSource(rng.IntN(3))
			mods = append(mods, func(s *Service) { s.HeldFrom = src })
		}
		if rng.IntN(8) == 0 {
			mods = append(mods, func(s *Service) { s.RequestErrors = []string{"typo"} })
		}
		if rng.IntN(4) == 0 {
			mods = append(mods, ns(fmt.Sprintf("ns%d", rng.IntN(2)), "*"))
		}
		svcs = append(svcs, svc(fmt.Sprintf("s%02d", i), rng.IntN(5), mods...))
	}
	return pools, svcs
}

func checkInvariants(t *testing.T, pools []Pool, svcs []Service, res Result) {
	t.Helper()
	byKey := map[string]*Service{}
	for i := range svcs {
		byKey[svcs[i].Key.String()] = &svcs[i]
	}
	poolByName := map[string]Pool{}
	for _, p := range pools {
		poolByName[p.Name] = p
	}
	holders := map[netip.Addr][]*Service{}
	for k, r := range res.Services {
		s := byKey[k.String()]
		for _, a := range r.Addresses {
			for _, other := range holders[a.Addr] {
				if ok, why := compatible(s, other); !ok {
					t.Fatalf("%s and %s both hold %s but may not share: %s", s.Key, other.Key, a.Addr, why)
				}
			}
			holders[a.Addr] = append(holders[a.Addr], s)
			if !PoolCovers(poolByName[a.Pool], a.Addr) {
				t.Fatalf("%s holds %s counted against pool %s, which does not have it", s.Key, a.Addr, a.Pool)
			}
			if reservedIn(poolByName[a.Pool], a.Addr) && (!slices.Contains(s.Held, a.Addr) || s.HeldFrom == HeldImported) {
				t.Fatalf("%s was given %s, which pool %s reserves (allowFirstLastIPs: No)", s.Key, a.Addr, a.Pool)
			}
			if !slices.ContainsFunc(pools, func(p Pool) bool {
				return PoolCovers(p, a.Addr) && (p.Selector == nil || p.Selector.Matches(s.Labels))
			}) {
				t.Fatalf("%s holds %s, but no pool that has it selects the Service", s.Key, a.Addr)
			}
		}
		if len(s.Requested) > 0 && r.Satisfied && len(r.Addresses) != len(s.Requested) {
			t.Fatalf("%s satisfied with %s but requested %v", s.Key, addrsOf(r), s.Requested)
		}
		if r.Satisfied != (r.Reason == ReasonSatisfied) || (!r.Satisfied && r.Message == "") {
			t.Fatalf("%s: satisfied=%v reason=%q message=%q", s.Key, r.Satisfied, r.Reason, r.Message)
		}
	}
	for name, p := range res.Pools {
		if p.Used.Cmp(p.Total) > 0 {
			t.Fatalf("pool %s uses %s of %s", name, p.Used, p.Total)
		}
	}
}

// reservedIn says whether p keeps addr out of what it gives out: a first or
// last address of one of its CIDRs that no block of p makes usable.
func reservedIn(p Pool, addr netip.Addr) bool {
	for _, b := range p.Blocks {
		if _, usable, err := parseBlock(b, p.AllowFirstLastIPs); err == nil && usable != nil && usable.Contains(addr) {
			return false
		}
	}
	return PoolCovers(p, addr)
}
