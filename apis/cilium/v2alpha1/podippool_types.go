package v2alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types and reasons on a CiliumPodIPPool besides Ready.
const (
	// PodPoolConditionInUse is True while nodes hold CIDRs of the pool; its
	// message names them. A pool being deleted waits for it to turn False.
	PodPoolConditionInUse = "InUse"

	// PodPoolReasonRemovedCIDRInUse: a CIDR was removed from the spec while
	// nodes still hold parts of it; they keep them until they release them.
	PodPoolReasonRemovedCIDRInUse = "RemovedCIDRInUse"
	// PodPoolReasonDeletionBlocked: the pool is being deleted but nodes hold
	// its CIDRs.
	PodPoolReasonDeletionBlocked = "DeletionBlocked"
	// PodPoolReasonOverlap: the pool's CIDRs overlap an older pool's or the
	// cluster pool's; the pool allocates nothing until that is fixed.
	PodPoolReasonOverlap = "Overlap"
	// PodPoolReasonExhausted: a node asked for a CIDR and none is free.
	PodPoolReasonExhausted = "Exhausted"
	// PodPoolReasonInvalidSelector: spec.podSelector or
	// spec.namespaceSelector does not parse; the pool selects no pod by
	// label (annotations still pick it).
	PodPoolReasonInvalidSelector = "InvalidSelector"
)

// PoolFinalizer keeps a pool that nodes still hold CIDRs of from disappearing.
const PoolFinalizer = "ipam.plexus.dev/pool-in-use"

