// Package desired computes, from the API objects a node can see, the BGP
// state that node's speaker should hold: instances, peers, and the routes
// each peer is sent with their attributes. It is pure: no I/O, no clocks.
package desired

import (
	"net/netip"
	"time"
)

// State is everything the speaker must hold. The zero State means "no BGP
// on this node": every instance stopped.
type State struct {
	// Source names the object the state comes from, for status and logs:
	// "CiliumBGPNodeConfig/<node>" or "CiliumBGPPeeringPolicy/<name>".
	Source string
	// Instances are sorted by Name.
	Instances []Instance
	// Problems are what the node could not honour; the state is still
	// applied as far as it goes (a missing Secret gives an empty password).
	Problems []Problem
}

// Problem is a reason the state is not all the user asked for.
type Problem struct {
	// Reason is a CamelCase condition reason, e.g. "MissingAuthSecret".
	Reason string
	// Message names the object and field at fault.
	Message string
}

// Problem reasons.
const (
	ReasonMissingAuthSecret  = "MissingAuthSecret"
	ReasonMissingPeerConfig  = "MissingPeerConfig"
	ReasonSeveralPolicies    = "SeveralPeeringPolicies"
	ReasonInvalidAnnotation  = "InvalidAnnotation"
	ReasonNoRouterID         = "NoRouterID"
	ReasonInvalidAdvertising = "InvalidAdvertisement"
	// Added with Compute: an instance without a usable local ASN, a peer
	// without a usable or with a duplicate address, and a peering policy
	// whose node selector does not parse.
	ReasonInvalidInstance      = "InvalidInstance"
	ReasonInvalidPeer          = "InvalidPeer"
	ReasonInvalidPeeringPolicy = "InvalidPeeringPolicy"
	// An interface that an Interface advertisement or a sourceInterface
	// names is missing, down, or has no single usable address.
	ReasonInterfaceUnavailable = "InterfaceUnavailable"
)

// Instance is one BGP speaker (a GoBGP server) with its own ASN.
type Instance struct {
	Name     string
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the port the instance accepts sessions on; 0 means no
	// listening socket at all (B11).
	ListenPort int32
	// Peers are sorted by Name.
	Peers []Peer
}

// Peer is one BGP neighbour of an instance.
type Peer struct {
	Name string
	// Address is the neighbour's address. Invalid (zero) when AutoDiscovery
	// is set: the speaker finds the address itself.
	Address netip.Addr
	// AutoDiscovery, when set, peers with the node's default gateway.
	AutoDiscovery *AutoDiscovery
	// ASN is the neighbour's AS number; 0 accepts any (B10).
	ASN uint32
	// LocalAddress is the session's source address; zero lets the kernel
	// choose.
	LocalAddress netip.Addr
	// Port is the neighbour's TCP port (default 179).
	Port uint16

	ConnectRetry time.Duration
	HoldTime     time.Duration
	Keepalive    time.Duration
	// EBGPMultihopTTL is the IP TTL of the session's packets (1 = directly
	// connected, the default).
	EBGPMultihopTTL uint8
	GracefulRestart GracefulRestart
	// Families are the address families negotiated, sorted (ipv4 before
	// ipv6). Never empty.
	Families []Family
	// Password is the TCP MD5 key; empty means none.
	Password string
	// Routes are the routes this neighbour is sent, sorted by prefix, one
	// entry per prefix with the attributes already merged.
	Routes []Route
	// RouteGroup, when set, promises that every peer of the instance with
	// the same RouteGroup is sent the same Routes in the same Families
	// (they share a CiliumBGPPeerConfig), so the speaker keeps one table
	// for them all. Empty: the peer's routes are its own.
	RouteGroup string
}

// AutoDiscovery peers with the node's default gateway of a family.
type AutoDiscovery struct {
	// Family is "ipv4" or "ipv6".
	Family string
}

// GracefulRestart is RFC 4724 graceful restart.
type GracefulRestart struct {
	Enabled     bool
	RestartTime time.Duration
}

// Family is an address family; only unicast is supported.
type Family struct {
	AFI  string // "ipv4" or "ipv6"
	SAFI string // "unicast"
}

// Route is a prefix and the path attributes it is sent with.
type Route struct {
	Prefix netip.Prefix
	// Communities are standard communities (well-known ones included), as
	// 32-bit values, sorted and without duplicates.
	Communities []uint32
	// LargeCommunities are sorted and without duplicates.
	LargeCommunities []LargeCommunity
	// LocalPreference, when set, is sent to iBGP neighbours only.
	LocalPreference *uint32
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	Global, Local1, Local2 uint32
}
