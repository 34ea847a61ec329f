package v2alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types on a CiliumL2AnnouncementPolicy. The io.cilium/* names are
// the seed system's: True means the field is broken.
const (
	L2PolicyConditionBadServiceSelector = "io.cilium/bad-service-selector"
	L2PolicyConditionBadNodeSelector    = "io.cilium/bad-node-selector"
	L2PolicyConditionBadInterfaceRegex  = "io.cilium/bad-interface-regex"
)

// CiliumL2AnnouncementPolicy makes the addresses of the Services it selects
// reachable on the nodes' L2 segment: exactly one of the selected nodes
// answers ARP for each address, and another takes over when it fails.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2announcement;l2policy,categories=cilium
// +kubebuilder:printcolumn:name="LBIPs",type=boolean,JSONPath=`.spec.loadBalancerIPs`
// +kubebuilder:printcolumn:name="ExternalIPs",type=boolean,JSONPath=`.spec.externalIPs`
// +kubebuilder:printcolumn:name="Services",type=integer,JSONPath=`.status.services`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumL2AnnouncementPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec may be absent, as Cilium's CRD allows: such a policy announces
	// nothing (neither loadBalancerIPs nor externalIPs).
	// +optional
	Spec   L2AnnouncementPolicySpec   `json:"spec,omitempty"`
	Status L2AnnouncementPolicyStatus `json:"status,omitempty"`
}

// L2AnnouncementPolicySpec selects Services, their addresses, and the nodes
// and interfaces that announce them.
type L2AnnouncementPolicySpec struct {
	// ServiceSelector selects the Services whose addresses are announced;
	// absent selects every Service. Besides labels it matches the keys
	// io.kubernetes.service.namespace and io.kubernetes.service.name. Only
	// Services without spec.loadBalancerClass or with class
	// io.cilium/l2-announcer are announced.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`

	// NodeSelector selects the nodes that may announce; absent selects every
	// node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// Interfaces are regular expressions (Go syntax, unanchored) of the
	// interfaces to answer ARP on; absent means every interface with an IPv4
	// address. Not a security feature: the address stays reachable through
	// other interfaces by static ARP.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Interfaces []string `json:"interfaces,omitempty"`

	// ExternalIPs announces the Services' spec.externalIPs.
	// +optional
	ExternalIPs bool `json:"externalIPs,omitempty"`

	// LoadBalancerIPs announces the Services' status.loadBalancer.ingress
	// addresses (from LB-IPAM, for example).
	// +optional
	LoadBalancerIPs bool `json:"loadBalancerIPs,omitempty"`
}

// L2AnnouncementPolicyStatus reports what the policy selects and what is
// wrong with it.
type L2AnnouncementPolicyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Services is the number of Services with an address the policy announces.
	// +optional
	Services int32 `json:"services,omitempty"`
	// Nodes is the number of nodes the policy selects.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// Conditions: Ready, and the seed's io.cilium/bad-service-selector,
	// io.cilium/bad-node-selector and io.cilium/bad-interface-regex.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumL2AnnouncementPolicyList is a list of CiliumL2AnnouncementPolicies.
//
// +kubebuilder:object:root=true
type CiliumL2AnnouncementPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumL2AnnouncementPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumL2AnnouncementPolicy{}, &CiliumL2AnnouncementPolicyList{})
}
