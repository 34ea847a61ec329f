package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The policy kinds keep Cilium's schema field for field, so Cilium's policy
// manifests apply unchanged. Where Cilium's schema says "exactly one of" or
// "at least one of" (a Rule's selector and directions, a CIDRRule's
// source, an L7 rule set's protocol, an FQDN selector's form) the CRD
// carries the same oneOf/anyOf blocks; controller-gen has no marker for
// them, so hack/crdoneof adds them to the generated CRDs (make generate).

// CiliumNetworkPolicy is a namespaced network policy: one rule (spec), a
// list of rules (specs), or both. Its rules select endpoints of its own
// namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={cilium,ciliumpolicy},singular=ciliumnetworkpolicy,path=ciliumnetworkpolicies,scope=Namespaced,shortName={cnp,ciliumnp}
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=='Valid')].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].status`
type CiliumNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is one rule.
	// +optional
	Spec *PolicyRule `json:"spec,omitempty"`
	// Specs is a list of rules.
	// +optional
	Specs []PolicyRule `json:"specs,omitempty"`
	// +optional
	Status NetworkPolicyStatus `json:"status,omitempty"`
}

// CiliumNetworkPolicyList is a list of CiliumNetworkPolicy objects.
//
// +kubebuilder:object:root=true
type CiliumNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumNetworkPolicy `json:"items"`
}

// CiliumClusterwideNetworkPolicy is a cluster-scoped network policy: its
// rules select endpoints of every namespace, or nodes (nodeSelector: host
// policies).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={cilium,ciliumpolicy},singular=ciliumclusterwidenetworkpolicy,path=ciliumclusterwidenetworkpolicies,scope=Cluster,shortName={ccnp}
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=='Valid')].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=='Ready')].status`
type CiliumClusterwideNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is one rule.
	// +optional
	Spec *PolicyRule `json:"spec,omitempty"`
	// Specs is a list of rules.
	// +optional
	Specs []PolicyRule `json:"specs,omitempty"`
	// +optional
	Status NetworkPolicyStatus `json:"status,omitempty"`
}

// CiliumClusterwideNetworkPolicyList is a list of
// CiliumClusterwideNetworkPolicy objects.
//
// +kubebuilder:object:root=true
type CiliumClusterwideNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumClusterwideNetworkPolicy `json:"items"`
}

