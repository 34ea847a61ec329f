// Package fwmark allocates the bits of the packet mark (skb->mark) that
// Plexus node plugins set, so that one plugin's marks never collide with
// another's or with kube-proxy's (0x4000 masquerade, 0x8000 drop).
package fwmark

// EgressMask is the part of the mark the egress gateway plugin uses to steer
// a pod's packet to a gateway: the value under the mask picks the routing
// table (one per next hop). A packet with any of these bits set is in
// transit to an egress gateway with its pod source address, so the node's
// masquerading must leave it alone.
const EgressMask uint32 = 0x0fff0000

// EgressShift is the position of EgressMask's lowest bit.
const EgressShift = 16

// EgressSlots is how many distinct marks (next hops) fit under EgressMask;
// slot 0 means "not steered".
const EgressSlots = EgressMask>>EgressShift + 1

// Egress returns the mark of egress slot s (1 ≤ s < EgressSlots).
func Egress(s uint32) uint32 { return s << EgressShift & EgressMask }
