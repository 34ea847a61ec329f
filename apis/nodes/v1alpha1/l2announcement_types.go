package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2Announcement is what one node may announce on its L2 segment: one per
// node that some CiliumL2AnnouncementPolicy selects, named after the node,
// written by the L2 announcer controller. For each address it lists the
// candidate nodes in order of preference; the node plugins learn which
// candidates are alive from each other directly (heartbeats on the segment),
// and the first live candidate answers ARP. A failover therefore needs no
// API write.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2a
// +kubebuilder:printcolumn:name="Addresses",type=integer,JSONPath=`.status.addressCount`,description="addresses this node may announce"
// +kubebuilder:printcolumn:name="Announcing",type=string,JSONPath=`.status.announcing[*].ip`,description="addresses this node answers ARP for now"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Announcement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   L2AnnouncementSpec   `json:"spec"`
	Status L2AnnouncementStatus `json:"status,omitempty"`
}

// L2AnnouncementSpec is the node's share of the announcements.
type L2AnnouncementSpec struct {
	// Peers are the nodes this node exchanges heartbeats with: every
	// candidate of every address below, this node included.
	// +optional
	// +listType=map
	// +listMapKey=node
	Peers []L2Peer `json:"peers,omitempty"`

	// Addresses are the addresses this node is a candidate for, sorted.
	// +optional
	// +listType=map
	// +listMapKey=ip
	Addresses []L2Address `json:"addresses,omitempty"`
}

// L2Peer is a node and the address its heartbeats use.
type L2Peer struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Address is the node's address on the segment (its InternalIP).
	Address string `json:"address"`
}

// L2Address is one address to announce and who may announce it.
type L2Address struct {
	// IP is the IPv4 address.
	IP string `json:"ip"`
	// Services are the Services (namespace/name) with this address.
	// +listType=atomic
	Services []string `json:"services"`
	// Interfaces are the regular expressions of the interfaces to answer on
	// (from the policies that select the Service and this node); empty means
	// every interface with an IPv4 address.
	// +optional
	// +listType=atomic
	Interfaces []string `json:"interfaces,omitempty"`
	// Candidates are the nodes that may announce the address, most
	// preferred first. The first candidate a node sees alive announces.
	// +listType=atomic
	Candidates []string `json:"candidates"`
}

// L2AnnouncementStatus is what the node does.
type L2AnnouncementStatus struct {
	// ObservedGeneration is the generation the node acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// AddressCount is the number of addresses in the spec.
	// +optional
	AddressCount int32 `json:"addressCount,omitempty"`
	// Announcing are the addresses this node answers ARP for now, and where.
	// +optional
	// +listType=map
	// +listMapKey=ip
	Announcing []L2Announcing `json:"announcing,omitempty"`
	// LivePeers are the peers this node hears heartbeats from (itself
	// included), sorted.
	// +optional
	// +listType=atomic
	LivePeers []string `json:"livePeers,omitempty"`
	// Conditions: Ready (the node plugin runs and carries out the spec).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// L2Announcing is an address the node announces.
type L2Announcing struct {
	// IP is the address.
	IP string `json:"ip"`
	// Interfaces are the interfaces it answers ARP on.
	// +listType=atomic
	Interfaces []string `json:"interfaces"`
	// Since is when this node began announcing it.
	Since metav1.Time `json:"since"`
}

// L2AnnouncementList is a list of L2Announcements.
//
// +kubebuilder:object:root=true
type L2AnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Announcement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&L2Announcement{}, &L2AnnouncementList{})
}
