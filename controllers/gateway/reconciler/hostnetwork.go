package reconciler

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// HostNetwork is the seed's host network mode for Gateways: no
// LoadBalancer Service; each selected node's proxy listens on the
// listeners' own ports on all its addresses, and the Gateway's addresses
// are those nodes' InternalIPs.
type HostNetwork struct {
	// Nodes selects the nodes whose proxies listen (everything: all).
	Nodes labels.Selector
}

// selects says whether node n listens for host-network frontends.
func (h *HostNetwork) selects(n *corev1.Node) bool {
	return n.DeletionTimestamp == nil && (h.Nodes == nil || h.Nodes.Matches(labels.Set(n.Labels)))
}

// hostAddresses are the selected nodes' InternalIPs, sorted.
func (h *HostNetwork) hostAddresses(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		if n := &nodes[i]; h.selects(n) {
			if ip := internalIPv4(n); ip != "" {
				out = append(out, ip)
			}
		}
	}
	slices.Sort(out)
	return out
}

// hostPorts gives host-network frontends their listener ports as proxy
// ports. A port is one Gateway's on a node: when two want it, the older
// Gateway (then by name) keeps it and the other is not served, with an
// error naming the holder; a port in the proxy port range is refused too,
// since load-balanced frontends get their proxy ports from there.
// gateways holds each frontend's Gateway, by the frontend's key.
func hostPorts(frontends []*frontend, gateways map[types.NamespacedName]*gwv1.Gateway, first, last int32) (map[servicePort]int32, map[types.NamespacedName]error) {
	order := slices.Clone(frontends)
	slices.SortFunc(order, func(a, b *frontend) int {
		ga, gb := gateways[a.key], gateways[b.key]
		return cmp.Or(ga.CreationTimestamp.Compare(gb.CreationTimestamp.Time), cmp.Compare(keyOf(ga).String(), keyOf(gb).String()))
	})
	ports := map[servicePort]int32{}
	errs := map[types.NamespacedName]error{}
	holder := map[int32]types.NamespacedName{} // the Gateway
	for _, fe := range order {
		var err error
		for _, p := range fe.ports() {
			switch h, taken := holder[p]; {
			case taken:
				err = fmt.Errorf("port %d is already used on the host network by Gateway %s", p, h)
			case p >= first && p <= last:
				err = fmt.Errorf("port %d is in the proxy port range %d-%d (--proxy-ports), which load-balanced Gateways and Ingresses use", p, first, last)
			}
			if err != nil {
				break
			}
		}
		if err != nil {
			errs[fe.key] = err
			continue
		}
		for _, p := range fe.ports() {
			holder[p] = keyOf(gateways[fe.key])
			ports[servicePort{fe.key, p}] = p
		}
	}
	return ports, errs
}
