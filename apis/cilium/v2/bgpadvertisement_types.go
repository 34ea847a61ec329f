package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPLoadBalancerClass is the Service loadBalancerClass that BGP advertises
// besides an unset class; Services of any other class are not advertised.
const BGPLoadBalancerClass = "io.cilium/bgp-control-plane"

// BGPAdvertisementType is what kind of routes an advertisement makes.
// +kubebuilder:validation:Enum=PodCIDR;CiliumPodIPPool;Service;Interface
type BGPAdvertisementType string

const (
	// BGPPodCIDRAdvert advertises the pod CIDRs allocated to the node itself
	// (not the cluster's whole range). Only kubernetes and cluster-pool IPAM
	// give nodes such CIDRs; with other IPAM modes it advertises nothing.
	BGPPodCIDRAdvert BGPAdvertisementType = "PodCIDR"
	// BGPCiliumPodIPPoolAdvert advertises the CIDRs that the selected
	// CiliumPodIPPools (multi-pool IPAM) allocated to the node.
	BGPCiliumPodIPPoolAdvert BGPAdvertisementType = "CiliumPodIPPool"
	// BGPServiceAdvert advertises addresses of the selected Services.
	BGPServiceAdvert BGPAdvertisementType = "Service"
	// BGPInterfaceAdvert advertises the addresses of a local interface of
	// each node, as host routes (Cilium 1.19).
	BGPInterfaceAdvert BGPAdvertisementType = "Interface"
)

// BGPServiceAddressType is which address of a Service is advertised.
// +kubebuilder:validation:Enum=LoadBalancerIP;ClusterIP;ExternalIP
type BGPServiceAddressType string

const (
	// BGPLoadBalancerIPAddr advertises status.loadBalancer.ingress[].ip,
	// which an allocator such as LB-IPAM fills in, of Services whose
	// loadBalancerClass is unset or io.cilium/bgp-control-plane.
	BGPLoadBalancerIPAddr BGPServiceAddressType = "LoadBalancerIP"
	// BGPClusterIPAddr advertises spec.clusterIPs (never "None"). Reaching
	// them from outside needs external access to ClusterIPs enabled in the
	// datapath.
	BGPClusterIPAddr BGPServiceAddressType = "ClusterIP"
	// BGPExternalIPAddr advertises spec.externalIPs.
	BGPExternalIPAddr BGPServiceAddressType = "ExternalIP"
)

// CiliumBGPAdvertisement says which routes to advertise and which path
// attributes to give them. It does nothing by itself: a CiliumBGPPeerConfig
// family selects it by its labels, and its routes go to the peers using that
// config.
//
// Several advertisements may match the same route: the route then carries
// the union of their communities and the highest local preference.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cbgpadvert,categories={cilium,ciliumbgp}
// +kubebuilder:printcolumn:name="Types",type=string,JSONPath=`.spec.advertisements[*].advertisementType`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumBGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumBGPAdvertisementSpec `json:"spec"`
}

// CiliumBGPAdvertisementSpec lists the advertisements.
type CiliumBGPAdvertisementSpec struct {
	// Advertisements are the route sources with their attributes.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Advertisements []BGPAdvertisement `json:"advertisements"`
}

// BGPAdvertisement is one source of routes and the attributes they get.
//
// Plexus refuses fields that the type ignores (service on a non-Service
// type, selector on PodCIDR), which the seed system accepts silently.
// +kubebuilder:validation:XValidation:rule="self.advertisementType != 'Service' || has(self.service)",message="spec.advertisements[].service (with addresses) is required when advertisementType is Service"
// +kubebuilder:validation:XValidation:rule="self.advertisementType == 'Service' || !has(self.service)",message="spec.advertisements[].service is only for advertisementType Service"
// +kubebuilder:validation:XValidation:rule="self.advertisementType != 'PodCIDR' || !has(self.selector)",message="spec.advertisements[].selector does not apply to advertisementType PodCIDR: each node advertises its own pod CIDRs"
// +kubebuilder:validation:XValidation:rule="self.advertisementType != 'Interface' || has(self.interface)",message="spec.advertisements[].interface (with name) is required when advertisementType is Interface"
// +kubebuilder:validation:XValidation:rule="self.advertisementType == 'Interface' || !has(self.interface)",message="spec.advertisements[].interface is only for advertisementType Interface"
type BGPAdvertisement struct {
	// AdvertisementType is PodCIDR, CiliumPodIPPool, Service or Interface.
	AdvertisementType BGPAdvertisementType `json:"advertisementType"`

	// Interface names the local interface whose addresses are advertised;
	// required for type Interface.
	// +optional
	Interface *BGPInterfaceOptions `json:"interface,omitempty"`

	// Service chooses which Service addresses to advertise and how to
	// aggregate them; required for type Service.
	// +optional
	Service *BGPServiceOptions `json:"service,omitempty"`

	// Selector selects the CiliumPodIPPools or Services to advertise, by
	// label. It also matches the keys io.cilium.podippool.namespace and
	// io.cilium.podippool.name (pools) or io.kubernetes.service.namespace
	// and io.kubernetes.service.name (Services). Absent selects nothing; to
	// select everything use an expression that always holds, such as
	// {key: somekey, operator: NotIn, values: [never-used-value]}.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// Attributes are path attributes added to the advertised routes.
	// +optional
	Attributes *BGPAttributes `json:"attributes,omitempty"`
}

