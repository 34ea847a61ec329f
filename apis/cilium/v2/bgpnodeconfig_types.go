package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types on a CiliumBGPNodeConfig.
const (
	// BGPNodeConditionReconcileError is True when the node could not apply
	// the config (the seed system's name); the message says why.
	BGPNodeConditionReconcileError = "cilium.io/BGPReconcileError"
	// BGPNodeConditionReady is True when the node applied the config and
	// every peer's session is established (a Plexus addition).
	BGPNodeConditionReady = "Ready"
)

// BGPPeeringState is the state of a session in the BGP finite state machine
// (RFC 4271, section 8), as the speaker reports it.
// +kubebuilder:validation:Enum=unknown;idle;connect;active;opensent;openconfirm;established
type BGPPeeringState string

// The states of a BGP session (RFC 4271, section 8), as status reports them.
const (
	BGPPeeringStateUnknown     BGPPeeringState = "unknown"
	BGPPeeringStateIdle        BGPPeeringState = "idle"
	BGPPeeringStateConnect     BGPPeeringState = "connect"
	BGPPeeringStateActive      BGPPeeringState = "active"
	BGPPeeringStateOpenSent    BGPPeeringState = "opensent"
	BGPPeeringStateOpenConfirm BGPPeeringState = "openconfirm"
	BGPPeeringStateEstablished BGPPeeringState = "established"
)

// CiliumBGPNodeConfig is the BGP configuration of one node, named after the
// node, and the node's report on its sessions. The BGP controller writes the
// spec from the CiliumBGPClusterConfig that selects the node merged with the
// node's CiliumBGPNodeConfigOverride, and owns it: edit those instead, since
// the controller overwrites changes here. The node's BGP agent writes the
// status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cbgpnode,categories={cilium,ciliumbgp}
// +kubebuilder:printcolumn:name="Instances",type=string,JSONPath=`.spec.bgpInstances[*].name`
// +kubebuilder:printcolumn:name="LocalASNs",type=string,JSONPath=`.spec.bgpInstances[*].localASN`,priority=1
// +kubebuilder:printcolumn:name="RouterIDs",type=string,JSONPath=`.status.bgpInstances[*].routerID`,priority=1
// +kubebuilder:printcolumn:name="Established",type=integer,JSONPath=`.status.peersEstablished`,description="peers whose session is established"
// +kubebuilder:printcolumn:name="Peers",type=integer,JSONPath=`.status.peersTotal`,description="peers configured on the node"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumBGPNodeConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumBGPNodeSpec `json:"spec"`
	// +optional
	Status CiliumBGPNodeStatus `json:"status,omitempty"`
}

// CiliumBGPNodeSpec is the node's BGP instances.
type CiliumBGPNodeSpec struct {
	// BGPInstances are the BGP speakers the node runs. Names are unique.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	BGPInstances []CiliumBGPNodeInstance `json:"bgpInstances"`
}

// CiliumBGPNodeInstance is one BGP speaker on the node.
type CiliumBGPNodeInstance struct {
	// Name is the instance's name in the cluster config.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// LocalASN is the instance's AS number, from the override if it has one.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	LocalASN *int64 `json:"localASN,omitempty"`

	// RouterID is the BGP identifier from the override; absent lets the node
	// pick one (see CiliumBGPNodeConfigOverride).
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="spec.bgpInstances[].routerID must be an IPv4 address such as 192.168.10.1"
	RouterID *string `json:"routerID,omitempty"`

	// LocalPort is the TCP port the instance accepts sessions on; absent
	// means it listens nowhere.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	LocalPort *int32 `json:"localPort,omitempty"`

	// Peers are the instance's peers. Names are unique within the instance.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Peers []CiliumBGPNodePeer `json:"peers,omitempty"`
}

// CiliumBGPNodePeer is one peer of an instance on the node.
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) != has(self.autoDiscovery)",message="spec.bgpInstances[].peers[]: set exactly one of peerAddress and autoDiscovery"
type CiliumBGPNodePeer struct {
	// Name is the peer's name in the instance.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// PeerAddress is the peer's address.
	// +optional
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="spec.bgpInstances[].peers[].peerAddress must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00:10::1, not a CIDR"
	PeerAddress *string `json:"peerAddress,omitempty"`

	// PeerASN is the peer's AS number; 0 accepts any.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	PeerASN *int64 `json:"peerASN,omitempty"`

	// AutoDiscovery finds the peer's address on the node.
	// +optional
	AutoDiscovery *BGPAutoDiscovery `json:"autoDiscovery,omitempty"`

	// LocalAddress is the session's source address, from the override.
	// +optional
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="spec.bgpInstances[].peers[].localAddress must be an IPv4 or IPv6 address"
	LocalAddress *string `json:"localAddress,omitempty"`

	// PeerConfigRef names the CiliumBGPPeerConfig with the session
	// settings.
	// +optional
	PeerConfigRef *PeerConfigReference `json:"peerConfigRef,omitempty"`
}

