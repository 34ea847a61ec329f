package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeConfigDefaultIPPool is the CiliumNodeConfig key Plexus honours: the
// pool of the selected nodes' pods that name none (multi-pool IPAM), in
// place of the pool named "default".
const NodeConfigDefaultIPPool = "ipam-default-ip-pool"

// CiliumNodeConfig overrides settings of the nodes its selector selects,
// as Cilium's per-node configuration does. Plexus honours the key
// ipam-default-ip-pool (read by each node's CNI agent in the namespace it
// is configured with, and applied to pods created from then on, with no
// restart); other keys are Cilium agent options that Plexus has no use for
// and ignores.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=cilium
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumNodeConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumNodeConfigSpec `json:"spec"`
}

// CiliumNodeConfigSpec is the selector and the overrides.
type CiliumNodeConfigSpec struct {
	// Defaults are the overrides, by option name.
	Defaults map[string]string `json:"defaults"`

	// NodeSelector selects the nodes by label; {} selects every node. When
	// several configs select a node and set the same key, the one whose name
	// sorts last wins.
	NodeSelector *metav1.LabelSelector `json:"nodeSelector"`
}

// CiliumNodeConfigList is a list of CiliumNodeConfigs.
//
// +kubebuilder:object:root=true
type CiliumNodeConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumNodeConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumNodeConfig{}, &CiliumNodeConfigList{})
}
