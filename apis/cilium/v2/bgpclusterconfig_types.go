package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types on a CiliumBGPClusterConfig. They carry the seed system's
// names and are always present: status False means the problem is absent.
const (
	// BGPClusterConditionNoMatchingNode is True when spec.nodeSelector selects
	// no node, so the config produces no CiliumBGPNodeConfig.
	BGPClusterConditionNoMatchingNode = "cilium.io/NoMatchingNode"
	// BGPClusterConditionMissingPeerConfigs is True when a peerConfigRef names
	// a CiliumBGPPeerConfig that does not exist; the message lists the names.
	BGPClusterConditionMissingPeerConfigs = "cilium.io/MissingPeerConfigs"
	// BGPClusterConditionConflicting is True when another, older config
	// already selects one of this config's nodes. This config is then not
	// applied to any node; the message names the other configs.
	BGPClusterConditionConflicting = "cilium.io/ConflictingClusterConfig"
)

// The only auto-discovery mode, and the address families it takes.
const (
	BGPAutoDiscoveryDefaultGateway = "DefaultGateway"
	BGPAddressFamilyIPv4           = "ipv4"
	BGPAddressFamilyIPv6           = "ipv6"
)

// The kind a peerConfigRef points to.
const (
	BGPPeerConfigGroup = "cilium.io"
	BGPPeerConfigKind  = "CiliumBGPPeerConfig"
)

// CiliumBGPClusterConfig runs BGP on the nodes it selects: each selected
// node gets the BGP instances and peers listed here. The BGP controller
// writes one CiliumBGPNodeConfig per selected node (named after the node)
// from this config and the node's CiliumBGPNodeConfigOverride; the node
// plugin peers from that.
//
// Two configs must not select the same node: the one created later is not
// applied (condition cilium.io/ConflictingClusterConfig). A node selected by
// a legacy CiliumBGPPeeringPolicy too follows the policy.
//
// BGP only advertises routes; it does not change how this cluster forwards
// packets, so do not rely on it for reachability inside the cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cbgpcluster,categories={cilium,ciliumbgp}
// +kubebuilder:printcolumn:name="Instances",type=string,JSONPath=`.spec.bgpInstances[*].name`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`,description="nodes this config is applied to"
// +kubebuilder:printcolumn:name="NoMatchingNode",type=string,JSONPath=`.status.conditions[?(@.type=="cilium.io/NoMatchingNode")].status`,priority=1
// +kubebuilder:printcolumn:name="MissingPeerConfigs",type=string,JSONPath=`.status.conditions[?(@.type=="cilium.io/MissingPeerConfigs")].status`
// +kubebuilder:printcolumn:name="Conflicting",type=string,JSONPath=`.status.conditions[?(@.type=="cilium.io/ConflictingClusterConfig")].status`
// +kubebuilder:printcolumn:name="Established",type=integer,JSONPath=`.status.peersEstablished`,description="sessions established, over all nodes"
// +kubebuilder:printcolumn:name="Peers",type=integer,JSONPath=`.status.peersTotal`,description="sessions configured, over all nodes"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumBGPClusterConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumBGPClusterConfigSpec `json:"spec"`
	// +optional
	Status CiliumBGPClusterConfigStatus `json:"status,omitempty"`
}

// CiliumBGPClusterConfigSpec selects nodes and lists the BGP instances they
// run.
type CiliumBGPClusterConfigSpec struct {
	// NodeSelector selects the nodes by label. Absent or empty selects every
	// node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// BGPInstances are the BGP speakers each selected node runs, each with
	// its own local AS and peers. Names are unique.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	BGPInstances []CiliumBGPInstance `json:"bgpInstances"`
}

// CiliumBGPInstance is one BGP speaker: a local AS, an optional listening
// port, and the peers it connects to.
type CiliumBGPInstance struct {
	// Name identifies the instance within the config. A
	// CiliumBGPNodeConfigOverride refers to the instance by this name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// LocalASN is the instance's own AS number; 4-byte ASNs are allowed. A
	// CiliumBGPNodeConfigOverride can change it for one node; with neither
	// set the node reports an error for the instance.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	LocalASN *int64 `json:"localASN,omitempty"`

	// LocalPort is the TCP port on which the instance accepts sessions that
	// peers open. Absent means the instance listens nowhere and only opens
	// sessions itself, so it can share the node with another BGP daemon.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	LocalPort *int32 `json:"localPort,omitempty"`

	// Peers are the routers the instance peers with. Names are unique within
	// the instance.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Peers []CiliumBGPPeer `json:"peers,omitempty"`
}