// CiliumPodIPPool is a pool of pod addresses for multi-pool IPAM. Nodes get
// CIDRs of maskSize carved from its CIDRs on demand. A pod's pool is the one
// the ipam.cilium.io/ip-pool annotation on the pod or else its namespace
// names; else the one whose podSelector and namespaceSelector select it;
// else the pool named "default".
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cpip,categories=cilium
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="IPv4",type=string,JSONPath=`.spec.ipv4.cidrs`
// +kubebuilder:printcolumn:name="IPv4Mask",type=integer,JSONPath=`.spec.ipv4.maskSize`
// +kubebuilder:printcolumn:name="IPv6",type=string,JSONPath=`.spec.ipv6.cidrs`,priority=1
// +kubebuilder:printcolumn:name="IPv6Mask",type=integer,JSONPath=`.spec.ipv6.maskSize`,priority=1
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="CIDRs",type=integer,JSONPath=`.status.allocatedCIDRs`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumPodIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is the address space of a pool, per family, and which pods it
// serves.
// +kubebuilder:validation:XValidation:rule="has(self.ipv4) || has(self.ipv6)",message="a pool needs spec.ipv4 or spec.ipv6"
// +kubebuilder:validation:XValidation:rule="(has(self.allowFirstIP) && self.allowFirstIP) == (has(oldSelf.allowFirstIP) && oldSelf.allowFirstIP)",message="spec.allowFirstIP is immutable: nodes hand out addresses by it"
// +kubebuilder:validation:XValidation:rule="(has(self.allowLastIP) && self.allowLastIP) == (has(oldSelf.allowLastIP) && oldSelf.allowLastIP)",message="spec.allowLastIP is immutable: nodes hand out addresses by it"
type IPPoolSpec struct {
	// IPv4 is the pool's IPv4 space.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.cidrs.all(c, isCIDR(c) && cidr(c).ip().family() == 4)",message="spec.ipv4.cidrs: every entry must be an IPv4 CIDR such as 10.20.0.0/16"
	// +kubebuilder:validation:XValidation:rule="self.cidrs.all(c, !isCIDR(c) || cidr(c) == cidr(c).masked())",message="spec.ipv4.cidrs: an entry has host bits set; write the network address (e.g. 10.20.0.0/16)"
	// +kubebuilder:validation:XValidation:rule="self.maskSize <= 32 && self.cidrs.all(c, !isCIDR(c) || cidr(c).prefixLength() <= self.maskSize)",message="spec.ipv4.maskSize must be at most 32 and at least the prefix length of every CIDR"
	// +kubebuilder:validation:XValidation:rule="self.maskSize == oldSelf.maskSize",message="spec.ipv4.maskSize is immutable: nodes hold CIDRs of the old size"
	// +kubebuilder:validation:XValidation:rule="self.cidrs.all(a, self.cidrs.all(b, a == b || !isCIDR(a) || !isCIDR(b) || !(cidr(a).containsCIDR(cidr(b)) || cidr(b).containsCIDR(cidr(a)))))",message="spec.ipv4.cidrs: entries overlap"
	IPv4 *IPPoolFamily `json:"ipv4,omitempty"`

	// IPv6 is the pool's IPv6 space.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.cidrs.all(c, isCIDR(c) && cidr(c).ip().family() == 6)",message="spec.ipv6.cidrs: every entry must be an IPv6 CIDR such as fd00:20::/104"
	// +kubebuilder:validation:XValidation:rule="self.cidrs.all(c, !isCIDR(c) || cidr(c) == cidr(c).masked())",message="spec.ipv6.cidrs: an entry has host bits set; write the network address"
	// +kubebuilder:validation:XValidation:rule="self.maskSize <= 128 && self.cidrs.all(c, !isCIDR(c) || cidr(c).prefixLength() <= self.maskSize)",message="spec.ipv6.maskSize must be at most 128 and at least the prefix length of every CIDR"
	// +kubebuilder:validation:XValidation:rule="self.maskSize == oldSelf.maskSize",message="spec.ipv6.maskSize is immutable: nodes hold CIDRs of the old size"
	// +kubebuilder:validation:XValidation:rule="self.cidrs.all(a, self.cidrs.all(b, a == b || !isCIDR(a) || !isCIDR(b) || !(cidr(a).containsCIDR(cidr(b)) || cidr(b).containsCIDR(cidr(a)))))",message="spec.ipv6.cidrs: entries overlap"
	IPv6 *IPPoolFamily `json:"ipv6,omitempty"`

	// PodSelector selects, by label, the pods that get their addresses from
	// this pool when neither the pod nor its namespace names a pool in the
	// ipam.cilium.io/ip-pool annotation (Cilium 1.19). It also matches the
	// keys io.kubernetes.pod.namespace and io.kubernetes.pod.name. With
	// NamespaceSelector too, a pod must match both. A pod that several
	// pools select gets no address: its creation fails, naming the pools.
	// Absent (with NamespaceSelector absent too): the pool selects no pod.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// NamespaceSelector selects, by the labels of their namespace, the pods
	// that get their addresses from this pool, as PodSelector does. Empty
	// ({}) selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// AllowFirstIP lets pods have the first (network) address of each node
	// CIDR of the pool, and of each pool CIDR; by default it is reserved.
	// CIDRs of fewer than 4 addresses give out every address anyway.
	// Immutable.
	// +optional
	AllowFirstIP bool `json:"allowFirstIP,omitempty"`

	// AllowLastIP does the same for the last (broadcast) address. Immutable.
	// +optional
	AllowLastIP bool `json:"allowLastIP,omitempty"`
}

// IPPoolFamily is the space of one family: CIDRs carved into node CIDRs of
// MaskSize.
type IPPoolFamily struct {
	// CIDRs are the pool's ranges. Appending is safe at any time; removing one
	// that nodes hold parts of is reported in the Ready condition and takes
	// effect once they release them.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=43
	// +listType=set
	CIDRs []string `json:"cidrs"`

	// MaskSize is the prefix length of the CIDRs handed to nodes. Immutable.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	MaskSize int32 `json:"maskSize"`
}

// IPPoolStatus reports the pool's use.
type IPPoolStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Nodes is the number of nodes holding CIDRs of the pool.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// AllocatedCIDRs is the number of node CIDRs handed out, both families.
	// +optional
	AllocatedCIDRs int32 `json:"allocatedCIDRs,omitempty"`
	// Conditions: Ready and InUse.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumPodIPPoolList is a list of CiliumPodIPPools.
//
// +kubebuilder:object:root=true
type CiliumPodIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumPodIPPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumPodIPPool{}, &CiliumPodIPPoolList{})
}
