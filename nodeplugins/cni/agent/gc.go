package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// runGC collects addresses of pods that no longer exist: once the cache has
// synced at start (pods deleted while the agent was down), then every
// GCInterval.
func (a *Agent) runGC(ctx context.Context) error {
	if !a.cache.WaitForCacheSync(ctx) {
		return nil // stopping
	}
	t := time.NewTicker(a.cfg.GCInterval)
	defer t.Stop()
	for {
		if err := a.collect(ctx); err != nil {
			a.log.Error(err, "garbage collection failed; trying again at the next interval")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// collect releases every allocation older than GCGrace whose pod UID is not
// among the pods on the node. The grace covers a pod whose ADD reached the
// agent before its cache saw the pod. Allocations without a pod UID (not
// made for Kubernetes) are left alone.
func (a *Agent) collect(ctx context.Context) error {
	var pods corev1.PodList
	if err := a.client.List(ctx, &pods); err != nil {
		return err
	}
	alive := map[string]bool{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == a.cfg.NodeName {
			alive[string(p.UID)] = true
		}
	}
	released := 0
	for _, al := range a.alloc.List() {
		if al.UID == "" || alive[al.UID] || time.Since(al.Created) < a.cfg.GCGrace {
			continue
		}
		if _, ok, err := a.alloc.Release(al.Key); err != nil {
			return err
		} else if ok {
			released++
			a.log.Info("released addresses", "pod", al.Namespace+"/"+al.Name, "podUID", al.UID, "container", al.ContainerID, "ifName", al.IfName, "ips", ipsOf(al), "reason", "garbage collection: the pod no longer exists on the node")
		}
	}
	if released > 0 {
		a.poke()
	}
	return nil
}
