package reconciler

import (
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// proxyPorts hands each Gateway listener port a port of its own on the node
// proxies (they all share one proxy per node). The choice lives in the
// Gateway Service's targetPort, so a restart reads it back; this memory
// covers the Services written but not yet in the cache.
type proxyPorts struct {
	First, Last int32

	mu       sync.Mutex
	assigned map[gatewayPort]int32
}

type gatewayPort struct {
	gateway types.NamespacedName
	port    int32
}

// plan returns the port of every (Gateway, port) wanted, keeping earlier
// choices (from Services and memory) and giving the rest the lowest free
// ports. Gateways not in wanted lose theirs. The error names what did not
// fit in the range.
func (p *proxyPorts) plan(services []corev1.Service, wanted map[types.NamespacedName][]int32) (map[gatewayPort]int32, map[types.NamespacedName]error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.assigned == nil {
		p.assigned = map[gatewayPort]int32{}
	}
	for i := range services {
		s := &services[i]
		gw := s.Labels[OwningGatewayLabel]
		if s.Labels[ManagedByLabel] != ManagedByValue || gw == "" {
			continue
		}
		for _, sp := range s.Spec.Ports {
			k := gatewayPort{types.NamespacedName{Namespace: s.Namespace, Name: gw}, sp.Port}
			if _, ok := p.assigned[k]; !ok && sp.TargetPort.IntVal != 0 {
				p.assigned[k] = sp.TargetPort.IntVal
			}
		}
	}
	out := map[gatewayPort]int32{}
	used := map[int32]gatewayPort{}
	for k, v := range p.assigned {
		if !slices.Contains(wanted[k.gateway], k.port) {
			delete(p.assigned, k)
			continue
		}
		if other, taken := used[v]; taken {
			// Two choices collided (a lost write, a hand edit): keep one.
			if other.gateway.String() < k.gateway.String() {
				continue
			}
			delete(out, other)
		}
		used[v] = k
		out[k] = v
	}
	errs := map[types.NamespacedName]error{}
	next := p.First
	for _, gw := range sortedKeys(wanted) {
		for _, port := range wanted[gw] {
			k := gatewayPort{gw, port}
			if _, ok := out[k]; ok {
				continue
			}
			for ; next <= p.Last; next++ {
				if _, taken := used[next]; !taken {
					break
				}
			}
			if next > p.Last {
				errs[gw] = fmt.Errorf("no free proxy port for port %d: all of %d-%d are in use (--proxy-ports)", port, p.First, p.Last)
				continue
			}
			used[next], out[k] = k, next
		}
	}
	for k, v := range out {
		p.assigned[k] = v
	}
	return out, errs
}
