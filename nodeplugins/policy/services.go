package policy

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
)

// serviceFrontends are the addresses kube-proxy translates for pods, with
// the backends each leads to: every cluster IP, external IP and
// load-balancer ingress IP of a Service, per port, to the ready endpoints
// of its EndpointSlices (the serving, terminating ones when none is
// ready, as kube-proxy falls back to them). An internalTrafficPolicy of
// Local limits a cluster IP to this node's endpoints. Node ports are not
// included: a pod reaching one goes through a node address, judged as
// host or remote-node.
func serviceFrontends(svcs []corev1.Service, eps []discoveryv1.EndpointSlice, node string) []datapath.Service {
	byService := map[[2]string][]*discoveryv1.EndpointSlice{}
	for i := range eps {
		s := &eps[i]
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			k := [2]string{s.Namespace, name}
			byService[k] = append(byService[k], s)
		}
	}
	var out []datapath.Service
	for i := range svcs {
		svc := &svcs[i]
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		var cluster, external []netip.Addr
		for _, ip := range svc.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				cluster = append(cluster, a)
			}
		}
		for _, ip := range svc.Spec.ExternalIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				external = append(external, a)
			}
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil {
				external = append(external, a)
			}
		}
		slicesOf := byService[[2]string{svc.Namespace, svc.Name}]
		localOnly := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		for _, sp := range svc.Spec.Ports {
			proto, ok := protocolNumber(sp.Protocol)
			if !ok {
				continue
			}
			for _, a := range cluster {
				out = appendFrontend(out, a, sp, proto, backends(slicesOf, sp, a.Is4(), localOnly, node))
			}
			for _, a := range external {
				out = appendFrontend(out, a, sp, proto, backends(slicesOf, sp, a.Is4(), false, node))
			}
		}
	}
	slices.SortFunc(out, func(a, b datapath.Service) int {
		if c := a.Frontend.Compare(b.Frontend); c != 0 {
			return c
		}
		return int(a.Proto) - int(b.Proto)
	})
	return out
}

func appendFrontend(out []datapath.Service, a netip.Addr, sp corev1.ServicePort, proto uint8, bs []netip.AddrPort) []datapath.Service {
	if len(bs) == 0 {
		return out
	}
	return append(out, datapath.Service{Frontend: netip.AddrPortFrom(a, uint16(sp.Port)), Proto: proto, Backends: bs})
}

// backends are the endpoints of one Service port in one address family:
// ready ones, else serving terminating ones.
func backends(eps []*discoveryv1.EndpointSlice, sp corev1.ServicePort, v4, localOnly bool, node string) []netip.AddrPort {
	family := discoveryv1.AddressTypeIPv6
	if v4 {
		family = discoveryv1.AddressTypeIPv4
	}
	var ready, terminating []netip.AddrPort
	for _, s := range eps {
		if s.AddressType != family {
			continue
		}
		port, ok := slicePort(s, sp)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if localOnly && (e.NodeName == nil || *e.NodeName != node) {
				continue
			}
			c := e.Conditions
			// An unset condition means ready (discovery/v1's rule).
			isReady := c.Ready == nil || *c.Ready
			isFallback := !isReady && c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating
			for _, ip := range e.Addresses {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					continue
				}
				switch {
				case isReady:
					ready = append(ready, netip.AddrPortFrom(a, port))
				case isFallback:
					terminating = append(terminating, netip.AddrPortFrom(a, port))
				}
			}
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

// slicePort is the target port of a Service port in a slice: the slice's
// port of the same name and protocol (unset: TCP, the API's default).
func slicePort(s *discoveryv1.EndpointSlice, sp corev1.ServicePort) (uint16, bool) {
	want := sp.Protocol
	if want == "" {
		want = corev1.ProtocolTCP
	}
	for _, p := range s.Ports {
		name, proto := "", corev1.ProtocolTCP
		if p.Name != nil {
			name = *p.Name
		}
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if name == sp.Name && proto == want && p.Port != nil {
			return uint16(*p.Port), true
		}
	}
	return 0, false
}

func protocolNumber(p corev1.Protocol) (uint8, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return 6, true
	case corev1.ProtocolUDP:
		return 17, true
	case corev1.ProtocolSCTP:
		return 132, true
	}
	return 0, false
}
