// Package speaker runs GoBGP in process and makes it match a desired.State
// incrementally, and reports what the sessions are doing.
//
// Shape:
//
//   - One GoBGP server per instance. ListenPort 0 starts it with GoBGP's
//     ListenPort -1, which opens no listening socket at all (B11); a port
//     listens on every address, or on WithListenAddresses (B12). A change of
//     ASN, router ID or port restarts that instance only.
//   - One table of routes per route group: the peers of an instance that
//     use one CiliumBGPPeerConfig are sent the same routes (desired.Peer's
//     RouteGroup promises it, and the speaker checks it), so they share
//     one table; a peer without a group has a table of its own. The first
//     table of an instance is GoBGP's global RIB, and its peers are plain
//     neighbours, so a common cluster (every peer under one PeerConfig)
//     costs what GoBGP alone costs. Every further table is a VRF whose
//     route target is private to it, its peers are bound to it (GoBGP's
//     "VRF-enslaved neighbor"), so no route leaks between groups. Adding,
//     changing or withdrawing a route of a group is one AddPath/DeletePath
//     in its table and one UPDATE per member session: no policy to
//     re-evaluate, no soft reset, and a withdraw is always sent (GoBGP has
//     no Adj-RIB-Out, so an export policy change plus a soft reset never
//     withdraws what the new policy rejects). GoBGP checks every VRF route
//     update against every established VRF peer (compiling a regexp each
//     time), so VRF groups cost more per peer than the global one
//     (BenchmarkApply10kPrefixes). A peer that changes group is bound anew,
//     which resets its session; a group that empties withdraws its routes,
//     and the global RIB goes to the next new group. VRF ids stay 0 so that
//     GoBGP's zebra bookkeeping does not add another check per VRF.
//   - A global import policy accepts only local routes: what peers send is
//     counted (received) but never enters the RIB, so it can neither shadow
//     nor replace a route this node originates.
//   - Peers are added and deleted one by one; a peer whose session settings
//     change is deleted and added again (GoBGP's UpdatePeer cannot change
//     most of them in place, and a new OPEN is needed anyway). Other peers'
//     sessions are not touched. A new peer's VRF is filled before the
//     session is configured, so its first UPDATEs (and the End-of-RIB a
//     graceful-restart peer waits for) carry the whole table.
//   - Local preference is set on the path; GoBGP removes it on the way to
//     eBGP peers and keeps it for iBGP peers (B42). With peer ASN 0 the
//     type is decided when the OPEN arrives.
//
// GoBGP behaviours relied upon (v3.37.0):
//
//   - Peer ASN 0 is accepted and skips the ASN check of the OPEN, so a
//     peer of any ASN establishes (B10). GoBGP then sets no TTL on the
//     socket (kernel default), so ebgpMultihop has no effect for such a
//     peer.
//   - Connect retry: GoBGP waits a random time in [T, 2T) between attempts
//     (the first attempt after [1 s, 2 s)), which is B17's jitter.
//   - eBGP sessions get IP TTL 1, or the multihop TTL when it is above 1
//     (B19). iBGP sessions keep the kernel default TTL.
//   - Several GoBGP servers in one process share two package variables
//     that StartBgp writes (route selection options); the values are always
//     the defaults, but `go test -race` reports it.
//   - TCP MD5 (B20) needs Go's MPTCP default off: go.mod sets
//     `godebug multipathtcp=0`, and every binary embedding this package
//     must keep it.
//
// Stop and graceful restart: Stop is what a plugin calls when it exits.
// GoBGP's own shutdown sends every peer a Cease NOTIFICATION (a Hard Reset
// once RFC 8538 is negotiated), and a NOTIFICATION ends graceful restart:
// the peer would drop this node's routes at once. So Stop first shuts the
// TCP connection of every established session with graceful restart down
// at the socket level (a FIN, no NOTIFICATION, as if the process had
// died), and only then stops GoBGP; the peer keeps the routes as stale for
// the restart time (B23) and the next process re-advertises them.
// Sessions without graceful restart get the normal NOTIFICATION. Removing
// peers or instances through Apply (e.g. the node is no longer selected,
// B66) always sends the NOTIFICATION, so the peer withdraws at once.
//
// Auto-discovery (B52-B54) asks package gateway for the default gateway of
// the peer's family and re-checks after route changes and every few
// seconds; the session follows the gateway.
package speaker
