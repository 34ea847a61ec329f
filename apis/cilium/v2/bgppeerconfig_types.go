package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types on a CiliumBGPPeerConfig.
const (
	// BGPPeerConditionMissingAuthSecret is True when spec.authSecretRef names
	// a Secret that does not exist in the BGP secrets namespace. Sessions
	// then use an empty password (and so fail against a peer that wants
	// one).
	BGPPeerConditionMissingAuthSecret = "cilium.io/MissingAuthSecret"
)

// Defaults of the session settings, as the API server fills them in.
const (
	DefaultBGPPeerPort                = 179
	DefaultBGPEBGPMultihop            = 1
	DefaultBGPConnectRetryTimeSeconds = 120
	DefaultBGPHoldTimeSeconds         = 90
	DefaultBGPKeepAliveTimeSeconds    = 30
	DefaultBGPRestartTimeSeconds      = 120
)

// BGPAuthSecretKey is the key of the password in an authSecretRef Secret.
const BGPAuthSecretKey = "password"

// CiliumBGPPeerConfig is a set of BGP session settings that peers of a
// CiliumBGPClusterConfig share through peerConfigRef: transport, timers,
// authentication, graceful restart, the address families to negotiate and,
// per family, which CiliumBGPAdvertisements to send.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cbgppeer,categories={cilium,ciliumbgp}
// +kubebuilder:printcolumn:name="PeerPort",type=integer,JSONPath=`.spec.transport.peerPort`
// +kubebuilder:printcolumn:name="Hold",type=integer,JSONPath=`.spec.timers.holdTimeSeconds`,description="hold time in seconds"
// +kubebuilder:printcolumn:name="Keepalive",type=integer,JSONPath=`.spec.timers.keepAliveTimeSeconds`,description="keepalive time in seconds"
// +kubebuilder:printcolumn:name="GracefulRestart",type=boolean,JSONPath=`.spec.gracefulRestart.enabled`
// +kubebuilder:printcolumn:name="Families",type=string,JSONPath=`.spec.families[*].afi`,priority=1
// +kubebuilder:printcolumn:name="MissingAuthSecret",type=string,JSONPath=`.status.conditions[?(@.type=="cilium.io/MissingAuthSecret")].status`
// +kubebuilder:printcolumn:name="Established",type=integer,JSONPath=`.status.peersEstablished`,description="sessions using this config that are established, over all nodes"
// +kubebuilder:printcolumn:name="Peers",type=integer,JSONPath=`.status.peersTotal`,description="sessions using this config, over all nodes"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumBGPPeerConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	// +kubebuilder:default={}
	Spec CiliumBGPPeerConfigSpec `json:"spec,omitempty"`
	// +optional
	Status CiliumBGPPeerConfigStatus `json:"status,omitempty"`
}

// CiliumBGPPeerConfigSpec is the session settings. Every field is optional;
// an empty spec gives a plain session on port 179 with default timers,
// IPv4 and IPv6 unicast, and nothing advertised.
type CiliumBGPPeerConfigSpec struct {
	// Transport is the TCP side of the session.
	// +optional
	// +kubebuilder:default={}
	Transport *CiliumBGPTransport `json:"transport,omitempty"`

	// Timers are the BGP timers. Changing hold or keepalive resets the
	// session.
	// +optional
	// +kubebuilder:default={}
	Timers *CiliumBGPTimers `json:"timers,omitempty"`

	// AuthSecretRef names a Secret, in the BGP secrets namespace (kube-system
	// unless configured otherwise), whose key "password" is the TCP MD5
	// (RFC 2385) password. Absent means no authentication. MD5 needs the
	// peer to see the node's own address: it fails when the session is
	// address-translated. A wrong password shows as connection timeouts.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.authSecretRef must be a Secret name: lower-case letters, digits, '-' and '.'"
	AuthSecretRef *string `json:"authSecretRef,omitempty"`

	// GracefulRestart, when enabled, makes the node a restarting speaker (RFC
	// 4724): its peers keep the node's routes for restartTimeSeconds while
	// the BGP agent restarts, and traffic keeps flowing. Absent means
	// disabled. Turning it on or off resets the session.
	// +optional
	GracefulRestart *CiliumBGPNeighborGracefulRestart `json:"gracefulRestart,omitempty"`

	// EBGPMultihop is the IP TTL of the session's packets to an eBGP peer:
	// 1 means directly connected; raise it for a peer several hops away
	// (e.g. a route server in another subnet). Ignored for iBGP.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	EBGPMultihop *int32 `json:"ebgpMultihop,omitempty"`

	// Families are the address families negotiated with the peer and, per
	// family, the advertisements sent in it. Absent negotiates IPv4 and IPv6
	// unicast and advertises nothing. A family is only advertised when the
	// node runs that IP family.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +listType=map
	// +listMapKey=afi
	// +listMapKey=safi
	Families []CiliumBGPFamilyWithAdverts `json:"families,omitempty"`
}

