package v2alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumBGPPeeringPolicy is the legacy, single-object BGP configuration: the
// nodes it selects run the virtual routers listed here. It is superseded by
// CiliumBGPClusterConfig and friends (cilium.io/v2); do not use both for one
// node; if both select a node, this policy wins there.
//
// At most one policy may select a node. When several do, the node drops all
// its BGP sessions until only one does, so adding a second, overlapping
// policy breaks connectivity at once.
//
// Per node, the annotation cilium.io/bgp-virtual-router.<localASN> with
// "router-id=<IPv4>,local-port=<port>" (the last of a repeated key wins)
// sets a virtual router's router ID (required on IPv6-only nodes) and a port
// to accept sessions on (none by default).
//
// +kubebuilder:object:root=true
// +kubebuilder:deprecatedversion:warning="cilium.io/v2alpha1 CiliumBGPPeeringPolicy is deprecated; use cilium.io/v2 CRDs (CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement, CiliumBGPNodeConfigOverride) to configure BGP"
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories={cilium,ciliumbgp}
// +kubebuilder:printcolumn:name="LocalASNs",type=string,JSONPath=`.spec.virtualRouters[*].localASN`
// +kubebuilder:printcolumn:name="Neighbors",type=string,JSONPath=`.spec.virtualRouters[*].neighbors[*].peerAddress`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumBGPPeeringPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumBGPPeeringPolicySpec `json:"spec"`
}

// CiliumBGPPeeringPolicySpec selects nodes and lists their virtual routers.
type CiliumBGPPeeringPolicySpec struct {
	// NodeSelector selects the nodes by label; absent selects every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// VirtualRouters are the BGP speakers each selected node runs. A virtual
	// router is identified by its local AS number, so those are unique.
	//
	// The seed system sets no limits on this policy's lists. Plexus caps them
	// (4 routers, 32 neighbors each, 8 attribute sets each, 16 communities
	// of each kind) because the API server bounds the total cost of the
	// community checks, which grows with the product of these caps.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +listType=map
	// +listMapKey=localASN
	VirtualRouters []CiliumBGPVirtualRouter `json:"virtualRouters"`
}

// CiliumBGPVirtualRouter is one BGP speaker: its AS, what it advertises and
// its neighbors.
type CiliumBGPVirtualRouter struct {
	// LocalASN is the router's AS number; 4-byte ASNs are allowed.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalASN int64 `json:"localASN"`

	// ExportPodCIDR advertises the pod CIDRs allocated to the node itself
	// (kubernetes and cluster-pool IPAM; nothing with other modes).
	// +optional
	// +kubebuilder:default=false
	ExportPodCIDR *bool `json:"exportPodCIDR,omitempty"`

	// PodIPPoolSelector selects CiliumPodIPPools (multi-pool IPAM) by label,
	// or by the keys io.cilium.podippool.namespace and
	// io.cilium.podippool.name; the CIDRs they allocated to the node are
	// advertised. Absent advertises no pool.
	// +optional
	PodIPPoolSelector *metav1.LabelSelector `json:"podIPPoolSelector,omitempty"`

	// ServiceSelector selects Services by label, or by the keys
	// io.kubernetes.service.namespace and io.kubernetes.service.name; their
	// addresses of the kinds in serviceAdvertisements are advertised as host
	// routes. Absent advertises no Service. To select all, use an
	// expression that always holds, such as {key: somekey, operator: NotIn,
	// values: [never-used-value]}. Only Services whose loadBalancerClass is
	// unset or io.cilium/bgp-control-plane are advertised.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`

	// ServiceAdvertisements are the Service address kinds to advertise:
	// LoadBalancerIP, ClusterIP, ExternalIP. With externalTrafficPolicy
	// Local (internalTrafficPolicy Local for ClusterIP) an address is only
	// advertised from nodes with a ready local endpoint.
	// +optional
	// +kubebuilder:default={LoadBalancerIP}
	// +kubebuilder:validation:MaxItems=3
	// +listType=set
	ServiceAdvertisements []BGPServiceAddressType `json:"serviceAdvertisements,omitempty"`

	// Neighbors are the router's peers. A neighbor is identified by its
	// address and AS, so those pairs are unique.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=peerAddress
	// +listMapKey=peerASN
	Neighbors []CiliumBGPNeighbor `json:"neighbors"`
}

