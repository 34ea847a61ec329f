package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L7Proxy is what one node's Envoy serves: the Envoy configs
// (CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig) selected for the
// node, named after it and written by the gateway controller. The node's
// l7proxy plugin serves their resources over xDS and reports, per config,
// the generation its proxy acknowledged, or the resource it refused. The
// spec names configs, not their content, so an edit of a route rewrites
// one config, not one object per node; it also lists the load-balancer
// addresses the node hands to its proxy (frontends).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l7p
// +kubebuilder:printcolumn:name="Configs",type=integer,JSONPath=`.status.configCount`,description="Envoy configs this node serves"
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`,description="xDS version the proxy acknowledged"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L7Proxy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   L7ProxySpec   `json:"spec"`
	Status L7ProxyStatus `json:"status,omitempty"`
}

// L7ProxySpec lists the configs the node serves, and the load-balancer
// addresses whose connections it hands to its proxy itself.
type L7ProxySpec struct {
	// Configs are the Envoy configs this node's proxy serves, sorted.
	// +optional
	// +listType=atomic
	Configs []EnvoyConfigRef `json:"configs,omitempty"`
	// Frontends are the load-balancer addresses and ports of the Gateways
	// and Ingresses, sorted. A connection to one that arrives at this node
	// is redirected to the node's own proxy at ProxyPort before Service
	// load-balancing, which with externalTrafficPolicy Cluster could send
	// it to another node and hide the client's address from the proxy.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4096
	Frontends []L7Frontend `json:"frontends,omitempty"`
}

// L7Frontend is one load-balancer address and port of a Gateway or
// Ingress, and the port its proxy listens on.
type L7Frontend struct {
	// Address is an IPv4 or IPv6 address.
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="address must be an IP address"
	// +kubebuilder:validation:MaxLength=45
	Address string `json:"address"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ProxyPort int32 `json:"proxyPort"`
}

// EnvoyConfigRef names a CiliumEnvoyConfig (with its namespace) or a
// CiliumClusterwideEnvoyConfig (without).
// +kubebuilder:validation:XValidation:rule="self.kind == 'CiliumEnvoyConfig' ? has(self.__namespace__) : !has(self.__namespace__)",message="namespace is set exactly for a CiliumEnvoyConfig"
type EnvoyConfigRef struct {
	// +kubebuilder:validation:Enum=CiliumEnvoyConfig;CiliumClusterwideEnvoyConfig
	Kind string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String is "Kind namespace/name" (or "Kind name").
func (r EnvoyConfigRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// L7ProxyStatus is what the node's proxy acknowledged.
type L7ProxyStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ConfigCount is the number of configs in the spec.
	// +optional
	ConfigCount int32 `json:"configCount,omitempty"`
	// Version is the xDS version the proxy last acknowledged for every
	// resource type.
	// +optional
	Version string `json:"version,omitempty"`
	// Configs holds, per config, the generation the proxy acknowledged or
	// why it could not be served.
	// +optional
	// +listType=atomic
	Configs []EnvoyConfigServed `json:"configs,omitempty"`
	// Conditions: Ready (the proxy is connected and acknowledged every
	// config of the spec).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// EnvoyConfigServed is one config as the node's proxy has it.
type EnvoyConfigServed struct {
	EnvoyConfigRef `json:",inline"`
	// Generation is the config generation the proxy acknowledged (0:
	// none yet).
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// Error says why the config (or a resource in it) is not served.
	// +optional
	Error string `json:"error,omitempty"`
}

// L7ProxyList is a list of L7Proxies.
//
// +kubebuilder:object:root=true
type L7ProxyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L7Proxy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&L7Proxy{}, &L7ProxyList{})
}
