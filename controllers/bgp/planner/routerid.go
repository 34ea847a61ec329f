package planner

import (
	"maps"
	"net/netip"
	"slices"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// routerIDs hands out router IDs. In ip-pool mode an address is taken once:
// manual IDs inside the pool first, then the IDs nodes hold now (if still
// in the pool and not taken), then the lowest free ones, in node order.
type routerIDs struct {
	mode    string
	pool    netip.Prefix
	current map[string]map[string]string
	taken   map[netip.Addr]bool
	kept    map[netip.Addr]string // current IDs kept: address → node/instance
}

func newRouterIDs(in Input, owner map[string]string) *routerIDs {
	r := &routerIDs{mode: in.RouterIDMode, pool: in.RouterIDPool.Masked(), current: in.CurrentRouterIDs,
		taken: map[netip.Addr]bool{}, kept: map[netip.Addr]string{}}
	if r.mode != RouterIDIPPool {
		return r
	}
	for node := range owner {
		for _, io := range in.Overrides[node].BGPInstances {
			if io.RouterID != nil {
				if a, err := netip.ParseAddr(*io.RouterID); err == nil && r.pool.Contains(a) {
					r.taken[a] = true
				}
			}
		}
	}
	// Then the IDs nodes hold now, so that no node's ID changes because
	// another node came or went.
	for _, node := range sortedKeys(owner) {
		for _, inst := range sortedKeys(r.current[node]) {
			if a, err := netip.ParseAddr(r.current[node][inst]); err == nil && r.pool.Contains(a) && !r.taken[a] {
				r.taken[a], r.kept[a] = true, node+"/"+inst
			}
		}
	}
	return r
}

// assign returns node's router ID for instance, or a problem.
func (r *routerIDs) assign(n Node, instance string, io *ciliumv2.CiliumBGPNodeConfigInstanceOverride) (string, string) {
	if io != nil && io.RouterID != nil {
		return *io.RouterID, "" // manual: the user's responsibility, as in the seed system
	}
	if r.mode != RouterIDIPPool {
		if !n.IPv4.IsValid() {
			// An IPv6-only node: it derives its ID from its cilium_host
			// MAC itself (B46), so this is no problem.
			return "", ""
		}
		return n.IPv4.String(), ""
	}
	if cur, err := netip.ParseAddr(r.current[n.Name][instance]); err == nil && r.kept[cur] == n.Name+"/"+instance {
		return cur.String(), ""
	}
	for a := r.pool.Addr(); r.pool.Contains(a); a = a.Next() {
		if !r.taken[a] {
			r.taken[a] = true
			return a.String(), ""
		}
	}
	return "", "the router ID pool " + r.pool.String() + " is exhausted"
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
