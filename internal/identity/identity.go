// Package identity holds what every part of Plexus that deals with security
// identities shares: the reserved identities and their numbers, the numeric
// range a cluster allocates from, which of a pod's labels make up its
// identity, and how a label set finds its number among the CiliumIdentity
// objects. The identity controller allocates with it; the policy controller
// and the node plugins resolve with it, so they all agree.
package identity

import (
	"fmt"
	"strconv"
)

// Number is a numeric security identity: the cluster ID in bits 16–23 and
// the cluster-local identity in bits 0–15, as Cilium lays it out, so that
// Cluster Mesh can tell the clusters' identities apart.
type Number uint32

// String is the decimal form, which is also a CiliumIdentity's name.
func (n Number) String() string { return strconv.FormatUint(uint64(n), 10) }

// ClusterID is the cluster part of n.
func (n Number) ClusterID() uint32 { return uint32(n) >> clusterShift }

// Reserved identities: fixed numbers for what is not a pod. They have no
// CiliumIdentity object; every node knows them.
const (
	Host          Number = 1
	World         Number = 2
	Unmanaged     Number = 3
	Health        Number = 4
	Init          Number = 5
	RemoteNode    Number = 6
	KubeAPIServer Number = 7
	Ingress       Number = 8
	WorldIPv4     Number = 9
	WorldIPv6     Number = 10
)

// reservedNames are the reserved identities' names, as policies'
// fromEntities/toEntities and the reserved:<name> label use them.
var reservedNames = map[Number]string{
	Host:          "host",
	World:         "world",
	Unmanaged:     "unmanaged",
	Health:        "health",
	Init:          "init",
	RemoteNode:    "remote-node",
	KubeAPIServer: "kube-apiserver",
	Ingress:       "ingress",
	WorldIPv4:     "world-ipv4",
	WorldIPv6:     "world-ipv6",
}

// ReservedName is the name of a reserved identity ("" for any other number).
func ReservedName(n Number) string { return reservedNames[n] }

// ReservedByName is the reserved identity of name (host, world, …).
func ReservedByName(name string) (Number, bool) {
	for n, s := range reservedNames {
		if s == name {
			return n, true
		}
	}
	return 0, false
}

const (
	clusterShift = 16
	// MinLocal is the lowest cluster-local identity given to label sets:
	// 1–255 are kept for reserved identities.
	MinLocal = 256
	// MaxLocal is the highest cluster-local identity.
	MaxLocal = 1<<clusterShift - 1
	// MaxClusterID is the highest cluster ID (Cluster Mesh's default limit
	// of 255 connected clusters).
	MaxClusterID = 255
)

// Range is the span of numbers a cluster allocates to label sets.
type Range struct{ Min, Max Number }

// RangeOf is the allocation range of the cluster with ID clusterID.
func RangeOf(clusterID uint32) (Range, error) {
	if clusterID > MaxClusterID {
		return Range{}, fmt.Errorf("cluster ID %d is above the highest, %d", clusterID, MaxClusterID)
	}
	base := Number(clusterID) << clusterShift
	return Range{Min: base | MinLocal, Max: base | MaxLocal}, nil
}

// Contains says whether n is in r.
func (r Range) Contains(n Number) bool { return n >= r.Min && n <= r.Max }

// Size is how many numbers r holds.
func (r Range) Size() int { return int(r.Max-r.Min) + 1 }

// Parse reads a CiliumIdentity's name as its number.
func Parse(name string) (Number, error) {
	v, err := strconv.ParseUint(name, 10, 32)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != name {
		return 0, fmt.Errorf("%q is not a numeric identity", name)
	}
	return Number(v), nil
}
