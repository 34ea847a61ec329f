package reconciler

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
	"github.com/plexus-net/plexus/internal/conditions"
)

// setServiceStatus makes svc's status show res: its LB-IPAM ingress addresses
// and condition. Ingress entries LB-IPAM did not hand out are dropped (the
// Service is LB-IPAM's), and the seed's older condition name is replaced.
func setServiceStatus(svc *corev1.Service, res allocator.ServiceResult) {
	ingress := make([]corev1.LoadBalancerIngress, 0, len(res.Addresses))
	for _, a := range res.Addresses {
		ingress = append(ingress, ingressFor(svc, a.Addr))
	}
	if !sameIngressAddrs(svc.Status.LoadBalancer.Ingress, ingress) {
		svc.Status.LoadBalancer.Ingress = ingress
	}
	conditions.Remove(&svc.Status.Conditions, legacyServiceConditionType)
	conditions.Set(&svc.Status.Conditions, svc.Generation, metav1.Condition{
		Type:    ServiceConditionType,
		Status:  conditions.Status(res.Satisfied),
		Reason:  res.Reason,
		Message: res.Message,
	})
}

// serviceStatusCurrent says, without copying, whether svc already shows res;
// with thousands of Services a pass must not copy each one to find out.
func serviceStatusCurrent(svc *corev1.Service, res allocator.ServiceResult) bool {
	ing := svc.Status.LoadBalancer.Ingress
	if len(ing) != len(res.Addresses) {
		return false
	}
	for i, a := range res.Addresses {
		if ing[i].IP != a.Addr.String() || ing[i].Hostname != "" {
			return false
		}
	}
	c := meta.FindStatusCondition(svc.Status.Conditions, ServiceConditionType)
	return c != nil && c.Status == conditions.Status(res.Satisfied) && c.Reason == res.Reason &&
		c.Message == res.Message && c.ObservedGeneration == svc.Generation &&
		meta.FindStatusCondition(svc.Status.Conditions, legacyServiceConditionType) == nil
}

// ingressFor keeps an existing entry for addr (the API server fills in ipMode)
// with the address written canonically, and makes a VIP entry otherwise.
func ingressFor(svc *corev1.Service, addr netip.Addr) corev1.LoadBalancerIngress {
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil && a.Unmap() == addr {
			ing.IP = addr.String()
			return ing
		}
	}
	vip := corev1.LoadBalancerIPModeVIP
	return corev1.LoadBalancerIngress{IP: addr.String(), IPMode: &vip}
}

func sameIngressAddrs(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool { return x.IP == y.IP && x.Hostname == y.Hostname })
}

// clearServiceStatus undoes LB-IPAM's marks on a Service it is no longer
// responsible for: its condition, and the ingress addresses it handed out
// (those it decided, or after a restart those inside its pools).
func clearServiceStatus(svc *corev1.Service, ours func(netip.Addr) bool) {
	conditions.Remove(&svc.Status.Conditions, ServiceConditionType)
	kept := svc.Status.LoadBalancer.Ingress[:0:0]
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil && ours(a.Unmap()) {
			continue
		}
		kept = append(kept, ing)
	}
	if len(kept) != len(svc.Status.LoadBalancer.Ingress) {
		svc.Status.LoadBalancer.Ingress = kept
	}
}

// setPoolStatus writes a pool's conditions from the allocator's view of it.
func setPoolStatus(pool *ciliumv2.CiliumLoadBalancerIPPool, res allocator.PoolResult, selectorErr error) {
	st := &pool.Status
	gen := pool.Generation
	st.ObservedGeneration = gen
	count := func(t, n string) {
		conditions.Set(&st.Conditions, gen, metav1.Condition{Type: t, Status: metav1.ConditionUnknown, Reason: poolReasonNoCondition, Message: n})
	}
	available := new(big.Int).Sub(res.Total, res.Used)
	count(ciliumv2.PoolConditionIPsTotal, res.Total.String())
	count(ciliumv2.PoolConditionIPsAvailable, available.String())
	count(ciliumv2.PoolConditionIPsUsed, res.Used.String())

	conflict := metav1.Condition{Type: ciliumv2.PoolConditionConflict, Status: metav1.ConditionFalse, Reason: poolReasonNoConflict}
	if res.Conflict != "" {
		conflict.Status, conflict.Reason, conflict.Message = metav1.ConditionTrue, poolReasonConflict, res.Conflict
	}
	conditions.Set(&st.Conditions, gen, conflict)
	conditions.Set(&st.Conditions, gen, poolReady(pool, res, selectorErr))
}

// poolReady summarises the pool in the kstatus Ready condition.
func poolReady(pool *ciliumv2.CiliumLoadBalancerIPPool, res allocator.PoolResult, selectorErr error) metav1.Condition {
	notReady := func(reason, msg string) metav1.Condition {
		return metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg}
	}
	switch {
	case selectorErr != nil:
		return notReady(readyReasonInvalidSelector, fmt.Sprintf("spec.serviceSelector: %v; the pool allocates nothing new and keeps existing allocations", selectorErr))
	case res.Conflict != "":
		return notReady(readyReasonConflict, res.Conflict+"; the pool allocates nothing new")
	case len(res.BlockErrors) > 0:
		return notReady(readyReasonInvalidBlock, "spec.blocks: "+strings.Join(res.BlockErrors, "; ")+"; the other blocks are in use")
	case pool.Spec.Disabled:
		return metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: readyReasonDisabled, Message: "disabled: existing allocations are kept, no new ones are made"}
	}
	msg := fmt.Sprintf("%s of %s addresses in use", res.Used, res.Total)
	if res.KeptReserved > 0 {
		msg += fmt.Sprintf("; %d of them are first or last addresses of a CIDR, kept by the Services that held them before allowFirstLastIPs: No, and not given out again once released", res.KeptReserved)
	}
	return metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: readyReasonReady, Message: msg}
}
