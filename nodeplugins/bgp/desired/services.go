package desired

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// svcAddr is a Service address this node advertises.
type svcAddr struct {
	addr netip.Addr
	// local is true when the address's traffic policy is Local: it is then
	// only advertised from nodes with a ready endpoint, and always as a
	// host route, never aggregated (B44).
	local bool
}

// addresses returns the Service's addresses of the given kinds
// (LoadBalancerIP, ClusterIP, ExternalIP) that this node advertises:
//   - LoadBalancerIP: status.loadBalancer.ingress IPs of a LoadBalancer
//     Service whose class is unset or io.cilium/bgp-control-plane (B31,
//     B36); the class only filters these, as the API documents;
//   - ClusterIP: spec.clusterIPs, never "None" (B32);
//   - ExternalIP: spec.externalIPs (B33);
//
// and, with a Local policy (externalTrafficPolicy for LoadBalancerIP and
// ExternalIP, internalTrafficPolicy for ClusterIP: B37-B39), only while the
// node has a ready endpoint of the Service.
func (s *service) addresses(kinds []string) []svcAddr {
	spec := &s.svc.Spec
	eLocal := spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	iLocal := spec.InternalTrafficPolicy != nil && *spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	var out []svcAddr
	add := func(raw []string, local bool) {
		if local && !s.local {
			return
		}
		for _, r := range raw {
			if a, err := netip.ParseAddr(r); err == nil {
				out = append(out, svcAddr{addr: a.Unmap(), local: local})
			}
		}
	}
	seen := map[string]bool{}
	for _, k := range kinds {
		if seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case string(ciliumv2.BGPLoadBalancerIPAddr):
			if spec.Type != corev1.ServiceTypeLoadBalancer ||
				(spec.LoadBalancerClass != nil && *spec.LoadBalancerClass != ciliumv2.BGPLoadBalancerClass) {
				continue
			}
			var ips []string
			for _, ing := range s.svc.Status.LoadBalancer.Ingress {
				ips = append(ips, ing.IP)
			}
			add(ips, eLocal)
		case string(ciliumv2.BGPClusterIPAddr):
			ips := spec.ClusterIPs
			if len(ips) == 0 && spec.ClusterIP != "" {
				ips = []string{spec.ClusterIP}
			}
			// "None" (headless) does not parse as an address, so it drops out.
			add(ips, iLocal)
		case string(ciliumv2.BGPExternalIPAddr):
			add(spec.ExternalIPs, eLocal)
		}
	}
	return out
}

// hostPrefix is the host route of an address.
func hostPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}
