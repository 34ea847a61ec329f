package speaker

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"golang.org/x/sys/unix"
)

// dropGracefulSessions ends every established session that negotiated
// graceful restart with a bare TCP shutdown (FIN), so GoBGP has no session
// left to send a NOTIFICATION on when it stops. GoBGP does not expose its
// connections, so the socket is found among the process's descriptors by
// its two endpoints.
func (i *instance) dropGracefulSessions(ctx context.Context) {
	var cut []string
	_ = i.server.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED || p.GracefulRestart == nil || !p.GracefulRestart.Enabled {
			return
		}
		i.socketsMu.Lock()
		ep, ok := i.sockets[p.State.NeighborAddress]
		i.socketsMu.Unlock()
		if ok && shutdownSocket(ep.local, ep.remote) {
			cut = append(cut, p.State.NeighborAddress)
		}
	})
	if len(cut) == 0 {
		return
	}
	// Wait (bounded) until GoBGP has seen the connections die, so that
	// StopBgp finds no established session to notify.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !i.anyEstablished(ctx, cut) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (i *instance) anyEstablished(ctx context.Context, addrs []string) bool {
	found := false
	_ = i.server.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED {
			for _, a := range addrs {
				if a == p.State.NeighborAddress {
					found = true
				}
			}
		}
	})
	return found
}

// shutdownSocket shuts down the process's TCP socket from local to remote.
func shutdownSocket(local, remote netip.AddrPort) bool {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		if sockAddr(unix.Getsockname(fd)) != local || sockAddr(unix.Getpeername(fd)) != remote {
			continue
		}
		return unix.Shutdown(fd, unix.SHUT_RDWR) == nil
	}
	return false
}

func sockAddr(sa unix.Sockaddr, err error) netip.AddrPort {
	if err != nil {
		return netip.AddrPort{}
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}
