package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumIdentity is a security identity: the number (its name) that every
// pod with one set of security-relevant labels shares. The identity
// controller creates one for each label set that running pods carry and
// deletes it once no pod has carried it for a grace period. Its
// Kubernetes labels repeat the k8s-sourced security labels that are valid
// as labels, so `kubectl get ciliumid -l app=web` finds it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ciliumid,categories=cilium
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.metadata.labels.io\.kubernetes\.pod\.namespace`,description="The namespace of the pods with this identity"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[1-9][0-9]*$')",message="metadata.name must be the identity's number (decimal, no leading zeros)"
type CiliumIdentity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// SecurityLabels are the labels that define the identity, keyed
	// "<source>:<key>" (e.g. "k8s:app"). They never change: a pod whose
	// labels change gets another identity.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="security-labels is immutable: an identity's labels define it"
	// +kubebuilder:validation:MaxProperties=512
	SecurityLabels map[string]string `json:"security-labels"`
}

// CiliumIdentityList is a list of CiliumIdentity objects.
//
// +kubebuilder:object:root=true
type CiliumIdentityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumIdentity `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumIdentity{}, &CiliumIdentityList{})
}
