package v2alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumGatewayClassConfig holds the settings of the Gateways of a
// GatewayClass whose spec.parametersRef names it: today the fields of
// each Gateway's generated Service. The schema is Cilium 1.20's, so its
// manifests apply; the fields Plexus does not act on are named in the
// Accepted condition's message.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=cgcc,categories=cilium
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`,priority=1
type CiliumGatewayClassConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   GatewayClassConfigSpec   `json:"spec,omitempty"`
	Status GatewayClassConfigStatus `json:"status,omitempty"`
}

// GatewayClassConfigSpec configures the Gateways of a GatewayClass.
type GatewayClassConfigSpec struct {
	// Description says what this configuration is for.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Description *string `json:"description,omitempty"`

	// Service sets fields of each Gateway's generated Service.
	// +optional
	Service *GatewayServiceConfig `json:"service,omitempty"`

	// HTTPOptions tune the HTTP connection managers (accepted; Plexus
	// does not translate gRPC-web, so enabling it is reported).
	// +optional
	HTTPOptions *GatewayHTTPOptions `json:"httpOptions,omitempty"`

	// Telemetry configures access logs (accepted, not acted on yet:
	// reported in the Accepted condition).
	// +optional
	Telemetry *GatewayTelemetry `json:"telemetry,omitempty"`

	// Envoy holds proxy options outside the Gateway API.
	// +optional
	Envoy *GatewayEnvoyConfig `json:"envoy,omitempty"`
}

// LoadBalancerSourceRangesPolicy says whether loadBalancerSourceRanges
// allow or deny the ranges they list.
// +kubebuilder:validation:Enum=Allow;Deny
type LoadBalancerSourceRangesPolicy string

// The source-range policies.
const (
	SourceRangesAllow LoadBalancerSourceRangesPolicy = "Allow"
	SourceRangesDeny  LoadBalancerSourceRangesPolicy = "Deny"
)

// GatewayServiceConfig are the generated Service's fields a class sets.
type GatewayServiceConfig struct {
	// Type of the generated Service: LoadBalancer or NodePort.
	// +optional
	// +kubebuilder:validation:Enum=LoadBalancer;NodePort
	// +kubebuilder:default=LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`

	// ExternalTrafficPolicy of the generated Service.
	// +optional
	// +kubebuilder:default=Cluster
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`

	// LoadBalancerClass of the generated Service (type LoadBalancer only).
	// +optional
	LoadBalancerClass *string `json:"loadBalancerClass,omitempty"`

	// IPFamilies of the generated Service.
	// +optional
	// +listType=atomic
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`

	// IPFamilyPolicy of the generated Service.
	// +optional
	IPFamilyPolicy *corev1.IPFamilyPolicy `json:"ipFamilyPolicy,omitempty"`

	// AllocateLoadBalancerNodePorts of the generated Service (type
	// LoadBalancer only).
	// +optional
	AllocateLoadBalancerNodePorts *bool `json:"allocateLoadBalancerNodePorts,omitempty"`

	// LoadBalancerSourceRanges of the generated Service (type
	// LoadBalancer only).
	// +optional
	// +listType=atomic
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`

	// LoadBalancerSourceRangesPolicy: Allow admits only the ranges; Deny
	// (Cilium's datapath only) is reported and the ranges are not applied.
	// +optional
	// +kubebuilder:default=Allow
	LoadBalancerSourceRangesPolicy LoadBalancerSourceRangesPolicy `json:"loadBalancerSourceRangesPolicy,omitempty"`

	// TrafficDistribution of the generated Service.
	// +optional
	TrafficDistribution *string `json:"trafficDistribution,omitempty"`
}

// GatewayHTTPOptions tune the HTTP connection managers.
type GatewayHTTPOptions struct {
	// +optional
	GRPCWebTranslation *GRPCWebTranslation `json:"grpcWebTranslation,omitempty"`
}

// GRPCWebTranslation switches gRPC-web to gRPC translation.
type GRPCWebTranslation struct {
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
}

// GatewayTelemetry configures observability.
type GatewayTelemetry struct {
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	AccessLogs []GatewayAccessLog `json:"accessLogs,omitempty"`
}

// GatewayAccessLog is one access log: its format and what emits it.
type GatewayAccessLog struct {
	// +kubebuilder:validation:Enum=JSON;Text
	Format string `json:"format"`
	// JSON maps field names to Envoy command operators (Format JSON).
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=64
	JSON map[string]string `json:"json,omitempty"`
	// Text is an Envoy format string (Format Text).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Text string `json:"text,omitempty"`
	// Targets are the proxy parts that log: HTTP, TCP.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Targets []GatewayAccessLogTarget `json:"targets,omitempty"`
}

// GatewayAccessLogTarget is a proxy part that writes access logs.
// +kubebuilder:validation:Enum=HTTP;TCP
type GatewayAccessLogTarget string

// ServerHeaderTransformation is Envoy's handling of the Server response
// header.
// +kubebuilder:validation:Enum=OVERWRITE;APPEND_IF_ABSENT;PASS_THROUGH
type ServerHeaderTransformation string

// Envoy's Server header transformations.
const (
	ServerHeaderOverwrite      ServerHeaderTransformation = "OVERWRITE"
	ServerHeaderAppendIfAbsent ServerHeaderTransformation = "APPEND_IF_ABSENT"
	ServerHeaderPassThrough    ServerHeaderTransformation = "PASS_THROUGH"
)

// GatewayEnvoyConfig holds proxy options outside the Gateway API.
type GatewayEnvoyConfig struct {
	// ServerHeaderTransformation: OVERWRITE (the default) answers with
	// "server: envoy", APPEND_IF_ABSENT only where the backend sent none,
	// PASS_THROUGH keeps the backend's (or none).
	// +optional
	// +kubebuilder:default=OVERWRITE
	ServerHeaderTransformation *ServerHeaderTransformation `json:"serverHeaderTransformation,omitempty"`
}

// GatewayClassConfigStatus reports whether the configuration is used.
type GatewayClassConfigStatus struct {
	// Conditions: Accepted (its message names the fields Plexus does not
	// act on) and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true

// CiliumGatewayClassConfigList is a list of CiliumGatewayClassConfigs.
type CiliumGatewayClassConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumGatewayClassConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumGatewayClassConfig{}, &CiliumGatewayClassConfigList{})
}