// BGPInterfaceOptions names the interface of an Interface advertisement.
type BGPInterfaceOptions struct {
	// Name is the local interface, on each node, whose addresses are
	// advertised, each as a host route (/32 or /128): global unicast
	// addresses, and IPv4 link-local ones, of an interface that is up. A
	// node without it, or with it down, advertises nothing for this entry
	// and says so in its CiliumBGPNodeConfig status.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	Name string `json:"name"`
}

// BGPServiceOptions chooses the Service addresses to advertise.
//
// Each address is advertised as a host route (/32 or /128) from every
// selected node, unless the Service has externalTrafficPolicy Local
// (internalTrafficPolicy Local for ClusterIP): then only from nodes with a
// ready local endpoint.
type BGPServiceOptions struct {
	// Addresses are the address kinds to advertise.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	// +listType=set
	Addresses []BGPServiceAddressType `json:"addresses"`

	// AggregationLengthIPv4 advertises IPv4 addresses as the prefix of this
	// length that contains them (RFC 4632) instead of host routes. Not used
	// for Services with externalTrafficPolicy Local.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31
	AggregationLengthIPv4 *int32 `json:"aggregationLengthIPv4,omitempty"`

	// AggregationLengthIPv6 is the same for IPv6 addresses.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=127
	AggregationLengthIPv6 *int32 `json:"aggregationLengthIPv6,omitempty"`
}

// BGPAttributes are path attributes added to routes.
type BGPAttributes struct {
	// Communities are BGP communities added to the routes.
	// +optional
	Communities *BGPCommunities `json:"communities,omitempty"`

	// LocalPreference is the LOCAL_PREF attribute. It is sent to iBGP peers
	// only; eBGP peers never see it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalPreference *int64 `json:"localPreference,omitempty"`
}

// BGPCommunities are the communities of the three kinds.
type BGPCommunities struct {
	// Standard are RFC 1997 communities, each a 32-bit number or two 16-bit
	// numbers "AS:value", e.g. "64512:100".
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Standard []BGPStandardCommunity `json:"standard,omitempty"`

	// WellKnown are RFC 1997 communities given by name: internet (0:0),
	// planned-shut (65535:0), accept-own (65535:1),
	// route-filter-translated-v4 (65535:2), route-filter-v4 (65535:3),
	// route-filter-translated-v6 (65535:4), route-filter-v6 (65535:5),
	// llgr-stale (65535:6), no-llgr (65535:7), blackhole (65535:666),
	// no-export (65535:65281), no-advertise (65535:65282),
	// no-export-subconfed (65535:65283), no-peer (65535:65284).
	// +optional
	// +kubebuilder:validation:MaxItems=14
	// +listType=atomic
	WellKnown []BGPWellKnownCommunity `json:"wellKnown,omitempty"`

	// Large are RFC 8092 large communities, three 32-bit numbers
	// "global:local1:local2", e.g. "64512:100:50".
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Large []BGPLargeCommunity `json:"large,omitempty"`
}

// BGPStandardCommunity is "N" (0..4294967295) or "A:B" (each 0..65535), in
// decimal without leading zeros.
// +kubebuilder:validation:MaxLength=11
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,9})$') ? int(self) <= 4294967295 : (self.matches('^(0|[1-9][0-9]{0,4}):(0|[1-9][0-9]{0,4})$') && int(self.substring(0, self.indexOf(':'))) <= 65535 && int(self.substring(self.indexOf(':') + 1)) <= 65535)",message="spec.advertisements[].attributes.communities.standard[] must be a 32-bit number or two 16-bit numbers AS:value, such as 64512:100"
type BGPStandardCommunity string

// BGPWellKnownCommunity is a standard community given by its name.
// +kubebuilder:validation:Enum=internet;planned-shut;accept-own;route-filter-translated-v4;route-filter-v4;route-filter-translated-v6;route-filter-v6;llgr-stale;no-llgr;blackhole;no-export;no-advertise;no-export-subconfed;no-peer
type BGPWellKnownCommunity string

// BGPLargeCommunity is "A:B:C", each 0..4294967295, in decimal without
// leading zeros.
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$') && int(self.substring(0, self.indexOf(':'))) <= 4294967295 && int(self.substring(self.indexOf(':') + 1, self.lastIndexOf(':'))) <= 4294967295 && int(self.substring(self.lastIndexOf(':') + 1)) <= 4294967295",message="spec.advertisements[].attributes.communities.large[] must be three 32-bit numbers global:local1:local2, such as 64512:100:50"
type BGPLargeCommunity string

// CiliumBGPAdvertisementList is a list of CiliumBGPAdvertisements.
//
// +kubebuilder:object:root=true
type CiliumBGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumBGPAdvertisement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumBGPAdvertisement{}, &CiliumBGPAdvertisementList{})
}