// CiliumBGPNodeStatus is what the node's speaker reports. It is empty when
// status reporting is turned off (recommended in large clusters, to spare
// the API server the writes).
type CiliumBGPNodeStatus struct {
	// ObservedGeneration is the generation of the spec the node applied.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// PeersTotal is the number of peers over all instances (a Plexus
	// addition, for kubectl get).
	// +optional
	PeersTotal int32 `json:"peersTotal,omitempty"`

	// PeersEstablished is how many of them have an established session (a
	// Plexus addition, for kubectl get).
	// +optional
	PeersEstablished int32 `json:"peersEstablished,omitempty"`

	// BGPInstances is the state of each instance.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	BGPInstances []CiliumBGPNodeInstanceStatus `json:"bgpInstances,omitempty"`

	// Conditions: cilium.io/BGPReconcileError and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumBGPNodeInstanceStatus is the state of one instance.
type CiliumBGPNodeInstanceStatus struct {
	// Name is the instance's name.
	Name string `json:"name"`

	// LocalASN is the AS number the instance runs with.
	// +optional
	LocalASN *int64 `json:"localASN,omitempty"`

	// RouterID is the BGP identifier the instance runs with, configured or
	// picked by the node (a Plexus addition).
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// Peers is the state of each peer's session.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Peers []CiliumBGPNodePeerStatus `json:"peers,omitempty"`

	// Routes are the routes the instance originates (its local RIB, what
	// `kubectl plexus bgp routes available` prints), in prefix order. Only
	// the first --status-route-limit are listed, so that the object stays
	// small; RoutesTotal counts them all (a Plexus addition).
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	Routes []BGPRoute `json:"routes,omitempty"`

	// RoutesTotal is how many routes the local RIB holds, listed or not.
	// +optional
	RoutesTotal int32 `json:"routesTotal,omitempty"`
}

// BGPRoute is one route with the path attributes it is sent with.
type BGPRoute struct {
	CiliumBGPFamily `json:",inline"`

	// Prefix is the route's destination in CIDR notation.
	Prefix string `json:"prefix"`

	// NextHop is the next hop the route carries; for an advertised route,
	// the one the peer receives.
	// +optional
	NextHop string `json:"nextHop,omitempty"`

	// Communities are the standard communities ("65000:99"; well-known ones
	// by their numeric value).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Communities []string `json:"communities,omitempty"`

	// LargeCommunities are the large communities ("64512:100:50").
	// +optional
	// +kubebuilder:validation:MaxItems=64
	LargeCommunities []string `json:"largeCommunities,omitempty"`

	// LocalPreference is sent to iBGP peers only.
	// +optional
	LocalPreference *int64 `json:"localPreference,omitempty"`
}

// CiliumBGPNodePeerStatus is the state of the session with one peer.
type CiliumBGPNodePeerStatus struct {
	// Name is the peer's name.
	Name string `json:"name"`

	// PeerAddress is the address the session is with; for an auto-discovered
	// peer, the one found (absent while none is).
	// +optional
	PeerAddress string `json:"peerAddress,omitempty"`

	// PeerASN is the peer's AS number, as it announced it.
	// +optional
	PeerASN *int64 `json:"peerASN,omitempty"`

	// PeeringState is the session's state; only established exchanges
	// routes.
	// +optional
	PeeringState BGPPeeringState `json:"peeringState,omitempty"`

	// EstablishedTime is when the session last became established (RFC 3339,
	// UTC); the uptime is the time since. Absent while not established. The
	// uptime itself is not stored, so that the status does not change every
	// second.
	// +optional
	EstablishedTime *metav1.Time `json:"establishedTime,omitempty"`

	// Timers are the timers the session negotiated.
	// +optional
	Timers *CiliumBGPTimersState `json:"timers,omitempty"`

	// RouteCount is the number of routes received from and advertised to
	// the peer, per address family.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +listType=map
	// +listMapKey=afi
	// +listMapKey=safi
	RouteCount []BGPFamilyRouteCount `json:"routeCount,omitempty"`

	// LastError is the most recent reason the session failed or was
	// refused: a NOTIFICATION sent or received, or a connection error (a
	// Plexus addition). Kept after the session recovers, until the next
	// error.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`

	// AdvertisedRoutes are the routes sent to this peer (its Adj-RIB-Out),
	// in prefix order, limited like the instance's Routes; RouteCount has
	// the full count (a Plexus addition).
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	AdvertisedRoutes []BGPRoute `json:"advertisedRoutes,omitempty"`
}

// CiliumBGPTimersState is what a session negotiated: the smaller hold time
// of the two sides, and the keepalive interval derived from it.
type CiliumBGPTimersState struct {
	// AppliedHoldTimeSeconds is the negotiated hold time.
	// +optional
	AppliedHoldTimeSeconds *int32 `json:"appliedHoldTimeSeconds,omitempty"`

	// AppliedKeepaliveSeconds is the keepalive interval in use.
	// +optional
	AppliedKeepaliveSeconds *int32 `json:"appliedKeepaliveSeconds,omitempty"`
}

// BGPFamilyRouteCount is the number of routes of one family exchanged with
// a peer.
type BGPFamilyRouteCount struct {
	CiliumBGPFamily `json:",inline"`

	// Received is the number of routes the peer sent.
	// +optional
	Received int32 `json:"received"`

	// Advertised is the number of routes sent to the peer.
	// +optional
	Advertised int32 `json:"advertised"`
}

// CiliumBGPNodeConfigList is a list of CiliumBGPNodeConfigs.
//
// +kubebuilder:object:root=true
type CiliumBGPNodeConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumBGPNodeConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumBGPNodeConfig{}, &CiliumBGPNodeConfigList{})
}