// BGPServiceAddressType is which address of a Service is advertised.
// +kubebuilder:validation:Enum=LoadBalancerIP;ClusterIP;ExternalIP
type BGPServiceAddressType string

// The Service addresses a legacy policy can advertise.
const (
	BGPLoadBalancerIPAddr BGPServiceAddressType = "LoadBalancerIP"
	BGPClusterIPAddr      BGPServiceAddressType = "ClusterIP"
	BGPExternalIPAddr     BGPServiceAddressType = "ExternalIP"
)

// CiliumBGPNeighbor is one peer of a virtual router and its session
// settings. Changing them may reset the session; graceful restart avoids
// losing traffic meanwhile.
// +kubebuilder:validation:XValidation:rule="!has(self.holdTimeSeconds) || !has(self.keepAliveTimeSeconds) || self.keepAliveTimeSeconds <= self.holdTimeSeconds",message="spec.virtualRouters[].neighbors[].keepAliveTimeSeconds must not exceed holdTimeSeconds (default 90)"
type CiliumBGPNeighbor struct {
	// PeerAddress is the peer's address as a host prefix: /32 for IPv4,
	// /128 for IPv6, e.g. 10.0.0.1/32. (Plexus refuses shorter prefixes,
	// which the seed system accepts and reads as the address alone.)
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self).prefixLength() == (cidr(self).ip().family() == 4 ? 32 : 128)",message="spec.virtualRouters[].neighbors[].peerAddress must be a host prefix such as 10.0.0.1/32 or fd00:10::1/128"
	PeerAddress string `json:"peerAddress"`

	// PeerASN is the peer's AS number. Equal to the local AS gives iBGP,
	// different eBGP.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	PeerASN int64 `json:"peerASN"`

	// PeerPort is the TCP port the node connects to on the peer.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort *int32 `json:"peerPort,omitempty"`

	// AuthSecretRef names a Secret in the BGP secrets namespace whose key
	// "password" is the TCP MD5 password, as in CiliumBGPPeerConfig.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.virtualRouters[].neighbors[].authSecretRef must be a Secret name: lower-case letters, digits, '-' and '.'"
	AuthSecretRef *string `json:"authSecretRef,omitempty"`

	// EBGPMultihopTTL is the IP TTL of the session's packets to an eBGP
	// peer; 1 means directly connected. Ignored for iBGP.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	EBGPMultihopTTL *int32 `json:"eBGPMultihopTTL,omitempty"`

	// ConnectRetryTimeSeconds is the wait between attempts to open the
	// session, each drawn from [T, 2T).
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	ConnectRetryTimeSeconds *int32 `json:"connectRetryTimeSeconds,omitempty"`

	// HoldTimeSeconds is how long the session stays up without hearing from
	// the peer. Changing it resets the session.
	// +optional
	// +kubebuilder:default=90
	// +kubebuilder:validation:Minimum=3
	// +kubebuilder:validation:Maximum=65535
	HoldTimeSeconds *int32 `json:"holdTimeSeconds,omitempty"`

	// KeepAliveTimeSeconds is the keepalive interval, at most the hold time.
	// Changing it resets the session.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	KeepAliveTimeSeconds *int32 `json:"keepAliveTimeSeconds,omitempty"`

	// GracefulRestart lets the peer keep the node's routes while the BGP
	// agent restarts; absent means disabled.
	// +optional
	GracefulRestart *CiliumBGPNeighborGracefulRestart `json:"gracefulRestart,omitempty"`

	// Families are the address families negotiated with the peer; absent
	// means IPv4 and IPv6 unicast. With graceful restart they are also the
	// families it covers.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +listType=map
	// +listMapKey=afi
	// +listMapKey=safi
	Families []CiliumBGPFamily `json:"families,omitempty"`

	// AdvertisedPathAttributes add path attributes to some of the routes
	// advertised to this peer.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	AdvertisedPathAttributes []CiliumBGPPathAttributes `json:"advertisedPathAttributes,omitempty"`
}

// CiliumBGPNeighborGracefulRestart is the graceful restart capability (RFC
// 4724).
type CiliumBGPNeighborGracefulRestart struct {
	// Enabled announces the capability.
	Enabled bool `json:"enabled"`

	// RestartTimeSeconds is how long the peer keeps the node's routes after
	// the session drops; longer than the agent takes to restart.
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4095
	RestartTimeSeconds *int32 `json:"restartTimeSeconds,omitempty"`
}

