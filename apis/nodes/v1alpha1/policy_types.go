package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodePolicy is one node's share of the network policies: what the
// endpoints on the node enforce, by security identity. One per node that
// hosts pods with an identity (or whose host a host policy selects), named
// after the node, written by the policy controller. It holds only the
// identities of the node's own endpoints, so its size follows what the
// node hosts, not the cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=npol
// +kubebuilder:printcolumn:name="Identities",type=integer,JSONPath=`.status.identities`,description="local identities whose policy is in the datapath"
// +kubebuilder:printcolumn:name="Entries",type=integer,JSONPath=`.status.entries`,description="policy map entries in the datapath"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodePolicySpec   `json:"spec"`
	Status NodePolicyStatus `json:"status,omitempty"`
}

// NodePolicySpec is what the node's endpoints enforce.
type NodePolicySpec struct {
	// Identities are the policies of the identities of the node's pods
	// that enforce or deny anything, one per identity. A local pod whose
	// identity is absent allows all traffic. The list is atomic (one
	// writer, the policy controller): as a map list, the API server's
	// field tracking of its hundreds of entries cost more than the write.
	// +optional
	// +listType=atomic
	Identities []IdentityPolicy `json:"identities,omitempty"`

	// Host is the policy of the node itself (host policies, with the host
	// firewall on); absent, the host allows all traffic.
	// +optional
	Host *DirectionalPolicy `json:"host,omitempty"`

	// PeerSets are the peer sets the entries name, written once however
	// many entries share them, one per name (atomic, as Identities).
	// +optional
	// +listType=atomic
	PeerSets []PeerSet `json:"peerSets,omitempty"`
}

// IdentityPolicy is the policy of the endpoints of one identity.
type IdentityPolicy struct {
	// Identity is the numeric security identity.
	// +kubebuilder:validation:Minimum=1
	Identity int64 `json:"identity"`

	DirectionalPolicy `json:",inline"`
}

// DirectionalPolicy is a policy per direction, with the policies it
// comes from.
type DirectionalPolicy struct {
	// Policies are the policies that select these endpoints, as
	// Kind/namespace/name (Kind/name for clusterwide ones), sorted: what
	// `kubectl plexus policy get <pod>` shows, and what entries' source
	// counts in.
	// +optional
	// +listType=atomic
	Policies []string `json:"policies,omitempty"`
	// +optional
	Ingress PolicyDirection `json:"ingress,omitempty"`
	// +optional
	Egress PolicyDirection `json:"egress,omitempty"`
}

// PolicyDirection is the enforcement of one direction: when enforced,
// only what an allow entry matches passes; when not, everything passes.
// Either way, what a deny entry matches is dropped.
type PolicyDirection struct {
	// +optional
	Enforced bool `json:"enforced,omitempty"`
	// +optional
	// +listType=atomic
	Entries []PolicyEntry `json:"entries,omitempty"`
}

// PolicyEntry matches traffic by peer, protocol and port.
type PolicyEntry struct {
	// Deny drops what the entry matches, whatever allows it.
	// +optional
	Deny bool `json:"deny,omitempty"`
	// Peers names a peer set, or is "any" for every peer.
	// +kubebuilder:validation:MinLength=1
	Peers string `json:"peers"`
	// Protocol is the IP protocol number; 0 is every protocol.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	Protocol int32 `json:"protocol"`
	// Port and EndPort bound the destination ports (TCP, UDP, SCTP) or
	// ICMP types; 0-65535 is all of them.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	EndPort int32 `json:"endPort"`
	// PortName is a named port of ingress entries, resolved against the
	// container ports of the node's pods; Port and EndPort are then 0.
	// (Egress port names are the peers': the controller resolves them.)
	// +optional
	PortName string `json:"portName,omitempty"`
	// Source is the position, from 1, in policies of the policy whose
	// rule gives this entry (flows name it as the policy that allowed or
	// denied them); 0 for entries Plexus adds itself, such as the node's
	// access to its own pods.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Source int32 `json:"source,omitempty"`
}

// AnyPeer is the Peers value of an entry that matches every peer.
const AnyPeer = "any"

// PeerSet is a set of peers: identities, and addresses outside the
// cluster by prefix.
type PeerSet struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	// +listType=atomic
	Identities []int64 `json:"identities,omitempty"`
	// CIDRs match an address whose most specific prefix known to the node
	// lies within one of them (exceptions are already cut out).
	// +optional
	// +listType=atomic
	CIDRs []string `json:"cidrs,omitempty"`
}

// NodePolicyStatus is what the node's policy plugin achieved.
type NodePolicyStatus struct {
	// ObservedGeneration is the generation the plugin last programmed.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Identities and Entries count what is in the datapath.
	// +optional
	Identities int32 `json:"identities,omitempty"`
	// +optional
	Entries int32 `json:"entries,omitempty"`
	// Conditions: Ready once the datapath enforces this generation.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true

// NodePolicyList is a list of NodePolicy.
type NodePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodePolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NodePolicy{}, &NodePolicyList{})
}

// IdentityAddresses are the addresses of the pods of one security
// identity, written by the policy controller for every node's policy
// plugin, which needs every address's identity (the sender of a packet
// it receives may be anywhere). Batched per identity, at most
// MaxIdentityAddresses per object, so a pod's coming or going rewrites
// one object, and no node's own objects carry the cluster's addresses.
// Named "<identity>" (then "<identity>-1", … for large identities).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ida
// +kubebuilder:printcolumn:name="Identity",type=integer,JSONPath=`.spec.identity`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IdentityAddresses struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IdentityAddressesSpec `json:"spec"`
}

// MaxIdentityAddresses bounds one IdentityAddresses object.
const MaxIdentityAddresses = 1000

// IdentityAddressesSpec lists addresses of one identity.
type IdentityAddressesSpec struct {
	// +kubebuilder:validation:Minimum=1
	Identity int64 `json:"identity"`
	// Addresses are pod IPs (IPv4 and IPv6), sorted.
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	Addresses []string `json:"addresses"`
}

// +kubebuilder:object:root=true

// IdentityAddressesList is a list of IdentityAddresses.
type IdentityAddressesList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IdentityAddresses `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IdentityAddresses{}, &IdentityAddressesList{})
}
