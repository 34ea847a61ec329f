package desired

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

// IPAM modes, as the IPAM controller and the CNI agent name them. Only the
// first two give a node pod CIDRs of its own to advertise as PodCIDR routes.
const (
	IPAMClusterPool = "cluster-pool"
	IPAMKubernetes  = "kubernetes"
	IPAMMultiPool   = "multi-pool"
)

// Input is everything a node's BGP state depends on. Lists may come in any
// order (Compute sorts what it needs) and are not modified. Objects the node
// cannot see, or that do not exist, are simply absent.
type Input struct {
	// NodeName is this node's name.
	NodeName string
	// Node is this node's Kubernetes Node: its labels select peering
	// policies, its annotations tune legacy virtual routers, its
	// spec.podCIDRs are the pod CIDRs in kubernetes IPAM mode and its IPv4
	// InternalIP is the fallback router ID. Nil is read as a node without
	// labels, annotations or addresses.
	Node *corev1.Node
	// CiliumNode is this node's CiliumNode: spec.ipam.podCIDRs (cluster-pool
	// mode) and spec.ipam.pools.allocated (multi-pool mode). May be nil.
	CiliumNode *ciliumv2.CiliumNode
	// IPAMMode is the cluster's IPAM mode (IPAMClusterPool, IPAMKubernetes,
	// IPAMMultiPool or anything else).
	IPAMMode string
	// IPv4Enabled and IPv6Enabled are the IP families the node runs; routes
	// of another family are never advertised (B68).
	IPv4Enabled, IPv6Enabled bool
	// DerivedRouterID is the router ID the node made for itself from a MAC
	// address (B46); it is used only when neither the NodeConfig nor an
	// IPv4 InternalIP gives one, as on IPv6-only nodes. Zero: none.
	DerivedRouterID netip.Addr

	// NodeConfig is this node's CiliumBGPNodeConfig; nil when no cluster
	// config selects the node.
	NodeConfig *ciliumv2.CiliumBGPNodeConfig
	// PeerConfigs are all CiliumBGPPeerConfigs.
	PeerConfigs []ciliumv2.CiliumBGPPeerConfig
	// Advertisements are all CiliumBGPAdvertisements.
	Advertisements []ciliumv2.CiliumBGPAdvertisement
	// PeeringPolicies are all legacy CiliumBGPPeeringPolicies.
	PeeringPolicies []ciliumv2alpha1.CiliumBGPPeeringPolicy
	// PodIPPools are all CiliumPodIPPools.
	PodIPPools []ciliumv2alpha1.CiliumPodIPPool
	// LoadBalancerIPPools are all CiliumLoadBalancerIPPools; only legacy
	// path attributes with selectorType CiliumLoadBalancerIPPool use them.
	LoadBalancerIPPools []ciliumv2.CiliumLoadBalancerIPPool
	// Services are all Services.
	Services []corev1.Service
	// EndpointSlices are all EndpointSlices (those of Services with a Local
	// traffic policy are enough).
	EndpointSlices []discoveryv1.EndpointSlice

	// Interfaces are the node's interfaces that advertisements and peer
	// configs name (see ReferencedInterfaces), by name; a missing one is
	// absent.
	Interfaces map[string]Interface

	// Secrets maps the name of each Secret in the BGP secrets namespace
	// that has a "password" key to that password. A Secret without the key
	// is left out: it counts as missing.
	Secrets map[string]string
	// SecretsNamespace is that namespace, only for messages.
	SecretsNamespace string
}
