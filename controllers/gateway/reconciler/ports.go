package reconciler

import (
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// proxyPorts hands each port of each generated Service (a Gateway listener
// port, an Ingress's 80 and 443) a port of its own on the node proxies
// (they all share one proxy per node). The choice lives in the Service's
// targetPort, so a restart reads it back; this memory covers the Services
// written but not yet in the cache.
type proxyPorts struct {
	First, Last int32

	mu       sync.Mutex
	assigned map[servicePort]int32
	// next is where the search for a free port starts.
	next int32
}

// servicePort is one port of one generated Service.
type servicePort struct {
	service types.NamespacedName
	port    int32
}

// plan returns the proxy port of every (Service, port) wanted, keeping
// earlier choices (from Services and memory) and giving the rest free ports
// in turn. Services not in wanted lose theirs. The error names what did
// not fit in the range.
func (p *proxyPorts) plan(services []corev1.Service, wanted map[types.NamespacedName][]int32) (map[servicePort]int32, map[types.NamespacedName]error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.assigned == nil {
		p.assigned = map[servicePort]int32{}
	}
	if p.next < p.First || p.next > p.Last {
		p.next = p.First
	}
	for i := range services {
		s := &services[i]
		if s.Labels[ManagedByLabel] != ManagedByValue {
			continue
		}
		for _, sp := range s.Spec.Ports {
			k := servicePort{keyOf(s), sp.Port}
			if _, ok := p.assigned[k]; !ok && sp.TargetPort.IntVal != 0 {
				p.assigned[k] = sp.TargetPort.IntVal
			}
		}
	}
	out := map[servicePort]int32{}
	used := map[int32]servicePort{}
	for k, v := range p.assigned {
		if !slices.Contains(wanted[k.service], k.port) {
			delete(p.assigned, k)
			continue
		}
		if other, taken := used[v]; taken {
			// Two choices collided (a lost write, a hand edit): keep one.
			if other.service.String() < k.service.String() {
				continue
			}
			delete(out, other)
		}
		used[v] = k
		out[k] = v
	}
	errs := map[types.NamespacedName]error{}
	size := p.Last - p.First + 1
	for _, svc := range sortedKeys(wanted) {
		for _, port := range wanted[svc] {
			k := servicePort{svc, port}
			if _, ok := out[k]; ok {
				continue
			}
			// Next fit: the first free port after the last one handed out,
			// so a port just released (its listener still draining on the
			// proxies) is the last to be reused.
			found := false
			for i := range size {
				cand := p.First + (p.next-p.First+i)%size
				if _, taken := used[cand]; !taken {
					used[cand], out[k], found = k, cand, true
					p.next = cand + 1
					break
				}
			}
			if !found {
				errs[svc] = fmt.Errorf("no free proxy port for port %d: all of %d-%d are in use (--proxy-ports)", port, p.First, p.Last)
			}
		}
	}
	for k, v := range out {
		p.assigned[k] = v
	}
	return out, errs
}
