// Package heartbeat tells which members of a small group of nodes are alive,
// from UDP datagrams the members send each other directly, with no API
// server involved.
//
// Every member sends a datagram (its name, an incarnation that grows with
// every process start, a sequence number) to every peer every Interval. A
// peer is alive while it was heard within DeadAfter. A peer heard for the
// first time, back after being dead, or with a new incarnation (it
// restarted) counts as alive only once it has been heard continuously for
// RejoinAfter; a member counts itself alive only after running for
// RejoinAfter (plus SelfDelay). So a node that (re)starts and the nodes that
// see it switch at about the same moment, the restarted node a little after
// the others, and a flapping node does not move work back and forth.
//
// A peer newly added to the group (SetPeers) is different: nothing says it
// just started, and a group formed from nodes that have run for long (a new
// policy, a new candidate) must not count each other dead for RejoinAfter,
// or every one of them would take the work at once. So a new peer is
// presumed alive for DeadAfter, and when it is first heard saying it counts
// itself alive (the ready flag of its datagrams), it is alive at once. A new
// peer that says it is not ready yet (it has just started), that stays
// silent past DeadAfter, or that dies later, rejoins with the hysteresis.
//
// View is the pure state machine over explicit times; Member runs it over a
// UDP socket.
package heartbeat

import (
	"slices"
	"time"
)

// Timing are the View's thresholds.
type Timing struct {
	// DeadAfter: a peer not heard for this long is dead.
	DeadAfter time.Duration
	// RejoinAfter: a peer counts as alive only after it has been heard
	// continuously for this long; a member counts itself alive only after
	// running this long (plus SelfDelay).
	RejoinAfter time.Duration
	// SelfDelay is added to RejoinAfter for the member itself, so that the
	// others (which start counting at the first datagram they receive) see
	// it alive slightly before it acts as alive: work moves back to a
	// restarted node by release-then-take, never with two holders.
	SelfDelay time.Duration
}

// View is one member's opinion of who is alive. It is not safe for
// concurrent use; Member serialises access.
type View struct {
	self    string
	timing  Timing
	started time.Time
	peers   map[string]*peerState
}

type peerState struct {
	// heardSince starts the current continuous run of datagrams; zero when
	// the peer was never heard or is dead.
	heardSince time.Time
	lastHeard  time.Time
	// incarnation is the newest seen; datagrams of older ones are stale
	// (reordered or delayed from before a restart).
	incarnation uint64
	// left is set when the peer said goodbye in its current incarnation:
	// later datagrams of that incarnation are ignored.
	left bool
	// fresh: added to the group and never dead since; presumedUntil ends
	// the presumption of life while it has not been heard. ready is what
	// its last datagram said.
	fresh         bool
	presumedUntil time.Time
	ready         bool
}

// NewView starts the view of member self at time start.
func NewView(self string, t Timing, start time.Time) *View {
	return &View{self: self, timing: t, started: start, peers: map[string]*peerState{}}
}

// SetPeers replaces the set of peers at now (self is ignored if listed).
// Peers that stay keep their state; new ones start fresh: presumed alive
// until DeadAfter from now.
func (v *View) SetPeers(names []string, now time.Time) {
	keep := make(map[string]*peerState, len(names))
	for _, n := range names {
		if n == v.self {
			continue
		}
		if p, ok := v.peers[n]; ok {
			keep[n] = p
		} else {
			keep[n] = &peerState{fresh: true, presumedUntil: now.Add(v.timing.DeadAfter)}
		}
	}
	v.peers = keep
}

// Heard records a datagram from peer name of the given incarnation, saying
// whether the peer counts itself alive (ready), at now, and reports whether
// it was accepted (from a known peer and not stale).
func (v *View) Heard(name string, incarnation uint64, ready bool, now time.Time) bool {
	p, ok := v.peers[name]
	if !ok || incarnation < p.incarnation || (incarnation == p.incarnation && p.left) {
		return false
	}
	firstContact := p.heardSince.IsZero() && p.incarnation == 0
	switch {
	case firstContact:
		// Silent past the presumption: it was dead, so it rejoins.
		p.fresh = p.fresh && now.Before(p.presumedUntil)
		p.heardSince = now
	case incarnation > p.incarnation || p.heardSince.IsZero() || now.Sub(p.lastHeard) >= v.timing.DeadAfter:
		// A new run: back from the dead, or restarted.
		p.fresh = false
		p.heardSince = now
	}
	p.incarnation, p.left, p.lastHeard, p.ready = incarnation, false, now, ready
	return true
}

// Left records a goodbye from peer name: it is dead at once.
func (v *View) Left(name string, incarnation uint64) bool {
	p, ok := v.peers[name]
	if !ok || incarnation < p.incarnation {
		return false
	}
	*p = peerState{incarnation: incarnation, left: true} // no longer fresh
	return true
}

func (v *View) selfAliveAt() time.Time {
	return v.started.Add(v.timing.RejoinAfter + v.timing.SelfDelay)
}

func (v *View) peerAlive(p *peerState, now time.Time) bool {
	if p.heardSince.IsZero() {
		return p.fresh && now.Before(p.presumedUntil)
	}
	return now.Sub(p.lastHeard) < v.timing.DeadAfter &&
		(now.Sub(p.heardSince) >= v.timing.RejoinAfter || p.fresh && p.ready)
}

// selfReady reports whether the member counts itself alive at now: what its
// datagrams say.
func (v *View) selfReady(now time.Time) bool { return !now.Before(v.selfAliveAt()) }

// Alive returns the members alive at now, sorted, self included once it has
// run long enough.
func (v *View) Alive(now time.Time) []string {
	var out []string
	if v.selfReady(now) {
		out = append(out, v.self)
	}
	for n, p := range v.peers {
		if v.peerAlive(p, now) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// NextChange returns the earliest time after now at which Alive may change
// without another datagram arriving (a peer dying or completing its rejoin,
// the member itself becoming alive); zero if none.
func (v *View) NextChange(now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	consider(v.selfAliveAt())
	for _, p := range v.peers {
		if p.heardSince.IsZero() {
			if p.fresh {
				consider(p.presumedUntil)
			}
			continue
		}
		consider(p.heardSince.Add(v.timing.RejoinAfter))
		consider(p.lastHeard.Add(v.timing.DeadAfter))
	}
	return next
}
