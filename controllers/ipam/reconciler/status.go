package reconciler

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/ipam/allocator"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/selectors"
)

// Condition reasons.
const (
	ReasonAllocated        = "Allocated"
	ReasonAllocationFailed = "AllocationFailed"
	ReasonDatapathNotReady = "DatapathNotReady"
	ReasonReady            = "Ready"
	ReasonHeld             = "Held"
	ReasonUnused           = "Unused"
	ReasonUnsupported      = "Unsupported"
	ReasonWaitingForPool   = "WaitingForAddresses"
	// NodeConditionDatapathReady is the condition the datapath plugin sets
	// on its own CiliumNode; Ready takes it into account.
	NodeConditionDatapathReady = "DatapathReady"
)

// setNodeStatus writes the controller's verdict on one node: the seed
// system's operator-status.error, PodCIDRsAllocated, and Ready (which also
// reflects the datapath plugin's DatapathReady when it reports one).
func setNodeStatus(cn *ciliumv2.CiliumNode, mode allocator.Mode, res *allocator.NodeResult) {
	cn.Status.IPAM.OperatorStatus.Error = strings.Join(res.Errors, "; ")
	gen := cn.Generation
	alloc := metav1.Condition{Type: ciliumv2.NodeConditionPodCIDRsAllocated, Status: metav1.ConditionTrue, Reason: ReasonAllocated}
	switch {
	case len(res.Errors) > 0:
		alloc.Status, alloc.Reason, alloc.Message = metav1.ConditionFalse, ReasonAllocationFailed, cn.Status.IPAM.OperatorStatus.Error
	case mode == allocator.ModeMultiPool:
		alloc.Message = string(mode) + ": holds " + describeAllocated(res.Allocated)
	case mode == allocator.ModeCRD && res.Listed == 0:
		alloc.Status, alloc.Reason = metav1.ConditionFalse, ReasonWaitingForPool
		alloc.Message = "crd: spec.ipam.pool lists no address yet; the node's pods wait until whoever manages the node's addresses lists some"
	case mode == allocator.ModeCRD:
		noun := "addresses"
		if res.Listed == 1 {
			noun = "address"
		}
		alloc.Message = fmt.Sprintf("crd: spec.ipam.pool lists %d %s (status.ipam.used shows the ones pods hold)", res.Listed, noun)
	default:
		alloc.Message = string(mode) + ": holds " + strings.Join(res.PodCIDRs, ", ")
	}
	if len(res.Notes) > 0 {
		alloc.Message += "; " + strings.Join(res.Notes, "; ")
	}
	conditions.Set(&cn.Status.Conditions, gen, alloc)

	ready := metav1.Condition{Type: conditions.TypeReady, Status: alloc.Status, Reason: alloc.Reason, Message: alloc.Message}
	if dp := meta.FindStatusCondition(cn.Status.Conditions, NodeConditionDatapathReady); dp != nil && dp.Status != metav1.ConditionTrue && ready.Status == metav1.ConditionTrue {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonDatapathNotReady, "datapath: "+dp.Message
	}
	conditions.Set(&cn.Status.Conditions, gen, ready)
	if c, ok := cloudIPAM(cn, mode); ok {
		conditions.Set(&cn.Status.Conditions, gen, c)
	} else {
		meta.RemoveStatusCondition(&cn.Status.Conditions, ciliumv2.NodeConditionCloudIPAMSupported)
	}
	cn.Status.ObservedGeneration = gen
}

// cloudIPAM says, when the node's spec configures one of Cilium's cloud IPAM
// modes, that Plexus does not implement it.
func cloudIPAM(cn *ciliumv2.CiliumNode, mode allocator.Mode) (metav1.Condition, bool) {
	var set []string
	for name, section := range map[string]bool{"eni": cn.Spec.ENI != nil, "azure": cn.Spec.Azure != nil, "alibaba-cloud": cn.Spec.AlibabaCloud != nil} {
		if section {
			set = append(set, "spec."+name)
		}
	}
	if len(set) == 0 {
		return metav1.Condition{}, false
	}
	slices.Sort(set)
	return metav1.Condition{Type: ciliumv2.NodeConditionCloudIPAMSupported, Status: metav1.ConditionFalse, Reason: ReasonUnsupported,
		Message: fmt.Sprintf("%s: Plexus does not implement Cilium's cloud IPAM modes; the section is kept as written, and the node's pod addresses come from %s mode",
			strings.Join(set, ", "), mode)}, true
}