// CiliumBGPFamily is an address family; only IPv4 and IPv6 unicast are
// supported.
type CiliumBGPFamily struct {
	// Afi is ipv4 or ipv6.
	// +kubebuilder:validation:Enum=ipv4;ipv6
	Afi string `json:"afi"`
	// Safi is unicast.
	// +kubebuilder:validation:Enum=unicast
	Safi string `json:"safi"`
}

// CiliumBGPPathAttributes adds path attributes to the routes of the objects
// it selects.
type CiliumBGPPathAttributes struct {
	// SelectorType is the kind of object the selector picks: PodCIDR
	// (CiliumNodes; their pod CIDR routes), CiliumLoadBalancerIPPool (LB
	// pools; routes of Service addresses from those pools) or
	// CiliumPodIPPool (pod pools; their CIDR routes).
	// +kubebuilder:validation:Enum=PodCIDR;CiliumLoadBalancerIPPool;CiliumPodIPPool
	SelectorType string `json:"selectorType"`

	// Selector selects the objects by label; absent selects all objects of
	// the type.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// Communities are added to the routes.
	// +optional
	Communities *BGPCommunities `json:"communities,omitempty"`

	// LocalPreference is the LOCAL_PREF sent to iBGP peers (never to eBGP
	// peers). Absent sends 100 to iBGP peers.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalPreference *int64 `json:"localPreference,omitempty"`
}

// BGPCommunities are the communities of the three kinds.
type BGPCommunities struct {
	// Standard are RFC 1997 communities: a 32-bit number or "AS:value" with
	// two 16-bit numbers, e.g. "64512:100".
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Standard []BGPStandardCommunity `json:"standard,omitempty"`

	// WellKnown are RFC 1997 communities by name, e.g. no-export
	// (65535:65281); the names are those of CiliumBGPAdvertisement.
	// +optional
	// +kubebuilder:validation:MaxItems=14
	// +listType=atomic
	WellKnown []BGPWellKnownCommunity `json:"wellKnown,omitempty"`

	// Large are RFC 8092 large communities "global:local1:local2" of three
	// 32-bit numbers, e.g. "64512:100:50".
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Large []BGPLargeCommunity `json:"large,omitempty"`
}

// BGPStandardCommunity is "N" (0..4294967295) or "A:B" (each 0..65535), in
// decimal without leading zeros.
// +kubebuilder:validation:MaxLength=11
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,9})$') ? int(self) <= 4294967295 : (self.matches('^(0|[1-9][0-9]{0,4}):(0|[1-9][0-9]{0,4})$') && int(self.substring(0, self.indexOf(':'))) <= 65535 && int(self.substring(self.indexOf(':') + 1)) <= 65535)",message="spec.virtualRouters[].neighbors[].advertisedPathAttributes[].communities.standard[] must be a 32-bit number or two 16-bit numbers AS:value, such as 64512:100"
type BGPStandardCommunity string

// BGPWellKnownCommunity is a standard community given by its name.
// +kubebuilder:validation:Enum=internet;planned-shut;accept-own;route-filter-translated-v4;route-filter-v4;route-filter-translated-v6;route-filter-v6;llgr-stale;no-llgr;blackhole;no-export;no-advertise;no-export-subconfed;no-peer
type BGPWellKnownCommunity string

// BGPLargeCommunity is "A:B:C", each 0..4294967295, in decimal without
// leading zeros.
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$') && int(self.substring(0, self.indexOf(':'))) <= 4294967295 && int(self.substring(self.indexOf(':') + 1, self.lastIndexOf(':'))) <= 4294967295 && int(self.substring(self.lastIndexOf(':') + 1)) <= 4294967295",message="spec.virtualRouters[].neighbors[].advertisedPathAttributes[].communities.large[] must be three 32-bit numbers global:local1:local2, such as 64512:100:50"
type BGPLargeCommunity string

// CiliumBGPPeeringPolicyList is a list of CiliumBGPPeeringPolicies.
//
// +kubebuilder:object:root=true
type CiliumBGPPeeringPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumBGPPeeringPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumBGPPeeringPolicy{}, &CiliumBGPPeeringPolicyList{})
}
