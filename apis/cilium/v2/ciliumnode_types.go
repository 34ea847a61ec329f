package v2

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types on a CiliumNode (Plexus additions; the seed system has only
// status.ipam.operator-status.error, which Plexus also writes).
const (
	// NodeConditionPodCIDRsAllocated is True when the node holds a pod CIDR for
	// every enabled family (cluster-pool and kubernetes modes) or every CIDR its
	// pool requests ask for (multi-pool).
	NodeConditionPodCIDRsAllocated = "PodCIDRsAllocated"
	// NodeConditionCloudIPAMSupported is False, while the spec has an eni,
	// azure or alibaba-cloud section, to say that Plexus does not implement
	// that cloud IPAM mode; absent otherwise.
	NodeConditionCloudIPAMSupported = "CloudIPAMSupported"
)

// Address types in CiliumNode.spec.addresses.
const (
	NodeAddressInternalIP = "InternalIP"
	NodeAddressExternalIP = "ExternalIP"
)

// CiliumNode is the per-node IPAM and addressing object: one per Kubernetes
// Node, named after it. The IPAM controller creates it, writes the node's
// addresses and pod CIDRs into its spec, and deletes it with the Node. The
// node plugins read it: the CNI agent allocates pod addresses from the CIDRs
// and writes its multi-pool requests; the datapath routes to the other nodes'
// CIDRs.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cn;ciliumn,categories=cilium
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="CiliumInternalIP",type=string,JSONPath=`.spec.addresses[?(@.type=="InternalIP")].ip`
// +kubebuilder:printcolumn:name="PodCIDRs",type=string,JSONPath=`.spec.ipam.podCIDRs`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeSpec   `json:"spec"`
	Status NodeStatus `json:"status,omitempty"`
}

// NodeSpec is what the node is and what it may use.
type NodeSpec struct {
	// InstanceID is the node's cloud instance ID (informational).
	// +optional
	InstanceID string `json:"instance-id,omitempty"`

	// Addresses are the node's addresses, copied from the Node's status.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Addresses []NodeAddress `json:"addresses,omitempty"`

	// IPAM holds the node's pod address space.
	// +optional
	IPAM IPAMSpec `json:"ipam,omitempty"`

	// BootID identifies the node's current boot (written by Cilium's
	// agent; informational here).
	// +optional
	BootID string `json:"bootid,omitempty"`

	// Health and Ingress are addresses Cilium's agent reserves on the node
	// for its health endpoint and its Ingress listener; kept as written.
	// +optional
	Health AddressPair `json:"health,omitempty"`
	// +optional
	Ingress AddressPair `json:"ingress,omitempty"`

	// Encryption is the node's transparent-encryption key index; kept as
	// written (Plexus has no transparent encryption).
	// +optional
	Encryption EncryptionSpec `json:"encryption,omitempty"`

	// ENI, Azure and AlibabaCloud configure Cilium's cloud IPAM modes. Plexus
	// does not implement them: their content is kept as written, and the
	// node's CloudIPAMSupported condition is False while one is set.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	ENI *apiextensionsv1.JSON `json:"eni,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Azure *apiextensionsv1.JSON `json:"azure,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	AlibabaCloud *apiextensionsv1.JSON `json:"alibaba-cloud,omitempty"`
}

// AddressPair is an IPv4 and an IPv6 address.
type AddressPair struct {
	// +optional
	IPv4 string `json:"ipv4,omitempty"`
	// +optional
	IPv6 string `json:"ipv6,omitempty"`
}

// EncryptionSpec is the node's encryption settings.
type EncryptionSpec struct {
	// Key is the index of the encryption key; 0 means off.
	// +optional
	Key int `json:"key,omitempty"`
}

// NodeAddress is one address of a node.
type NodeAddress struct {
	// Type is InternalIP or ExternalIP.
	Type string `json:"type,omitempty"`
	// IP is the address.
	IP string `json:"ip,omitempty"`
}

// IPAMSpec is the pod address space of one node.
type IPAMSpec struct {
	// PodCIDRs are the node's pod CIDRs in cluster-pool and kubernetes modes, at
	// most one per family. Written by the IPAM controller.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	PodCIDRs []string `json:"podCIDRs,omitempty"`

	// Pool lists single addresses the node may hand out (crd mode), one key
	// per address, written by whoever manages the node's addresses; see
	// docs/ipam.md.
	// +optional
	Pool AllocationMap `json:"pool,omitempty"`

	// IPv6Pool is Pool's IPv6 counterpart (crd mode).
	// +optional
	IPv6Pool AllocationMap `json:"ipv6-pool,omitempty"`

	// StaticIPTags select a cloud static address (an AWS Elastic IP) for the
	// node in the cloud modes; kept as written.
	// +optional
	StaticIPTags map[string]string `json:"static-ip-tags,omitempty"`

	// Pools holds the multi-pool requests (written by the node) and
	// allocations (written by the IPAM controller).
	// +optional
	Pools IPAMPoolSpec `json:"pools,omitempty"`

	// MinAllocate, MaxAllocate, PreAllocate and MaxAboveWatermark are the
	// watermarks of the cloud modes (eni, azure), kept so that manifests for
	// them apply. Plexus does not implement those modes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinAllocate int `json:"min-allocate,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxAllocate int `json:"max-allocate,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	PreAllocate int `json:"pre-allocate,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxAboveWatermark int `json:"max-above-watermark,omitempty"`
}