func describeAllocated(as []allocator.PoolCIDRs) string {
	if len(as) == 0 {
		return "no CIDRs (the node has requested none)"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprintf("%s: %s", a.Pool, strings.Join(a.CIDRs, ", "))
	}
	return strings.Join(parts, "; ")
}

// setPoolStatus writes a pool's use and health.
func setPoolStatus(p *ciliumv2alpha1.CiliumPodIPPool, res *allocator.PoolResult) {
	if res == nil {
		res = &allocator.PoolResult{}
	}
	gen := p.Generation
	p.Status.ObservedGeneration = gen
	p.Status.Nodes = int32(len(res.Holders))
	p.Status.AllocatedCIDRs = 0
	for _, cs := range res.Holders {
		p.Status.AllocatedCIDRs += int32(len(cs))
	}

	inUse := metav1.Condition{Type: ciliumv2alpha1.PodPoolConditionInUse, Status: metav1.ConditionFalse, Reason: ReasonUnused, Message: "no node holds CIDRs of this pool"}
	if len(res.Holders) > 0 {
		inUse.Status, inUse.Reason, inUse.Message = metav1.ConditionTrue, ReasonHeld, "held by "+describeHolders(res.Holders)
	}
	conditions.Set(&p.Status.Conditions, gen, inUse)

	ready := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonReady,
		Message: fmt.Sprintf("%d nodes hold %d CIDRs; free node CIDRs: %s IPv4, %s IPv6", p.Status.Nodes, p.Status.AllocatedCIDRs, count(res.FreeIPv4), count(res.FreeIPv6))}
	switch {
	case p.DeletionTimestamp != nil && len(res.Holders) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, ciliumv2alpha1.PodPoolReasonDeletionBlocked
		ready.Message = "deletion waits until no node holds CIDRs of this pool; held by " + describeHolders(res.Holders)
	case res.Overlap != "":
		ready.Status, ready.Reason = metav1.ConditionFalse, ciliumv2alpha1.PodPoolReasonOverlap
		ready.Message = res.Overlap + "; this pool hands out nothing until the overlap is removed"
	case len(res.RemovedInUse) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, ciliumv2alpha1.PodPoolReasonRemovedCIDRInUse
		ready.Message = "CIDRs no longer in the spec are still held by " + describeHolders(res.RemovedInUse) + "; they stay allocated until the nodes' pods using them are gone"
	case len(res.Exhausted) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, ciliumv2alpha1.PodPoolReasonExhausted
		ready.Message = fmt.Sprintf("no free CIDR for %s; append CIDRs to the pool", describeNodes(res.Exhausted))
	case invalidSelector(p) != "":
		ready.Status, ready.Reason = metav1.ConditionFalse, ciliumv2alpha1.PodPoolReasonInvalidSelector
		ready.Message = invalidSelector(p) + "; the pool selects no pod by label (the ipam.cilium.io/ip-pool annotation still picks it)"
	}
	conditions.Set(&p.Status.Conditions, gen, ready)
}

// invalidSelector says which of the pool's pod selectors does not parse.
func invalidSelector(p *ciliumv2alpha1.CiliumPodIPPool) string {
	if _, err := selectors.Compile(p.Spec.PodSelector, true); err != nil {
		return "spec.podSelector: " + err.Error()
	}
	if _, err := selectors.Compile(p.Spec.NamespaceSelector, true); err != nil {
		return "spec.namespaceSelector: " + err.Error()
	}
	return ""
}

const maxListed = 10

func describeHolders(h map[string][]string) string {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, maxListed)
	for _, n := range names[:min(len(names), maxListed)] {
		parts = append(parts, fmt.Sprintf("%s (%s)", n, strings.Join(h[n], ", ")))
	}
	s := strings.Join(parts, ", ")
	if len(names) > maxListed {
		s += fmt.Sprintf(" and %d more nodes", len(names)-maxListed)
	}
	return s
}

func describeNodes(names []string) string {
	names = slices.Sorted(slices.Values(names))
	s := "nodes " + strings.Join(names[:min(len(names), maxListed)], ", ")
	if len(names) > maxListed {
		s += fmt.Sprintf(" and %d more", len(names)-maxListed)
	}
	return s
}

func count(n uint64) string {
	if n >= 1<<62 {
		return "2^62+"
	}
	return fmt.Sprint(n)
}
