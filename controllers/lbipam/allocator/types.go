// Package allocator decides which LoadBalancer Service holds which address.
//
// It is a pure function of the pools, the Services and the addresses each
// Service already holds: Allocate takes them all and returns every Service's
// addresses and condition and every pool's status. The reconciler only reads
// the cluster, calls Allocate and writes what changed, so everything that
// matters about LB-IPAM (stability, sharing, conflicts) is tested here without
// an API server.
//
// Stability is the central rule: Allocate first keeps every address a Service
// already holds that is still valid, in a fixed order (oldest Service first),
// and only then hands out new ones. So a held address never moves when a pool
// is widened, shrunk around it or made to reserve its first and last
// addresses, or when another Service goes away, and a
// restart (which restores holdings from Service status) changes nothing.
package allocator

import (
	"math/big"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// Reasons of the Service condition; the seed system's names, plus
// ReasonFamilyDisabled for a case the seed leaves silent.
const (
	ReasonSatisfied                = "satisfied"
	ReasonNoPool                   = "no_pool"
	ReasonPoolSelectorMismatch     = "pool_selector_mismatch"
	ReasonOutOfIPs                 = "out_of_ips"
	ReasonAlreadyAllocated         = "already_allocated"
	ReasonAlreadyAllocatedIncompat = "already_allocated_incompatible_service"
	ReasonFamilyDisabled           = "ip_family_disabled"
	ReasonInvalidRequestedIP       = "invalid_requested_ip"
)

// ExternalTrafficPolicyLocal is the Service's spec.externalTrafficPolicy value
// that restricts sharing.
const ExternalTrafficPolicyLocal = "Local"

// Config is the cluster-wide setting that shapes allocation.
type Config struct {
	IPv4Enabled bool
	IPv6Enabled bool
}

// Pool is a CiliumLoadBalancerIPPool reduced to what allocation needs.
type Pool struct {
	Name    string
	Created time.Time
	// Selector matches ServiceLabels; nil with SelectorErr set means the
	// selector is invalid: the pool then allocates nothing new but keeps what
	// Services already hold in it, since nobody can tell whether they match.
	Selector    labels.Selector
	SelectorErr error
	// Blocks as written, each either a CIDR or a start/stop pair.
	Blocks            []Block
	AllowFirstLastIPs bool
	Disabled          bool
}

// Block is one entry of spec.blocks.
type Block struct {
	CIDR        string
	Start, Stop string
}

// Family is an IP family.
type Family int

// The IP families.
const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy mirrors the Service's spec.ipFamilyPolicy.
type FamilyPolicy string

// The Service family policies.
const (
	SingleStack      FamilyPolicy = "SingleStack"
	PreferDualStack  FamilyPolicy = "PreferDualStack"
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// Service is a LoadBalancer Service that LB-IPAM is responsible for.
type Service struct {
	Key     types.NamespacedName
	Created time.Time
	// Labels are matched by pool selectors (see selectors.ServiceLabels).
	Labels labels.Set

	FamilyPolicy FamilyPolicy
	// Families is spec.ipFamilies; for SingleStack the first one is wanted.
	Families []Family

	// Requested are the addresses asked for through the annotations and
	// spec.loadBalancerIP, deduplicated. RequestErrors lists entries that are
	// not addresses.
	Requested     []netip.Addr
	RequestErrors []string

	SharingKey string
	// CrossNamespace lists namespaces (or "*") this Service may share with.
	CrossNamespace        []string
	Ports                 []int32
	ExternalTrafficPolicy string
	PodSelector           map[string]string

	// Held are the addresses the Service holds now: what LB-IPAM last decided,
	// or, for a Service it has not decided on yet (after a restart, or one that
	// just became eligible), its status.loadBalancer.ingress. HeldFrom says
	// which, and so how far it is trusted when two Services claim one address.
	Held     []netip.Addr
	HeldFrom HeldSource

	// Terminating: the Service is being deleted (a finalizer holds it). It
	// keeps what it holds until it is gone, and gets nothing new.
	Terminating bool
}

// HeldSource ranks where a Service's holdings come from. When two Services
// claim one address, the better source wins, and between equal sources the
// older Service.
type HeldSource int

const (
	// HeldDecided means LB-IPAM decided it in this process's lifetime.
	HeldDecided HeldSource = iota
	// HeldRecorded means it is in status beside LB-IPAM's condition, so LB-IPAM wrote
	// it (before a restart, say).
	HeldRecorded
	// HeldImported means it is in status with no LB-IPAM condition: set by someone else,
	// adopted only if free.
	HeldImported
)

// Assignment is one address a Service holds and the pool it counts against.
type Assignment struct {
	Addr netip.Addr
	Pool string
}

// ServiceResult is the outcome for one Service.
type ServiceResult struct {
	// Addresses in a stable order: IPv4 before IPv6, then by address.
	Addresses []Assignment
	Satisfied bool
	Reason    string
	Message   string
}

// PoolResult is the status of one pool.
type PoolResult struct {
	// Conflict is empty or says which of this pool's blocks overlaps which
	// block of an older pool.
	Conflict string
	// BlockErrors lists blocks the allocator could not use.
	BlockErrors []string
	// Total counts the addresses the pool gives out plus the reserved ones
	// that Services still hold (KeptReserved of them), so Total - Used is
	// what is still available.
	Total, Used  *big.Int
	KeptReserved int
}

// Result is the whole decision.
type Result struct {
	Services map[types.NamespacedName]ServiceResult
	Pools    map[string]PoolResult
}
