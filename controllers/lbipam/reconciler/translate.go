package reconciler

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
	"github.com/plexus-net/plexus/internal/selectors"
)

// Service annotations LB-IPAM reads; each has a deprecated alias that is
// still honoured.
const (
	AnnotationIPs               = "lbipam.cilium.io/ips"
	AnnotationIPsLegacy         = "io.cilium/lb-ipam-ips"
	AnnotationSharingKey        = "lbipam.cilium.io/sharing-key"
	AnnotationSharingKeyLegacy  = "io.cilium/lb-ipam-sharing-key"
	AnnotationCrossNamespace    = "lbipam.cilium.io/sharing-cross-namespace"
	AnnotationCrossNamespaceOld = "io.cilium/lb-ipam-sharing-cross-namespace"
)

// The loadBalancerClass values LB-IPAM serves (besides unset).
const (
	ClassBGP = "io.cilium/bgp-control-plane"
	ClassL2  = "io.cilium/l2-announcer"
)

// ServiceConditionType is the condition LB-IPAM sets on the Services it
// serves: the name the seed system uses since 1.17. The older name is removed
// when LB-IPAM writes its own.
const (
	ServiceConditionType       = "cilium.io/IPAMRequestSatisfied"
	legacyServiceConditionType = "io.cilium/lb-ipam-request-satisfied"
)

// Reasons of the pool conditions.
const (
	poolReasonNoCondition      = "noreason" // count conditions, as the seed writes them
	poolReasonConflict         = "cidr_overlap"
	poolReasonNoConflict       = "no_conflict"
	readyReasonReady           = "Ready"
	readyReasonDisabled        = "Disabled"
	readyReasonConflict        = "PoolConflict"
	readyReasonInvalidSelector = "InvalidServiceSelector"
	readyReasonInvalidBlock    = "InvalidBlock"
)

// Event reasons and actions.
const (
	eventReasonAllocated = "IPAllocated"
	eventReasonReleased  = "IPReleased"
	eventActionAllocate  = "Allocate"
	eventActionValidate  = "Validate"
	eventActionRelease   = "Release"
)

// responsible says whether LB-IPAM serves svc: a LoadBalancer Service whose
// class is one of Plexus's, or unset when class-less Services are served.
// Any other class belongs to someone else and is left entirely alone.
func responsible(svc *corev1.Service, serveClassless bool) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return serveClassless
	}
	switch *svc.Spec.LoadBalancerClass {
	case ClassBGP, ClassL2:
		return true
	}
	return false
}

// toAllocatorService reduces a Service to what allocation needs. held are the
// addresses LB-IPAM last decided for it, or nil when it has not decided yet;
// then the Service's current ingress addresses are taken (restored or
// imported).
func toAllocatorService(svc *corev1.Service, held []netip.Addr, decided bool) allocator.Service {
	s := allocator.Service{
		Key:                   keyOf(svc),
		Created:               svc.CreationTimestamp.Time,
		Labels:                selectors.ServiceLabels(svc.Namespace, svc.Name, svc.Labels),
		FamilyPolicy:          allocator.SingleStack,
		SharingKey:            firstAnnotation(svc, AnnotationSharingKey, AnnotationSharingKeyLegacy),
		CrossNamespace:        splitList(firstAnnotation(svc, AnnotationCrossNamespace, AnnotationCrossNamespaceOld)),
		ExternalTrafficPolicy: string(svc.Spec.ExternalTrafficPolicy),
		PodSelector:           svc.Spec.Selector,
		Held:                  held,
		HeldFrom:              allocator.HeldDecided,
		// Held until the Service is gone (a finalizer may keep it a while).
		Terminating: svc.DeletionTimestamp != nil,
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		s.FamilyPolicy = allocator.FamilyPolicy(*p)
	}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			s.Families = append(s.Families, allocator.IPv6)
		} else {
			s.Families = append(s.Families, allocator.IPv4)
		}
	}
	for _, p := range svc.Spec.Ports {
		s.Ports = append(s.Ports, p.Port)
	}
	// The requested addresses are the union of the annotation, its legacy
	// alias and spec.loadBalancerIP.
	var requested []string
	requested = append(requested, splitList(svc.Annotations[AnnotationIPs])...)
	requested = append(requested, splitList(svc.Annotations[AnnotationIPsLegacy])...)
	if ip := strings.TrimSpace(svc.Spec.LoadBalancerIP); ip != "" {
		requested = append(requested, ip)
	}
	for _, r := range requested {
		addr, err := netip.ParseAddr(r)
		switch {
		case err != nil || addr.Zone() != "": // a zone is no address for a load balancer
			if !slices.Contains(s.RequestErrors, r) {
				s.RequestErrors = append(s.RequestErrors, r)
			}
		case !slices.Contains(s.Requested, addr.Unmap()):
			s.Requested = append(s.Requested, addr.Unmap())
		}
	}
	if !decided {
		s.Held = ingressAddrs(svc)
		s.HeldFrom = allocator.HeldImported
		if meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType) != nil {
			s.HeldFrom = allocator.HeldRecorded
		}
	}
	return s
}

func ingressAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if addr, err := netip.ParseAddr(ing.IP); err == nil && addr.Zone() == "" {
			out = append(out, addr.Unmap())
		}
	}
	return out
}

func firstAnnotation(svc *corev1.Service, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(svc.Annotations[n]); v != "" {
			return v
		}
	}
	return ""
}

// splitList splits a comma-separated annotation, trimming blanks.
func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// toAllocatorPool reduces a pool to what allocation needs.
func toAllocatorPool(p *ciliumv2.CiliumLoadBalancerIPPool) allocator.Pool {
	out := allocator.Pool{
		Name:              p.Name,
		Created:           p.CreationTimestamp.Time,
		AllowFirstLastIPs: p.Spec.AllowFirstLastIPs != ciliumv2.AllowFirstLastIPsNo,
		Disabled:          p.Spec.Disabled,
	}
	out.Selector, out.SelectorErr = selectors.Compile(p.Spec.ServiceSelector, true)
	for _, b := range p.Spec.Blocks {
		out.Blocks = append(out.Blocks, allocator.Block{CIDR: b.Cidr, Start: b.Start, Stop: b.Stop})
	}
	return out
}
