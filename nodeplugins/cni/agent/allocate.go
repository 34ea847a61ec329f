package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/nodeplugins/cni/client"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

// CNI error codes the agent answers with (the CNI spec's well-known codes).
const (
	codeInvalidEnv   uint = 4  // a CNI_ARGS value is missing or wrong
	codeIOFailure    uint = 5  // the state file could not be written
	codeTryLater     uint = 11 // transient: no CIDR yet, pool exhausted or unknown
	codeInvalidInput uint = 7
)

// allocate answers an ADD: the pod interface's addresses, the same ones on a
// retry. In multi-pool mode the pool comes from the pod's (or its
// namespace's) annotation at this moment and stays with the allocation
// (I14). When the pool has no room on the node yet, the ADD waits up to
// CIDRWait for the controller to hand the node a CIDR.
func (a *Agent) allocate(ctx context.Context, r client.AllocateRequest) (ipam.Allocation, error) {
	key := ipam.Key{ContainerID: r.ContainerID, IfName: r.IfName}
	if key.ContainerID == "" || key.IfName == "" {
		return ipam.Allocation{}, &client.Error{Code: codeInvalidInput, Message: "containerID and ifName are required"}
	}
	if al, ok := a.alloc.Get(key); ok {
		return al, nil
	}
	req := ipam.Request{Key: key, Pod: ipam.Pod{Namespace: r.PodNamespace, Name: r.PodName, UID: r.PodUID}, Pool: DefaultPool}
	if a.cfg.Mode == ModeMultiPool {
		pool, families, err := a.podPool(ctx, r)
		if err != nil {
			return ipam.Allocation{}, err
		}
		req.Pool, req.Families = pool, families
	}

	waiter := r.PodUID
	if waiter == "" {
		waiter = key.String()
	}
	defer func() {
		a.mu.Lock()
		delete(a.waiting, waiter)
		a.mu.Unlock()
		a.poke() // the requests follow what is in use
	}()
	deadline := time.NewTimer(a.cfg.CIDRWait)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		changed := a.poolsChanged
		a.mu.Unlock()
		al, err := a.alloc.Allocate(req)
		if err == nil {
			a.log.Info("allocated addresses", "pod", r.PodNamespace+"/"+r.PodName, "podUID", r.PodUID, "container", r.ContainerID, "ifName", r.IfName, "pool", al.Pool, "ips", ipsOf(al))
			return al, nil
		}
		var pe *ipam.PoolError
		if !errors.As(err, &pe) {
			return ipam.Allocation{}, &client.Error{Code: codeIOFailure, Message: err.Error()}
		}
		// Only the controller can end a wait: in multi-pool mode by adding a
		// CIDR (missing or full), in the other modes by writing the first one.
		if pe.Reason == ipam.ReasonExhausted && a.cfg.Mode != ModeMultiPool {
			return ipam.Allocation{}, &client.Error{Code: codeTryLater, Message: err.Error()}
		}
		a.mu.Lock()
		_, known := a.waiting[waiter]
		a.waiting[waiter] = req.Pool
		a.mu.Unlock()
		if !known {
			a.poke() // count the waiting pod in the requests
		}
		select {
		case <-changed:
		case <-deadline.C:
			return ipam.Allocation{}, &client.Error{Code: codeTryLater, Message: fmt.Sprintf("%v (waited %s for the IPAM controller)", err, a.cfg.CIDRWait)}
		case <-ctx.Done():
			return ipam.Allocation{}, &client.Error{Code: codeTryLater, Message: fmt.Sprintf("%v (gave up: %v)", err, ctx.Err())}
		}
	}
}

// podPool returns the pool of the pod of an ADD and the families it serves.
func (a *Agent) podPool(ctx context.Context, r client.AllocateRequest) (string, []ipam.Family, error) {
	pool := DefaultPool
	if r.PodName != "" && r.PodNamespace != "" {
		var pod corev1.Pod
		nn := types.NamespacedName{Namespace: r.PodNamespace, Name: r.PodName}
		err := a.client.Get(ctx, nn, &pod)
		if apierrors.IsNotFound(err) || err == nil && r.PodUID != "" && string(pod.UID) != r.PodUID {
			err = a.api.Get(ctx, nn, &pod) // the cache may not have seen the pod yet
		}
		if err != nil {
			code := codeTryLater
			if apierrors.IsNotFound(err) {
				code = codeInvalidEnv
			}
			return "", nil, &client.Error{Code: code, Message: fmt.Sprintf("reading pod %s to find its IP pool: %v", nn, err)}
		}
		if pool, err = a.poolOf(ctx, &pod); err != nil {
			return "", nil, &client.Error{Code: codeTryLater, Message: fmt.Sprintf("choosing the IP pool of pod %s: %v", nn, err)}
		}
	}
	var p ciliumv2alpha1.CiliumPodIPPool
	if err := a.client.Get(ctx, types.NamespacedName{Name: pool}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil, &client.Error{Code: codeTryLater, Message: fmt.Sprintf("pod %s/%s asks for IP pool %q, which does not exist (no CiliumPodIPPool of that name)", r.PodNamespace, r.PodName, pool)}
		}
		return "", nil, &client.Error{Code: codeTryLater, Message: fmt.Sprintf("reading IP pool %q: %v", pool, err)}
	}
	return pool, poolFamilies(&p), nil
}

// release answers a DEL; releasing nothing succeeds.
func (a *Agent) release(k client.Key) error {
	al, ok, err := a.alloc.Release(ipam.Key{ContainerID: k.ContainerID, IfName: k.IfName})
	if err != nil {
		return &client.Error{Code: codeIOFailure, Message: err.Error()}
	}
	if ok {
		a.log.Info("released addresses", "pod", al.Namespace+"/"+al.Name, "podUID", al.UID, "container", al.ContainerID, "ifName", al.IfName, "ips", ipsOf(al), "reason", "CNI DEL")
		a.poke()
	}
	return nil
}

// status is ready once the node has a CIDR (crd mode: an address) in the
// default pool.
func (a *Agent) status() client.Status {
	a.mu.Lock()
	synced := a.synced
	a.mu.Unlock()
	if !synced {
		return client.Status{Reason: "the agent has not read CiliumNode " + a.cfg.NodeName + " yet"}
	}
	for _, p := range a.alloc.Pools() {
		if p.Name == DefaultPool && len(p.CIDRs) > 0 {
			return client.Status{Ready: true}
		}
	}
	switch a.cfg.Mode {
	case ModeMultiPool:
		return client.Status{Reason: fmt.Sprintf("node %s holds no CIDR of pool %q yet (spec.ipam.pools.allocated)", a.cfg.NodeName, DefaultPool)}
	case ModeCRD:
		return client.Status{Reason: waitingForListed(a.cfg.NodeName)}
	}
	return client.Status{Reason: fmt.Sprintf("node %s has no pod CIDR yet (CiliumNode spec.ipam.podCIDRs)", a.cfg.NodeName)}
}

// toClient turns an allocation into the socket protocol's form.
func toClient(al ipam.Allocation) client.Allocation {
	out := client.Allocation{
		Key:          client.Key{ContainerID: al.ContainerID, IfName: al.IfName},
		PodNamespace: al.Namespace, PodName: al.Name, PodUID: al.UID,
		Pool: al.Pool,
	}
	for _, ip := range al.IPs {
		c := client.IP{Address: fmt.Sprintf("%s/%d", ip.Address, ip.CIDR.Bits())}
		if ip.Gateway.IsValid() {
			c.Gateway = ip.Gateway.String()
		}
		out.IPs = append(out.IPs, c)
	}
	return out
}