// CiliumBGPTransport is the TCP side of a session.
type CiliumBGPTransport struct {
	// PeerPort is the TCP port the node connects to on the peer. The local
	// port of such a connection is ephemeral.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort *int32 `json:"peerPort,omitempty"`

	// SourceInterface names a local interface whose address, of the peer's
	// family, is the session's source address (Cilium 1.19), unless the
	// node's CiliumBGPNodeConfigOverride sets a localAddress. The interface
	// must have exactly one usable address of that family (global unicast,
	// or IPv4 link-local); otherwise the peer is not run and the node's
	// CiliumBGPNodeConfig status says why. Absent: the kernel chooses.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	SourceInterface *string `json:"sourceInterface,omitempty"`

	// LocalPort is accepted for cilium.io/v2alpha1 manifests, where Cilium
	// deprecated it, and has no effect: the local port of an outgoing
	// session is ephemeral.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	LocalPort *int32 `json:"localPort,omitempty"`
}

// CiliumBGPTimers are the session timers of RFC 4271, in seconds. The
// smallest values (hold 3, keepalive 1) detect a failed peer that is not
// directly connected fastest; a directly connected link going down drops
// the session at once anyway.
//
// The seed system's pages disagree on the minimum (9/3 or 3/1); Plexus
// takes the looser 3/1 of its CRD and operation guide.
// +kubebuilder:validation:XValidation:rule="!has(self.holdTimeSeconds) || !has(self.keepAliveTimeSeconds) || self.keepAliveTimeSeconds <= self.holdTimeSeconds",message="spec.timers.keepAliveTimeSeconds must not exceed spec.timers.holdTimeSeconds (default 90)"
type CiliumBGPTimers struct {
	// ConnectRetryTimeSeconds is the wait between attempts to open the
	// session; each wait is drawn from [T, 2T). Use a few seconds for fast
	// reconnection.
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	ConnectRetryTimeSeconds *int32 `json:"connectRetryTimeSeconds,omitempty"`

	// HoldTimeSeconds is how long the session stays up without hearing from
	// the peer. The session uses the smaller of this and the peer's value.
	// +optional
	// +kubebuilder:default=90
	// +kubebuilder:validation:Minimum=3
	// +kubebuilder:validation:Maximum=65535
	HoldTimeSeconds *int32 `json:"holdTimeSeconds,omitempty"`

	// KeepAliveTimeSeconds is the interval of keepalive messages; at most
	// the hold time, usually a third of it.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	KeepAliveTimeSeconds *int32 `json:"keepAliveTimeSeconds,omitempty"`
}

// CiliumBGPNeighborGracefulRestart is the graceful restart capability.
type CiliumBGPNeighborGracefulRestart struct {
	// Enabled announces the capability in the OPEN message.
	Enabled bool `json:"enabled"`

	// RestartTimeSeconds is the time announced to the peer: how long it
	// keeps the node's routes after the session drops. Make it longer than
	// the BGP agent takes to restart (including pulling its image on an
	// upgrade), else the routes are withdrawn meanwhile.
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4095
	RestartTimeSeconds *int32 `json:"restartTimeSeconds,omitempty"`
}

// CiliumBGPFamily is an address family: AFI and SAFI. Only IPv4 and IPv6
// unicast are supported, so the enums are limited to them (the seed system
// lists more values in its schema but does not implement them).
type CiliumBGPFamily struct {
	// Afi is the address family: ipv4 or ipv6.
	// +kubebuilder:validation:Enum=ipv4;ipv6
	Afi string `json:"afi"`
	// Safi is the subsequent address family: unicast.
	// +kubebuilder:validation:Enum=unicast
	Safi string `json:"safi"`
}

// CiliumBGPFamilyWithAdverts is a family and what to advertise in it.
type CiliumBGPFamilyWithAdverts struct {
	CiliumBGPFamily `json:",inline"`

	// Advertisements selects CiliumBGPAdvertisements by their labels. Absent
	// selects none: nothing is advertised in this family.
	// +optional
	Advertisements *metav1.LabelSelector `json:"advertisements,omitempty"`
}

// CiliumBGPPeerConfigStatus reports problems with the settings.
type CiliumBGPPeerConfigStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// PeersTotal is the number of sessions, over all nodes, whose peer
	// refers to this config (a Plexus addition).
	// +optional
	PeersTotal int32 `json:"peersTotal,omitempty"`

	// PeersEstablished is how many of them the nodes report established (a
	// Plexus addition).
	// +optional
	PeersEstablished int32 `json:"peersEstablished,omitempty"`

	// Conditions: cilium.io/MissingAuthSecret, always present: True when
	// spec.authSecretRef names a Secret that the BGP secrets namespace does
	// not hold, or one without the key "password"; False when the Secret is
	// there or when no authSecretRef is set (no authentication). Ready (a
	// Plexus addition) is True when nothing is missing and every session
	// using this config is established (also when none does).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CiliumBGPPeerConfigList is a list of CiliumBGPPeerConfigs.
//
// +kubebuilder:object:root=true
type CiliumBGPPeerConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumBGPPeerConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CiliumBGPPeerConfig{}, &CiliumBGPPeerConfigList{})
}
