// Package allocator decides which pod CIDRs every node holds. It is pure: the
// controller feeds it the cluster's state and writes back what it returns.
//
// Every pass first restores what nodes already hold, oldest node first, and
// only then hands out anything new, so a restart or a lost cache never moves
// a CIDR from one node to another and never gives one CIDR to two nodes.
package allocator

import (
	"net/netip"
	"time"
)

// Mode is the IPAM mode, named as in the seed system's configuration.
type Mode string

const (
	// ModeClusterPool carves per-node CIDRs from the controller's configured
	// lists (the default).
	ModeClusterPool Mode = "cluster-pool"
	// ModeMultiPool carves per-node CIDRs from CiliumPodIPPools on demand.
	ModeMultiPool Mode = "multi-pool"
	// ModeKubernetes takes the CIDRs kube-controller-manager put on the Node.
	ModeKubernetes Mode = "kubernetes"
	// ModeCRD hands out nothing: another actor lists single addresses in
	// each CiliumNode's spec.ipam.pool; the controller only checks them.
	ModeCRD Mode = "crd"
)

// Family is the address space of one family: CIDRs carved into node CIDRs of
// MaskSize.
type Family struct {
	CIDRs    []netip.Prefix
	MaskSize int
}

// Config is the controller's configuration.
type Config struct {
	Mode Mode
	// IPv4 and IPv6 say which families nodes need in cluster-pool and
	// kubernetes modes.
	IPv4, IPv6 bool
	// ClusterPool is the space of cluster-pool mode, per family.
	ClusterPoolIPv4, ClusterPoolIPv6 Family
}

// Pool is a CiliumPodIPPool (multi-pool mode).
type Pool struct {
	Name     string
	Created  time.Time
	Deleting bool
	// IPv4 and IPv6 are nil when the pool has no space of that family.
	IPv4, IPv6 *Family
	// AllowFirstIP and AllowLastIP: nodes give pods the first or last
	// address of their CIDRs too, so each CIDR holds more (Capacity).
	AllowFirstIP, AllowLastIP bool
}

// Request is a node's demand on one pool, in addresses per family.
type Request struct {
	Pool       string
	IPv4, IPv6 int
}

// PoolCIDRs are the CIDRs a node holds from one pool.
type PoolCIDRs struct {
	Pool  string
	CIDRs []string
}

// Node is one node as the cluster shows it.
type Node struct {
	Name    string
	Created time.Time
	// KubePodCIDRs are the CIDRs on the Kubernetes Node (spec.podCIDRs, or
	// the network.cilium.io/ipvX-pod-cidr annotations); kubernetes mode.
	KubePodCIDRs []string
	// PodCIDRs are what the node's CiliumNode holds now (spec.ipam.podCIDRs).
	PodCIDRs []string
	// Requested and Allocated are the node's multi-pool fields.
	Requested []Request
	Allocated []PoolCIDRs
	// Listed are the keys of spec.ipam.pool and spec.ipam.ipv6-pool (crd
	// mode).
	Listed []string
}

// NodeResult is what a node should hold.
type NodeResult struct {
	PodCIDRs  []string
	Allocated []PoolCIDRs
	// Errors say why the node lacks something it needs; empty on success.
	Errors []string
	// Notes report things kept that the configuration no longer covers.
	Notes []string
	// Listed counts the usable addresses of spec.ipam.pool (crd mode).
	Listed int
}

// PoolResult is the use of one pool (multi-pool) or of the cluster pool.
type PoolResult struct {
	// Holders maps each node holding CIDRs of the pool to them.
	Holders map[string][]string
	// RemovedInUse maps each node to the CIDRs it holds that the pool's spec
	// no longer covers.
	RemovedInUse map[string][]string
	// Overlap names the older pool this one overlaps; the pool then hands
	// out nothing new.
	Overlap string
	// Exhausted lists nodes whose demand the pool could not meet.
	Exhausted []string
	// FreeIPv4 and FreeIPv6 count node CIDRs still free.
	FreeIPv4, FreeIPv6 uint64
}

// ClusterPoolName is the name under which cluster-pool and kubernetes mode
// results are reported in Result.Pools.
const ClusterPoolName = ""

// Result is the decision for the whole cluster.
type Result struct {
	Nodes map[string]*NodeResult
	Pools map[string]*PoolResult
}
