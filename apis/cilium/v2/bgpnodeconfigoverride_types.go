package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumBGPNodeConfigOverride changes the BGP settings of one node: its name
// is the node's name, and its instances and peers refer by name to those of
// the CiliumBGPClusterConfig that selects the node. Names that match nothing
// have no effect (the API server cannot check them: the node and the cluster
// config may come later).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cbgpnodeoverride,categories={cilium,ciliumbgp}
// +kubebuilder:printcolumn:name="Instances",type=string,JSONPath=`.spec.bgpInstances[*].name`
// +kubebuilder:printcolumn:name="RouterIDs",type=string,JSONPath=`.spec.bgpInstances[*].routerID`
// +kubebuilder:printcolumn:name="LocalASNs",type=string,JSONPath=`.spec.bgpInstances[*].localASN`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumBGPNodeConfigOverride struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumBGPNodeConfigOverrideSpec `json:"spec"`
}

// CiliumBGPNodeConfigOverrideSpec lists the instances to change.
type CiliumBGPNodeConfigOverrideSpec struct {
	// BGPInstances are the changes per instance, each naming an instance of
	// the cluster config.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	BGPInstances []CiliumBGPNodeConfigInstanceOverride `json:"bgpInstances"`
}

// CiliumBGPNodeConfigInstanceOverride changes one instance on the node.
type CiliumBGPNodeConfigInstanceOverride struct {
	// Name is the instance's name in the CiliumBGPClusterConfig.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// RouterID is the instance's BGP identifier, an IPv4 address. Without it
	// the node picks one: its IPv4 address, or on an IPv6-only node the low
	// 32 bits of its cilium_host MAC, or one from the configured router-ID
	// pool. It should be unique among the speakers that peer.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="spec.bgpInstances[].routerID must be an IPv4 address such as 192.168.10.1"
	RouterID *string `json:"routerID,omitempty"`

	// LocalPort makes the instance accept sessions on this TCP port on this
	// node, also when the cluster config has no localPort.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	LocalPort *int32 `json:"localPort,omitempty"`

	// LocalASN replaces the instance's local AS number on this node.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	LocalASN *int64 `json:"localASN,omitempty"`

	// Peers are the changes per peer, each naming a peer of the instance.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Peers []CiliumBGPNodeConfigPeerOverride `json:"peers,omitempty"`
}

// CiliumBGPNodeConfigPeerOverride changes one peer on the node.
type CiliumBGPNodeConfigPeerOverride struct {
	// Name is the peer's name in the instance.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// LocalAddress is the source address of the session. It must be
	// assigned to an interface of the node. Without it the source is the one
	// the node's routing picks for the peer address.
	// +optional
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="spec.bgpInstances[].peers[].localAddress must be an IPv4 or IPv6 address"
	LocalAddress *string `json:"localAddress,omitempty"`

	// LocalPort is deprecated and has no effect: the source port of a session
	// the node opens is ephemeral. Kept, unchecked, so that existing
	// manifests apply.
	// +optional
	LocalPort *int32 `json:"localPort,omitempty"`
}

// CiliumBGPNodeConfigOverrideList is a list of CiliumBGPNodeConfigOverrides.
//
// +kubebuilder:object:root=true
type CiliumBGPNodeConfigOverrideList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumBGPNodeConfigOverride `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumBGPNodeConfigOverride{}, &CiliumBGPNodeConfigOverrideList{})
}
