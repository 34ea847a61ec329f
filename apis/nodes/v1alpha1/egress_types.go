package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Egress is one node's share of the CiliumEgressGatewayPolicies: which of
// its pods' traffic it sends to a gateway, and which gateways it is a
// candidate for. One per node that has either, named after the node,
// written by the egress gateway controller.
//
// A gateway with an egressIP has candidates in order (the nodes its
// nodeSelector matches, by name). The candidates' node plugins exchange
// heartbeats, and the first live one holds the egress IP: it answers ARP for
// it and translates the traffic to it. Source nodes send the traffic to the
// egress IP itself, so whoever answers ARP for it receives it and a failover
// needs no API write and no change on the source nodes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=egr
// +kubebuilder:printcolumn:name="Steered",type=integer,JSONPath=`.status.steeredSources`,description="local pod addresses whose traffic goes to a gateway"
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.gateways[?(@.state=="Active")].egressIP`,description="egress addresses this node translates to now"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Egress struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EgressSpec   `json:"spec"`
	Status EgressStatus `json:"status,omitempty"`
}

// EgressSpec is the node's share of the egress policies.
type EgressSpec struct {
	// Peers are the nodes this node exchanges heartbeats with: the
	// candidates of every gateway below, this node included. Empty on a node
	// that only has sources.
	// +optional
	// +listType=map
	// +listMapKey=node
	Peers []L2Peer `json:"peers,omitempty"`

	// ClusterCIDRs are destinations inside the cluster (pod CIDRs, node
	// addresses): never sent to a gateway, translated or dropped.
	// +optional
	// +listType=atomic
	ClusterCIDRs []string `json:"clusterCIDRs,omitempty"`

	// Steering is, in order, where this node's pods' traffic goes: one entry
	// per policy and gateway that has sources here. A packet takes the first
	// entry it matches.
	// +optional
	// +listType=atomic
	Steering []EgressSteering `json:"steering,omitempty"`

	// Gateways are the gateways this node is a candidate for.
	// +optional
	// +listType=atomic
	Gateways []EgressGatewayDuty `json:"gateways,omitempty"`
}

// EgressTraffic is the traffic of an entry: from these sources to these
// destinations, except the excluded ones.
type EgressTraffic struct {
	// Policy is the CiliumEgressGatewayPolicy.
	Policy string `json:"policy"`
	// Gateway is the index of the gateway in the policy (0 for
	// spec.egressGateway, i for spec.egressGateways[i]).
	Gateway int32 `json:"gateway"`
	// SourceIPs are the pod addresses, sorted.
	// +listType=atomic
	SourceIPs []string `json:"sourceIPs"`
	// DestinationCIDRs and ExcludedCIDRs are the policy's.
	// +listType=atomic
	DestinationCIDRs []string `json:"destinationCIDRs"`
	// +optional
	// +listType=atomic
	ExcludedCIDRs []string `json:"excludedCIDRs,omitempty"`
}

// EgressSteering sends local pods' traffic to a gateway. With EgressIP set
// the traffic goes to whichever node holds that address (this node itself
// if it does: then it just leaves from here); with GatewayIP set it goes to
// that node; with neither the gateway has no node and the traffic is
// dropped, so it never leaves with the wrong source address.
type EgressSteering struct {
	EgressTraffic `json:",inline"`
	// EgressIP is the gateway's floating egress address.
	// +optional
	EgressIP string `json:"egressIP,omitempty"`
	// GatewayNode and GatewayIP are the gateway node and its InternalIP, for
	// a gateway without an egressIP.
	// +optional
	GatewayNode string `json:"gatewayNode,omitempty"`
	// +optional
	GatewayIP string `json:"gatewayIP,omitempty"`
}

// EgressGatewayDuty is a gateway this node is a candidate for: it holds
// EgressIP while it is the first live candidate, or, for a gateway without
// egressIP (a single, controller-chosen node), translates to the first
// address of Interface (or of the default route's interface).
type EgressGatewayDuty struct {
	EgressTraffic `json:",inline"`
	// EgressIP is the floating source address.
	// +optional
	EgressIP string `json:"egressIP,omitempty"`
	// Interface gives the source address when EgressIP is empty; empty
	// means the interface of the default route.
	// +optional
	Interface string `json:"interface,omitempty"`
	// Candidates are the nodes that may hold EgressIP, most preferred first.
	// +listType=atomic
	Candidates []string `json:"candidates"`
}

// EgressStatus is what the node does.
type EgressStatus struct {
	// ObservedGeneration is the generation the node acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// SteeredSources is the number of local pod addresses steered.
	// +optional
	SteeredSources int32 `json:"steeredSources,omitempty"`
	// Gateways are this node's roles in the gateways of its spec.
	// +optional
	// +listType=atomic
	Gateways []EgressGatewayState `json:"gateways,omitempty"`
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

// EgressGatewayState is the node's role in one gateway.
type EgressGatewayState struct {
	Policy  string `json:"policy"`
	Gateway int32  `json:"gateway"`
	// EgressIP is the source address the node translates to (or would).
	// +optional
	EgressIP string `json:"egressIP,omitempty"`
	// Interface is where the egress address is (answered for, or assigned).
	// +optional
	Interface string `json:"interface,omitempty"`
	// State is Active (translating) or Standby.
	// +kubebuilder:validation:Enum=Active;Standby
	State string `json:"state"`
	// Since is when the node entered State.
	// +optional
	Since metav1.Time `json:"since,omitempty"`
	// Problem is why the node cannot serve the gateway (then it drops the
	// gateway's traffic rather than letting it leave with another address).
	// +optional
	Problem string `json:"problem,omitempty"`
}

// EgressList is a list of Egresses.
//
// +kubebuilder:object:root=true
type EgressList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Egress `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Egress{}, &EgressList{})
}
