package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

// crd mode: another actor (a cloud integration, an operator's own tooling)
// lists single addresses in the node's spec.ipam.pool and ipv6-pool. The
// agent hands them out as the default pool, one host-sized CIDR each, and
// tells that actor which ones pods hold through status.ipam.used, so that it
// never takes back an address in use. An address removed from the list stays
// with its pod (the allocator keeps allocations whose CIDR is gone) and is not
// handed out again once released.

// reconcileListed serves the listed addresses and reports the used ones.
func (a *Agent) reconcileListed(ctx context.Context, node *ciliumv2.CiliumNode) (reconcile.Result, error) {
	listed := listedAddresses(node, a.log)
	a.mu.Lock()
	firstRead := !a.synced
	a.mu.Unlock()
	hadSome := slices.ContainsFunc(a.alloc.Pools(), func(p ipam.Pool) bool { return len(p.CIDRs) > 0 })
	if len(listed) == 0 && (firstRead || hadSome) {
		a.log.Info(waitingForListed(a.cfg.NodeName))
	}
	a.setPools([]ipam.Pool{{Name: DefaultPool, CIDRs: listed}})
	return a.writeUsed(ctx, node, time.Now())
}

// waitingForListed is the message of a crd-mode node without addresses (the
// seed system's words, so that runbooks written for it still match).
func waitingForListed(node string) string {
	return fmt.Sprintf("Waiting for initial IP to become available in '%s' custom resource", node)
}

// listedAddresses returns spec.ipam.pool and ipv6-pool as host prefixes,
// whatever map an address is listed in, in address order (maps have none,
// and a changed order would count as changed pools); keys that are not
// addresses are skipped (the IPAM controller's status names them).
func listedAddresses(node *ciliumv2.CiliumNode, log logr.Logger) []netip.Prefix {
	seen := map[netip.Addr]bool{}
	var out []netip.Prefix
	for _, m := range []ciliumv2.AllocationMap{node.Spec.IPAM.Pool, node.Spec.IPAM.IPv6Pool} {
		for key := range m {
			ip, err := netip.ParseAddr(key)
			if err != nil {
				log.V(1).Info("ignoring a spec.ipam.pool entry that is not an IP address", "entry", key)
				continue
			}
			ip = ip.Unmap()
			if !seen[ip] {
				seen[ip] = true
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// writeUsed brings status.ipam.used and ipv6-used to the addresses pods
// hold, at most once per UsedUpdateInterval: a burst of pods costs one
// write, and the reconcile comes back when the interval is over.
func (a *Agent) writeUsed(ctx context.Context, node *ciliumv2.CiliumNode, now time.Time) (reconcile.Result, error) {
	used4, used6 := usedMaps(a.alloc.List())
	if equality.Semantic.DeepEqual(used4, node.Status.IPAM.Used) && equality.Semantic.DeepEqual(used6, node.Status.IPAM.IPv6Used) {
		return reconcile.Result{}, nil
	}
	if wait := a.usedWritten.Add(a.cfg.UsedUpdateInterval).Sub(now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	before := node.DeepCopy()
	node.Status.IPAM.Used, node.Status.IPAM.IPv6Used = used4, used6
	// A merge patch touches only these two maps: the IPAM controller writes
	// the rest of the status.
	if err := a.client.Status().Patch(ctx, node, client.MergeFrom(before)); err != nil {
		return reconcile.Result{}, fmt.Errorf("writing status.ipam.used of CiliumNode %s: %w", node.Name, err)
	}
	a.usedWritten = now
	a.log.V(1).Info("wrote the used addresses", "ipv4", len(used4), "ipv6", len(used6))
	return reconcile.Result{}, nil
}

// usedMaps returns, per family, each allocated address with its owner:
// "namespace/pod" as the seed system writes it, or the CNI key of an ADD
// that named no pod. Empty maps are nil, as the API server returns them.
func usedMaps(allocations []ipam.Allocation) (v4, v6 ciliumv2.AllocationMap) {
	for _, al := range allocations {
		owner := al.Namespace + "/" + al.Name
		if al.Name == "" {
			owner = al.Key.String()
		}
		for _, ip := range al.IPs {
			m := &v4
			if !ip.Address.Is4() {
				m = &v6
			}
			if *m == nil {
				*m = ciliumv2.AllocationMap{}
			}
			(*m)[ip.Address.String()] = ciliumv2.AllocationIP{Owner: owner}
		}
	}
	return v4, v6
}
