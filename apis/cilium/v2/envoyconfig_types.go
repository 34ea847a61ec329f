package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// CiliumEnvoyConfig is a set of Envoy resources (listeners, routes,
// clusters, endpoints) that the node proxies serve, in the seed's schema.
// The gateway controller writes one per Gateway (cilium-gateway-<name>);
// users may write their own. Plexus adds a status: Ready once every selected
// node's proxy has acknowledged this generation, with the refused resource
// named when one refuses it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=cilium,shortName=cec
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumEnvoyConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec CiliumEnvoyConfigSpec `json:"spec,omitempty"`
	// +optional
	Status EnvoyConfigStatus `json:"status,omitempty"`
}

// CiliumClusterwideEnvoyConfig is the cluster-scoped CiliumEnvoyConfig.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=cilium,shortName=ccec
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumClusterwideEnvoyConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec CiliumEnvoyConfigSpec `json:"spec,omitempty"`
	// +optional
	Status EnvoyConfigStatus `json:"status,omitempty"`
}

// CiliumEnvoyConfigSpec is the seed's CiliumEnvoyConfig spec.
type CiliumEnvoyConfigSpec struct {
	// Services are Services whose traffic is redirected to a listener of
	// these resources (not served by Plexus yet: a condition says so).
	// +optional
	Services []*ServiceListener `json:"services,omitempty"`

	// BackendServices are Services whose endpoints are served to the
	// proxy over EDS (not served by Plexus yet: a condition says so).
	// +optional
	BackendServices []*EnvoyBackendService `json:"backendServices,omitempty"`

	// Resources are Envoy v3 resources in protobuf JSON, each with its
	// "@type": Listener, RouteConfiguration, Cluster,
	// ClusterLoadAssignment or Secret.
	// +optional
	Resources []runtime.RawExtension `json:"resources,omitempty"`

	// NodeSelector picks the nodes whose proxies serve these resources;
	// nil means every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// ServiceListener is a Service whose traffic goes to an Envoy listener.
type ServiceListener struct {
	// Name is the Service's name.
	Name string `json:"name"`
	// Namespace is the Service's namespace (default: the config's, or
	// "default" for the cluster-wide kind).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Ports limits the redirection to these Service ports.
	// +optional
	Ports []uint16 `json:"ports,omitempty"`
	// Listener names the listener in Resources (default: the first).
	// +optional
	Listener string `json:"listener,omitempty"`
}

// EnvoyBackendService is a Service whose endpoints go to Envoy over EDS.
type EnvoyBackendService struct {
	// Name is the Service's name.
	Name string `json:"name"`
	// Namespace is the Service's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Ports limits the endpoints to these Service ports.
	// +optional
	Ports []string `json:"number,omitempty"`
}

// EnvoyConfigStatus is what the node proxies made of a config.
type EnvoyConfigStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (every selected node's proxy acknowledged this
	// generation), and Unsupported for fields Plexus does not serve.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumEnvoyConfigList is a list of CiliumEnvoyConfigs.
//
// +kubebuilder:object:root=true
type CiliumEnvoyConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumEnvoyConfig `json:"items"`
}

// CiliumClusterwideEnvoyConfigList is a list of
// CiliumClusterwideEnvoyConfigs.
//
// +kubebuilder:object:root=true
type CiliumClusterwideEnvoyConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumClusterwideEnvoyConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumEnvoyConfig{}, &CiliumEnvoyConfigList{}, &CiliumClusterwideEnvoyConfig{}, &CiliumClusterwideEnvoyConfigList{})
}