// NetworkPolicyStatus says whether the policy is valid and enforced.
type NetworkPolicyStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Valid (Cilium's), Ready, and conditions naming what is
	// unsupported or wrong.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PolicyRule is one policy rule: whom it applies to (exactly one of
// endpointSelector and nodeSelector) and what traffic it allows or denies
// (at least one direction).
type PolicyRule struct {
	// EndpointSelector selects the endpoints the rule applies to.
	// +optional
	EndpointSelector *EndpointSelector `json:"endpointSelector,omitempty"`
	// NodeSelector selects the nodes the rule applies to (host policies;
	// CiliumClusterwideNetworkPolicy only).
	// +optional
	NodeSelector *EndpointSelector `json:"nodeSelector,omitempty"`
	// Ingress rules allow traffic to the selected endpoints.
	// +optional
	Ingress []PolicyIngressRule `json:"ingress,omitempty"`
	// IngressDeny rules deny traffic to the selected endpoints, over any allow.
	// +optional
	IngressDeny []PolicyIngressDenyRule `json:"ingressDeny,omitempty"`
	// Egress rules allow traffic from the selected endpoints.
	// +optional
	Egress []PolicyEgressRule `json:"egress,omitempty"`
	// EgressDeny rules deny traffic from the selected endpoints, over any allow.
	// +optional
	EgressDeny []PolicyEgressDenyRule `json:"egressDeny,omitempty"`
	// Labels identify the rule.
	// +optional
	Labels []PolicyLabel `json:"labels,omitempty"`
	// EnableDefaultDeny says whether selecting an endpoint turns on default
	// deny in each direction (default: yes, for a direction with rules).
	// +optional
	EnableDefaultDeny *DefaultDenyConfig `json:"enableDefaultDeny,omitempty"`
	// Description is free text.
	// +optional
	Description string `json:"description,omitempty"`
	// Log configures policy verdict logging.
	// +optional
	Log *PolicyLogConfig `json:"log,omitempty"`
}

// EndpointSelector is a label selector over endpoints' security labels.
// Keys may carry a source prefix ("k8s:app", "any:app"); an empty selector
// selects all.
//
// +structType=atomic
type EndpointSelector struct {
	// +optional
	MatchLabels map[string]MatchLabelsValue `json:"matchLabels,omitempty"`
	// +optional
	// +listType=atomic
	MatchExpressions []SelectorRequirement `json:"matchExpressions,omitempty"`
}

// MatchLabelsValue is a label value.
//
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type MatchLabelsValue string

// SelectorRequirement is one expression of a selector.
type SelectorRequirement struct {
	Key string `json:"key"`
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator string `json:"operator"`
	// +optional
	// +listType=atomic
	Values []string `json:"values,omitempty"`
}

// PolicyIngressCommon is what allow and deny ingress rules share: the peers.
type PolicyIngressCommon struct {
	// FromEndpoints are the endpoints traffic may come from.
	// +optional
	FromEndpoints []EndpointSelector `json:"fromEndpoints,omitempty"`
	// FromRequires is deprecated and must be empty.
	// +optional
	// +kubebuilder:validation:MaxItems=0
	FromRequires []string `json:"fromRequires,omitempty"`
	// FromCIDR are addresses outside the cluster.
	// +optional
	FromCIDR []CIDR `json:"fromCIDR,omitempty"`
	// FromCIDRSet are CIDRs with exceptions, or CiliumCIDRGroups.
	// +optional
	FromCIDRSet []CIDRRule `json:"fromCIDRSet,omitempty"`
	// FromEntities are reserved identities and groups of them.
	// +optional
	FromEntities []Entity `json:"fromEntities,omitempty"`
	// FromGroups are cloud provider groups.
	// +optional
	FromGroups []PolicyGroups `json:"fromGroups,omitempty"`
	// FromNodes are nodes selected by their labels.
	// +optional
	FromNodes []EndpointSelector `json:"fromNodes,omitempty"`
}

// PolicyIngressRule allows traffic from its peers (all of them, when it names
// none) to the ports it lists (all, when it lists none).
type PolicyIngressRule struct {
	PolicyIngressCommon `json:",inline"`
	// +optional
	ToPorts []PortRule `json:"toPorts,omitempty"`
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`
	// +optional
	Authentication *Authentication `json:"authentication,omitempty"`
}

// PolicyIngressDenyRule denies traffic from its peers to the ports it lists.
type PolicyIngressDenyRule struct {
	PolicyIngressCommon `json:",inline"`
	// +optional
	ToPorts []PortDenyRule `json:"toPorts,omitempty"`
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`
}

// PolicyEgressCommon is what allow and deny egress rules share: the peers.
type PolicyEgressCommon struct {
	// +optional
	ToEndpoints []EndpointSelector `json:"toEndpoints,omitempty"`
	// ToRequires is deprecated and must be empty.
	// +optional
	// +kubebuilder:validation:MaxItems=0
	ToRequires []string `json:"toRequires,omitempty"`
	// +optional
	ToCIDR []CIDR `json:"toCIDR,omitempty"`
	// +optional
	ToCIDRSet []CIDRRule `json:"toCIDRSet,omitempty"`
	// +optional
	ToEntities []Entity `json:"toEntities,omitempty"`
	// ToServices are Kubernetes Services whose endpoints may be reached.
	// +optional
	ToServices []PolicyService `json:"toServices,omitempty"`
	// +optional
	ToGroups []PolicyGroups `json:"toGroups,omitempty"`
	// +optional
	ToNodes []EndpointSelector `json:"toNodes,omitempty"`
}

// PolicyEgressRule allows traffic to its peers on the ports it lists.
type PolicyEgressRule struct {
	PolicyEgressCommon `json:",inline"`
	// +optional
	ToPorts []PortRule `json:"toPorts,omitempty"`
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`
	// ToFQDNs are DNS names whose resolved addresses may be reached.
	// +optional
	ToFQDNs []FQDNSelector `json:"toFQDNs,omitempty"`
	// +optional
	Authentication *Authentication `json:"authentication,omitempty"`
}

// PolicyEgressDenyRule denies traffic to its peers on the ports it lists.
type PolicyEgressDenyRule struct {
	PolicyEgressCommon `json:",inline"`
	// +optional
	ToPorts []PortDenyRule `json:"toPorts,omitempty"`
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`
}

// CIDR is an IPv4 or IPv6 prefix.
//
// +kubebuilder:validation:Format=cidr
type CIDR string

// CIDRRule is a CIDR with exceptions, or a reference to CiliumCIDRGroups
// (exactly one of cidr, cidrGroupRef and cidrGroupSelector).
type CIDRRule struct {
	// +optional
	Cidr CIDR `json:"cidr,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	CIDRGroupRef string `json:"cidrGroupRef,omitempty"`
	// +optional
	CIDRGroupSelector *EndpointSelector `json:"cidrGroupSelector,omitempty"`
	// Except are prefixes inside cidr that the rule leaves out.
	// +optional
	ExceptCIDRs []CIDR `json:"except,omitempty"`
}

// Entity names reserved identities and groups of them.
//
// +kubebuilder:validation:Enum=all;world;cluster;cluster-mesh;host;init;ingress;unmanaged;remote-node;health;none;kube-apiserver
type Entity string

// PortRule lists ports, and optionally L7 rules and TLS settings for them.
type PortRule struct {
	// +optional
	// +kubebuilder:validation:MaxItems=40
	Ports []PortProtocol `json:"ports,omitempty"`
	// +optional
	TerminatingTLS *TLSContext `json:"terminatingTLS,omitempty"`
	// +optional
	OriginatingTLS *TLSContext `json:"originatingTLS,omitempty"`
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	ServerNames []ServerName `json:"serverNames,omitempty"`
	// +optional
	Listener *PolicyListener `json:"listener,omitempty"`
	// Rules are L7 rules (one protocol).
	// +optional
	Rules *L7Rules `json:"rules,omitempty"`
}

// ServerName is a TLS SNI name, wildcards allowed.
//
// +kubebuilder:validation:MaxLength=255
// +kubebuilder:validation:Pattern=`^([-a-zA-Z0-9_*]+[.]?)+$`
type ServerName string

// PortDenyRule lists the ports a deny rule applies to.
type PortDenyRule struct {
	// +optional
	Ports []PortProtocol `json:"ports,omitempty"`
}

// PortProtocol is a port (number or name), a port range (endPort) and a
// protocol.
type PortProtocol struct {
	// Port is a number or a named port; empty or "0" is every port.
	// (Cilium's pattern anchors each alternative on one side only, so it
	// lets "70000" through; this one is anchored on both.)
	// +optional
	// +kubebuilder:validation:Pattern=`^((6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})|([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*)$`
	Port string `json:"port,omitempty"`
	// EndPort ends a range that starts at port.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	EndPort int32 `json:"endPort,omitempty"`
	// Protocol; empty is ANY.
	// +optional
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP;VRRP;IGMP;GRE;IPIP;IPV6;ESP;AH;ANY
	Protocol string `json:"protocol,omitempty"`
}

// L7Rules are the L7 rules of a port rule, of one protocol. Kafka and
// generic (l7proto) rules were removed from Cilium's schema in 1.19; they
// are kept here so that older manifests are reported as unsupported
// instead of losing the rules silently.
type L7Rules struct {
	// +optional
	HTTP []PortRuleHTTP `json:"http,omitempty"`
	// +optional
	Kafka []PortRuleKafka `json:"kafka,omitempty"`
	// +optional
	DNS []FQDNSelector `json:"dns,omitempty"`
	// +optional
	L7Proto string `json:"l7proto,omitempty"`
	// +optional
	L7 []PortRuleL7 `json:"l7,omitempty"`
}

// PortRuleHTTP matches HTTP requests.
type PortRuleHTTP struct {
	// +optional
	Path string `json:"path,omitempty"`
	// +optional
	Method string `json:"method,omitempty"`
	// +optional
	Host string `json:"host,omitempty"`
	// +optional
	Headers []string `json:"headers,omitempty"`
	// +optional
	HeaderMatches []HeaderMatch `json:"headerMatches,omitempty"`
}

// HeaderMatch matches an HTTP header, optionally against a Secret's value.
type HeaderMatch struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	Value string `json:"value,omitempty"`
	// +optional
	Secret *PolicySecret `json:"secret,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=LOG;ADD;DELETE;REPLACE
	Mismatch string `json:"mismatch,omitempty"`
}

// PortRuleKafka matches Kafka requests (Cilium 1.18 and older).
type PortRuleKafka struct {
	// +optional
	Role string `json:"role,omitempty"`
	// +optional
	APIKey string `json:"apiKey,omitempty"`
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// +optional
	ClientID string `json:"clientID,omitempty"`
	// +optional
	Topic string `json:"topic,omitempty"`
}

// PortRuleL7 is a generic L7 rule: key-value pairs for an l7proto parser.
type PortRuleL7 map[string]string

// FQDNSelector matches DNS names: exactly one of matchName and matchPattern.
type FQDNSelector struct {
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([-a-zA-Z0-9_]+[.]?)+$`
	MatchName string `json:"matchName,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([-a-zA-Z0-9_*]+[.]?)+$`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// ICMPRule lists ICMP types.
type ICMPRule struct {
	// +optional
	// +kubebuilder:validation:MaxItems=40
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is an ICMP type of a family, by number or name.
type ICMPField struct {
	// +optional
	// +kubebuilder:default=IPv4
	// +kubebuilder:validation:Enum=IPv4;IPv6
	Family string `json:"family,omitempty"`
	// Type is a number (0-255) or a name; hack/crdpatch adds the
	// pattern of the names, which controller-gen does not put on an
	// int-or-string.
	Type *intstr.IntOrString `json:"type"`
}

// Authentication asks for mutual authentication of the peers.
type Authentication struct {
	// +kubebuilder:validation:Enum=disabled;required;test-always-fail
	Mode string `json:"mode"`
}

// DefaultDenyConfig says per direction whether selecting an endpoint turns
// on default deny.
type DefaultDenyConfig struct {
	// +optional
	Ingress *bool `json:"ingress,omitempty"`
	// +optional
	Egress *bool `json:"egress,omitempty"`
}

// PolicyLogConfig is the rule's verdict log setting.
type PolicyLogConfig struct {
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^\PC*$`
	Value string `json:"value,omitempty"`
}

// PolicyLabel is a label of a rule.
type PolicyLabel struct {
	Key string `json:"key"`
	// +optional
	Value string `json:"value,omitempty"`
	// +optional
	Source string `json:"source,omitempty"`
}

// PolicyGroups are cloud provider groups.
type PolicyGroups struct {
	// +optional
	AWS *AWSGroup `json:"aws,omitempty"`
}

// AWSGroup selects AWS instances by labels, security group IDs or names.
type AWSGroup struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	SecurityGroupsIDs []string `json:"securityGroupsIds,omitempty"`
	// +optional
	SecurityGroupsNames []string `json:"securityGroupsNames,omitempty"`
	// +optional
	Region string `json:"region,omitempty"`
}

// PolicyService names Kubernetes Services, by name or by selector.
type PolicyService struct {
	// +optional
	K8sService *K8sServiceNamespace `json:"k8sService,omitempty"`
	// +optional
	K8sServiceSelector *K8sServiceSelectorNamespace `json:"k8sServiceSelector,omitempty"`
}

// K8sServiceNamespace is a Service by name.
type K8sServiceNamespace struct {
	// +optional
	ServiceName string `json:"serviceName,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// K8sServiceSelectorNamespace is Services by label selector.
type K8sServiceSelectorNamespace struct {
	Selector EndpointSelector `json:"selector"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// TLSContext is TLS material for a port rule, from a Secret.
type TLSContext struct {
	Secret *PolicySecret `json:"secret"`
	// +optional
	TrustedCA string `json:"trustedCA,omitempty"`
	// +optional
	Certificate string `json:"certificate,omitempty"`
	// +optional
	PrivateKey string `json:"privateKey,omitempty"`
}

// PolicySecret names a Secret.
type PolicySecret struct {
	Name string `json:"name"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// PolicyListener steers traffic to an Envoy listener of a
// CiliumEnvoyConfig.
type PolicyListener struct {
	EnvoyConfig *EnvoyConfigRef `json:"envoyConfig"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Priority int32 `json:"priority,omitempty"`
}

// EnvoyConfigRef names a CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig.
type EnvoyConfigRef struct {
	// +optional
	// +kubebuilder:validation:Enum=CiliumEnvoyConfig;CiliumClusterwideEnvoyConfig
	Kind string `json:"kind,omitempty"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

func init() {
	SchemeBuilder.Register(&CiliumNetworkPolicy{}, &CiliumNetworkPolicyList{},
		&CiliumClusterwideNetworkPolicy{}, &CiliumClusterwideNetworkPolicyList{})
}