// AllocationMap maps an address to who holds it.
type AllocationMap map[string]AllocationIP

// AllocationIP says who holds an address.
type AllocationIP struct {
	// Owner is the holder, such as namespace/pod.
	// +optional
	Owner string `json:"owner,omitempty"`
	// Resource is the cloud resource (interface) the address belongs to.
	// +optional
	Resource string `json:"resource,omitempty"`
}

// IPAMPoolSpec is the multi-pool handshake between a node and the controller.
type IPAMPoolSpec struct {
	// Requested says, per pool, how many addresses the node needs. The node
	// writes it; an entry for a pool is how a node asks for that pool's CIDRs.
	// +optional
	// +listType=map
	// +listMapKey=pool
	// +kubebuilder:validation:MaxItems=256
	Requested []IPAMPoolRequest `json:"requested,omitempty"`

	// Allocated lists, per pool, the CIDRs the node holds. The controller adds
	// CIDRs; the node removes a CIDR once no pod on it uses an address from it.
	// +optional
	// +listType=map
	// +listMapKey=pool
	// +kubebuilder:validation:MaxItems=256
	Allocated []IPAMPoolAllocation `json:"allocated,omitempty"`
}

// IPAMPoolRequest is a node's demand on one pool.
type IPAMPoolRequest struct {
	// Pool is the CiliumPodIPPool's name.
	// +kubebuilder:validation:MinLength=1
	Pool string `json:"pool"`
	// Needed is the number of addresses the node needs, per family.
	// +optional
	Needed IPAMPoolDemand `json:"needed,omitempty"`
}

// IPAMPoolDemand counts addresses per family.
type IPAMPoolDemand struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	IPv4Addrs int `json:"ipv4-addrs,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	IPv6Addrs int `json:"ipv6-addrs,omitempty"`
}

// IPAMPoolAllocation is the CIDRs a node holds from one pool.
type IPAMPoolAllocation struct {
	// Pool is the CiliumPodIPPool's name.
	// +kubebuilder:validation:MinLength=1
	Pool string `json:"pool"`
	// CIDRs are the node's CIDRs from that pool.
	// +optional
	// +listType=atomic
	CIDRs []string `json:"cidrs,omitempty"`
	// AllowFirstIP and AllowLastIP are the pool's settings of the same name
	// (Cilium 1.20 copies them here); Plexus's nodes read them from the pool,
	// so they are accepted and kept as written.
	// +optional
	AllowFirstIP bool `json:"allowFirstIP,omitempty"`
	// +optional
	AllowLastIP bool `json:"allowLastIP,omitempty"`
}

// NodeStatus is what the controller and the node report.
type NodeStatus struct {
	// IPAM reports allocation results.
	// +optional
	IPAM IPAMStatus `json:"ipam,omitempty"`

	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, PodCIDRsAllocated, and CloudIPAMSupported when
	// a cloud IPAM section is set.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ENI, Azure and AlibabaCloud are the status of Cilium's cloud IPAM
	// modes, accepted and kept as written.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	ENI *apiextensionsv1.JSON `json:"eni,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Azure *apiextensionsv1.JSON `json:"azure,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	AlibabaCloud *apiextensionsv1.JSON `json:"alibaba-cloud,omitempty"`
}

// IPAMStatus reports the node's address use and the controller's errors.
type IPAMStatus struct {
	// Used lists the addresses pods hold on the node, with their owner
	// (crd mode; written by the node's CNI agent).
	// +optional
	Used AllocationMap `json:"used,omitempty"`

	// IPv6Used is Used's IPv6 counterpart.
	// +optional
	IPv6Used AllocationMap `json:"ipv6-used,omitempty"`

	// PodCIDRs, ReleaseIPs, ReleaseIPv6s and AssignedStaticIP are written
	// by Cilium's agent and operator in its cloud and cluster-pool modes;
	// accepted and kept as written.
	// +optional
	PodCIDRs map[string]PodCIDRStatus `json:"pod-cidrs,omitempty"`
	// +optional
	ReleaseIPs map[string]string `json:"release-ips,omitempty"`
	// +optional
	ReleaseIPv6s map[string]string `json:"release-ipv6s,omitempty"`
	// +optional
	AssignedStaticIP string `json:"assigned-static-ip,omitempty"`

	// OperatorStatus carries the controller's last allocation error for this
	// node; empty when allocation succeeded.
	// +optional
	OperatorStatus IPAMOperatorStatus `json:"operator-status,omitempty"`
}

// IPAMOperatorStatus is the controller's verdict on one node.
type IPAMOperatorStatus struct {
	// Error is why the node did not get (all) its CIDRs; empty on success.
	// +optional
	Error string `json:"error,omitempty"`
}

// CiliumNodeList is a list of CiliumNodes.
//
// +kubebuilder:object:root=true
type CiliumNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumNode `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumNode{}, &CiliumNodeList{})
}

// PodCIDRStatus is the state of one pod CIDR (Cilium's cluster-pool v2).
type PodCIDRStatus struct {
	// Status is in-use, depleted or released.
	// +optional
	Status string `json:"status,omitempty"`
}
