package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types on a CiliumLoadBalancerIPPool. The first four are the names the
// seed system uses, kept so that existing dashboards and jsonpath queries work.
const (
	// PoolConditionConflict is True when this pool overlaps an older pool and so
	// allocates nothing new. Its message names the overlapping blocks and pool.
	PoolConditionConflict = "cilium.io/PoolConflict"
	// PoolConditionIPsTotal, PoolConditionIPsAvailable and PoolConditionIPsUsed
	// carry counts in their message (status Unknown, reason "noreason").
	PoolConditionIPsTotal     = "cilium.io/IPsTotal"
	PoolConditionIPsAvailable = "cilium.io/IPsAvailable"
	PoolConditionIPsUsed      = "cilium.io/IPsUsed"
)

// AllowFirstLastIPsType says whether the first and last address of a CIDR block
// may be allocated.
// +kubebuilder:validation:Enum=Yes;No
type AllowFirstLastIPsType string

// Whether a pool hands out the first and last address of its CIDRs.
const (
	AllowFirstLastIPsYes AllowFirstLastIPsType = "Yes"
	AllowFirstLastIPsNo  AllowFirstLastIPsType = "No"
)

// CiliumLoadBalancerIPPoolSpec is the address space of a pool and which Services
// it serves.
type CiliumLoadBalancerIPPoolSpec struct {
	// ServiceSelector selects the Services this pool serves. Absent selects every
	// Service. Besides labels it matches the keys io.kubernetes.service.namespace
	// and io.kubernetes.service.name against the Service's namespace and name.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`

	// AllowFirstLastIPs, when "No", keeps the first (network) and last (broadcast)
	// address of every CIDR block out of allocation. It has no effect on IPv4 /31
	// and /32, IPv6 /127 and /128, or start/stop blocks. Absent means "Yes".
	// +optional
	AllowFirstLastIPs AllowFirstLastIPsType `json:"allowFirstLastIPs,omitempty"`

	// Blocks are the addresses of the pool: each a CIDR or an inclusive
	// start/stop range.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	// +listType=atomic
	Blocks []CiliumLoadBalancerIPPoolIPBlock `json:"blocks"`

	// Disabled stops new allocations from this pool; Services keep the addresses
	// they already hold.
	// +kubebuilder:default=false
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// CiliumLoadBalancerIPPoolIPBlock is either a CIDR or a start/stop range. A
// start without a stop is a single address.
// +kubebuilder:validation:XValidation:rule="has(self.cidr) != has(self.start)",message="a block sets either cidr or start (with an optional stop), not both and not neither"
// +kubebuilder:validation:XValidation:rule="!has(self.stop) || has(self.start)",message="stop needs start"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() == ip(self.stop).family()",message="start and stop must be of the same IP family"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() != 4 || ip(self.stop).family() != 4 || (int(self.start.split('.')[0]) * 16777216 + int(self.start.split('.')[1]) * 65536 + int(self.start.split('.')[2]) * 256 + int(self.start.split('.')[3])) <= (int(self.stop.split('.')[0]) * 16777216 + int(self.stop.split('.')[1]) * 65536 + int(self.stop.split('.')[2]) * 256 + int(self.stop.split('.')[3]))",message="start must not be after stop"
type CiliumLoadBalancerIPPoolIPBlock struct {
	// Cidr is an IPv4 or IPv6 prefix such as 10.0.10.0/24 or 2004::/64.
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be an IPv4 or IPv6 prefix such as 10.0.10.0/24 or 2004::/64"
	// +optional
	Cidr string `json:"cidr,omitempty"`

	// Start is the first address of a range.
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="start must be an IPv4 or IPv6 address"
	// +optional
	Start string `json:"start,omitempty"`

	// Stop is the last address of a range (inclusive); absent means start alone.
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="stop must be an IPv4 or IPv6 address"
	// +optional
	Stop string `json:"stop,omitempty"`
}

// CiliumLoadBalancerIPPoolStatus reports conflicts and address counts.
type CiliumLoadBalancerIPPoolStatus struct {
	// ObservedGeneration is the spec generation these conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, cilium.io/PoolConflict and the three count conditions.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumLoadBalancerIPPool is a set of addresses that LB-IPAM hands out to
// Services of type LoadBalancer.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories={cilium},shortName={ippools,ippool,lbippool,lbippools}
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=`.spec.disabled`
// +kubebuilder:printcolumn:name="Conflicting",type=string,JSONPath=`.status.conditions[?(@.type=="cilium.io/PoolConflict")].status`
// +kubebuilder:printcolumn:name="IPs Available",type=string,JSONPath=`.status.conditions[?(@.type=="cilium.io/IPsAvailable")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumLoadBalancerIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumLoadBalancerIPPoolSpec `json:"spec"`
	// +optional
	Status CiliumLoadBalancerIPPoolStatus `json:"status,omitempty"`
}

// CiliumLoadBalancerIPPoolList is a list of pools.
//
// +kubebuilder:object:root=true
type CiliumLoadBalancerIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumLoadBalancerIPPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumLoadBalancerIPPool{}, &CiliumLoadBalancerIPPoolList{})
}
