package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumEgressGatewayPolicy sends the traffic of selected pods to selected
// destinations out through a gateway node, with a fixed source address. With
// several gateways (egressGateways) each pod uses one of them; a gateway
// with a floating egressIP is held by one of its candidate nodes, and when
// that node fails another takes over with the same address.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cegp,categories=cilium
// +kubebuilder:printcolumn:name="Destinations",type=string,JSONPath=`.spec.destinationCIDRs`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumEgressGatewayPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec may be absent, as Cilium's CRD allows; such a policy does nothing
	// and says so in its Ready condition.
	// +optional
	Spec   CiliumEgressGatewayPolicySpec `json:"spec,omitempty"`
	Status EgressGatewayPolicyStatus     `json:"status,omitempty"`
}

// CiliumEgressGatewayPolicySpec selects source pods, destinations and
// gateways.
// +kubebuilder:validation:XValidation:rule="has(self.egressGateway) || (has(self.egressGateways) && size(self.egressGateways) > 0)",message="set spec.egressGateway or spec.egressGateways"
type CiliumEgressGatewayPolicySpec struct {
	// Selectors select the source pods; a pod matching any rule is selected.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Selectors []EgressRule `json:"selectors"`

	// DestinationCIDRs are the destinations whose traffic goes through the
	// gateway (0.0.0.0/0 and ::/0 for everything). Cluster-internal
	// destinations (pods, nodes) never do.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="spec.destinationCIDRs: every entry must be a CIDR such as 192.0.2.0/24 or ::/0"
	// +listType=atomic
	DestinationCIDRs []string `json:"destinationCIDRs"`

	// ExcludedCIDRs are exceptions inside DestinationCIDRs: traffic to them
	// leaves as it would without the policy.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="spec.excludedCIDRs: every entry must be a CIDR"
	// +listType=atomic
	ExcludedCIDRs []string `json:"excludedCIDRs,omitempty"`

	// EgressGateway is a single gateway. Beside a non-empty EgressGateways
	// it is ignored (as Cilium does), and the Ready condition says so.
	// +optional
	EgressGateway *EgressGateway `json:"egressGateway,omitempty"`

	// EgressGateways are several gateways; each selected pod uses one,
	// chosen by its UID.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	EgressGateways []EgressGateway `json:"egressGateways,omitempty"`
}

// EgressRule selects source pods.
// +kubebuilder:validation:XValidation:rule="!has(self.nodeSelector) || has(self.podSelector)",message="nodeSelector limits podSelector: set podSelector too"
type EgressRule struct {
	// NamespaceSelector selects the pods' namespaces by label.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// PodSelector selects pods by label; the key io.kubernetes.pod.namespace
	// matches the pod's namespace.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// NodeSelector limits the selected pods to those on matching nodes.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// EgressGateway is a gateway node and the source address it gives the
// traffic.
// +kubebuilder:validation:XValidation:rule="!(has(self.egressIP) && size(self.egressIP) > 0 && has(self.interface) && size(self.interface) > 0)",message="set egressIP or interface, not both (the seed system ignores such a policy silently)"
type EgressGateway struct {
	// NodeSelector selects the gateway node; of several, the first by name.
	NodeSelector *metav1.LabelSelector `json:"nodeSelector"`
	// Interface's first IPv4 and IPv6 addresses become the source address.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	Interface string `json:"interface,omitempty"`
	// EgressIP is the source address, floating between the candidates; it
	// must lie in a subnet of an interface of theirs. Empty is the same as
	// absent.
	// +optional
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || isIP(self)",message="egressIP must be an IP address"
	EgressIP string `json:"egressIP,omitempty"`
}

// EgressGatewayPolicyStatus says which gateway is active and why a policy
// does nothing.
type EgressGatewayPolicyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Gateways lists the gateways: the active one and those standing by.
	// +optional
	// +listType=atomic
	Gateways []EgressGatewayStatus `json:"gateways,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// EgressGatewayStatus is one gateway node's role.
type EgressGatewayStatus struct {
	// Node is the gateway node.
	Node string `json:"node"`
	// EgressIP is the source address it gives the traffic.
	// +optional
	EgressIP string `json:"egressIP,omitempty"`
	// State is Active or Standby.
	// +kubebuilder:validation:Enum=Active;Standby
	State string `json:"state"`
}

// CiliumEgressGatewayPolicyList is a list of CiliumEgressGatewayPolicies.
//
// +kubebuilder:object:root=true
type CiliumEgressGatewayPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumEgressGatewayPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumEgressGatewayPolicy{}, &CiliumEgressGatewayPolicyList{})
}