// CiliumBGPPeer is one router an instance peers with: a fixed address, or
// one found on the node (autoDiscovery), plus the shared session settings of
// a CiliumBGPPeerConfig.
//
// The seed system only checks "one of the two" on the node config; Plexus
// refuses both already here, where the user can fix it.
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) != has(self.autoDiscovery)",message="spec.bgpInstances[].peers[]: set exactly one of peerAddress and autoDiscovery"
type CiliumBGPPeer struct {
	// Name identifies the peer within the instance. A
	// CiliumBGPNodeConfigOverride refers to the peer by this name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name"`

	// PeerAddress is the peer's IPv4 or IPv6 address: a single address, not
	// a prefix.
	// +optional
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="spec.bgpInstances[].peers[].peerAddress must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00:10::1, not a CIDR"
	PeerAddress *string `json:"peerAddress,omitempty"`

	// PeerASN is the peer's AS number. Equal to the local AS gives an iBGP
	// session, different an eBGP one. 0 accepts whatever AS the peer
	// announces in its OPEN message.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	PeerASN *int64 `json:"peerASN,omitempty"`

	// AutoDiscovery finds the peer's address on the node instead of
	// peerAddress.
	// +optional
	AutoDiscovery *BGPAutoDiscovery `json:"autoDiscovery,omitempty"`

	// PeerConfigRef names the CiliumBGPPeerConfig with the session settings
	// (timers, authentication, families and what to advertise). Absent means
	// default settings, which advertise nothing.
	// +optional
	PeerConfigRef *PeerConfigReference `json:"peerConfigRef,omitempty"`
}

// BGPAutoDiscovery finds a peer's address on the node.
// +kubebuilder:validation:XValidation:rule="self.mode != 'DefaultGateway' || has(self.defaultGateway)",message="spec.bgpInstances[].peers[].autoDiscovery.defaultGateway (with addressFamily) is required when mode is DefaultGateway"
type BGPAutoDiscovery struct {
	// Mode is how the address is found. DefaultGateway peers with the node's
	// default gateway of one address family; with several default routes,
	// the one of lowest metric, moving to another when it goes away. There
	// is one such session per family, and a link-local gateway is not used.
	// The routers must accept sessions from the node's subnet (dynamic
	// neighbours) with one AS for all of them.
	// +kubebuilder:validation:Enum=DefaultGateway
	Mode string `json:"mode"`

	// DefaultGateway configures mode DefaultGateway.
	// +optional
	DefaultGateway *DefaultGateway `json:"defaultGateway,omitempty"`
}

// DefaultGateway picks the address family whose default gateway becomes the
// peer.
type DefaultGateway struct {
	// AddressFamily is ipv4 or ipv6.
	// +kubebuilder:validation:Enum=ipv4;ipv6
	AddressFamily string `json:"addressFamily"`
}

// PeerConfigReference names a CiliumBGPPeerConfig.
type PeerConfigReference struct {
	// Name is the CiliumBGPPeerConfig's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Group is the API group of the referent; only cilium.io.
	// +optional
	// +kubebuilder:default="cilium.io"
	// +kubebuilder:validation:Enum=cilium.io
	Group string `json:"group,omitempty"`

	// Kind is the kind of the referent; only CiliumBGPPeerConfig.
	// +optional
	// +kubebuilder:default="CiliumBGPPeerConfig"
	// +kubebuilder:validation:Enum=CiliumBGPPeerConfig
	Kind string `json:"kind,omitempty"`
}

// CiliumBGPClusterConfigStatus says whether the config is applied and why
// not.
type CiliumBGPClusterConfigStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Nodes is the number of nodes the config is applied to, i.e. of
	// CiliumBGPNodeConfigs written from it (a Plexus addition).
	// +optional
	Nodes int32 `json:"nodes,omitempty"`

	// PeersTotal is the number of BGP sessions the config asks for: its
	// peers on every node it is applied to (a Plexus addition).
	// +optional
	PeersTotal int32 `json:"peersTotal,omitempty"`

	// PeersEstablished is how many of them the nodes report established in
	// their CiliumBGPNodeConfig status (a Plexus addition).
	// +optional
	PeersEstablished int32 `json:"peersEstablished,omitempty"`

	// Conditions: cilium.io/NoMatchingNode, cilium.io/MissingPeerConfigs and
	// cilium.io/ConflictingClusterConfig, always present (False when the
	// problem is absent), and Ready (a Plexus addition): True when the
	// config is applied without problems and every session is established;
	// otherwise the reason and message say what is wrong, e.g. which
	// node's sessions are down, or that nodes have not reported yet (they
	// never do with status reporting turned off).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumBGPClusterConfigList is a list of CiliumBGPClusterConfigs.
//
// +kubebuilder:object:root=true
type CiliumBGPClusterConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumBGPClusterConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumBGPClusterConfig{}, &CiliumBGPClusterConfigList{})
}
