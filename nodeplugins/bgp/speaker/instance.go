package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"

	"github.com/plexus-net/plexus/nodeplugins/bgp/desired"
)

// instanceKey is what an instance cannot change without a restart.
type instanceKey struct {
	asn        uint32
	routerID   netip.Addr
	listenPort int32
}

func keyOf(in desired.Instance) instanceKey {
	return instanceKey{asn: in.ASN, routerID: in.RouterID, listenPort: in.ListenPort}
}

// instance is one running GoBGP server.
type instance struct {
	name      string
	key       instanceKey
	log       logr.Logger
	server    *server.BgpServer
	stopWatch context.CancelFunc
	book      *errorBook
	peers     map[string]*peer // by desired name
	nextID    uint32

	// sockets are the TCP endpoints of established sessions, by neighbour
	// address, as GoBGP's peer events report them (ListPeer does not).
	socketsMu sync.Mutex
	sockets   map[string]endpoints
}

type endpoints struct{ local, remote netip.AddrPort }

// peer is one desired peer: its VRF, its routes, and its session if it has
// an address.
type peer struct {
	name   string
	vrf    string
	want   desired.Peer
	routes map[netip.Prefix]desired.Route // what the VRF holds
	// conf is the running neighbour; nil while the peer has no session.
	conf *api.Peer
	// addr is conf's neighbour address.
	addr netip.Addr
	// problem says why there is no session (auto-discovery found nothing).
	problem string
}

// localOnlyPolicy keeps what peers send out of the RIB (see doc.go).
const localOnlyPolicy = "plexus-local-routes-only"

func startInstance(ctx context.Context, log logr.Logger, in desired.Instance, listen []string, changed func()) (*instance, error) {
	if !in.RouterID.Is4() {
		return nil, fmt.Errorf("instance %s: router ID %q is not an IPv4 address", in.Name, in.RouterID)
	}
	if in.ListenPort > 0 {
		// Checked first: GoBGP's Serve goroutine never ends, so a server
		// that fails to start would leak on every retry.
		if err := canListen(listen, in.ListenPort); err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.Name, err)
		}
	}
	book := newErrorBook(changed)
	srv := server.NewBgpServer(server.LoggerOption(&gobgpLogger{log: log.WithName("gobgp"), book: book}))
	go srv.Serve()
	inst := &instance{name: in.Name, key: keyOf(in), log: log, server: srv, book: book, peers: map[string]*peer{}, sockets: map[string]endpoints{}}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: globalConfig(in, listen)}); err != nil {
		_ = srv.StopBgp(ctx, &api.StopBgpRequest{}) // closes listeners opened before the failure
		return nil, fmt.Errorf("instance %s: starting BGP: %w", in.Name, err)
	}
	log.Info("started BGP instance", "asn", in.ASN, "routerID", in.RouterID, "listenPort", in.ListenPort)
	if err := installImportPolicy(ctx, srv); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("instance %s: %w", in.Name, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	inst.stopWatch = cancel
	err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
		inst.recordSocket(r.GetPeer().GetPeer())
		changed()
	})
	if err != nil {
		cancel()
		srv.Stop()
		return nil, fmt.Errorf("instance %s: watching peers: %w", in.Name, err)
	}
	return inst, nil
}

// canListen checks that port is free on every address.
func canListen(addrs []string, port int32) error {
	for _, a := range addrs {
		network := "tcp4" // as GoBGP binds: one socket per family
		if ip, err := netip.ParseAddr(a); err == nil && ip.Is6() {
			network = "tcp6"
		}
		l, err := net.Listen(network, net.JoinHostPort(a, strconv.Itoa(int(port))))
		if err != nil {
			return fmt.Errorf("cannot listen on port %d: %w", port, err)
		}
		l.Close()
	}
	return nil
}

// recordSocket remembers an established session's TCP endpoints, for
// dropGracefulSessions.
func (i *instance) recordSocket(p *api.Peer) {
	if p == nil || p.State == nil || p.Transport == nil {
		return
	}
	addr := p.State.NeighborAddress
	i.socketsMu.Lock()
	defer i.socketsMu.Unlock()
	delete(i.sockets, addr)
	if p.State.SessionState != api.PeerState_ESTABLISHED {
		return
	}
	local, err1 := netip.ParseAddr(p.Transport.LocalAddress)
	remote, err2 := netip.ParseAddr(addr)
	if err1 == nil && err2 == nil {
		i.sockets[addr] = endpoints{
			local:  netip.AddrPortFrom(local.Unmap(), uint16(p.Transport.LocalPort)),
			remote: netip.AddrPortFrom(remote.Unmap(), uint16(p.Transport.RemotePort)),
		}
	}
}

func installImportPolicy(ctx context.Context, srv *server.BgpServer) error {
	err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: localOnlyPolicy,
		Statements: []*api.Statement{{
			Name:       localOnlyPolicy + "-accept",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}})
	if err != nil {
		return fmt.Errorf("adding import policy: %w", err)
	}
	err = srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: localOnlyPolicy}},
		DefaultAction: api.RouteAction_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("assigning import policy: %w", err)
	}
	return nil
}

// stop stops the server. With graceful set, sessions with graceful restart
// end without a NOTIFICATION (see doc.go).
func (i *instance) stop(ctx context.Context, graceful bool) {
	i.log.Info("stopping BGP instance", "asn", i.key.asn, "gracefulRestart", graceful)
	if graceful {
		i.dropGracefulSessions(ctx)
	}
	i.stopWatch()
	_ = i.server.StopBgp(ctx, &api.StopBgpRequest{})
}

// resolver gives a desired peer's address, or why it has none.
type resolver func(desired.Peer) (netip.Addr, string)

// sync makes the instance's peers and routes match want.
func (i *instance) sync(ctx context.Context, want []desired.Peer, resolve resolver) error {
	var errs []error
	wanted := map[string]desired.Peer{}
	for _, p := range want {
		wanted[p.Name] = p
	}
	// Sessions first: removed peers and peers whose session changes let
	// go of their address before any other peer takes it.
	next := map[string]*api.Peer{}
	for _, name := range sortedKeys(i.peers) {
		p := i.peers[name]
		w, keep := wanted[name]
		var conf *api.Peer
		if keep {
			conf = i.sessionFor(w, p, resolve)
			next[name] = conf
		}
		if p.conf != nil && !proto.Equal(p.conf, conf) {
			errs = append(errs, i.deleteSession(ctx, p))
		}
		if !keep {
			errs = append(errs, i.deletePeer(ctx, p))
		}
	}
	for _, w := range want {
		p := i.peers[w.Name]
		if p == nil {
			var err error
			if p, err = i.addPeer(ctx, w.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			next[w.Name] = i.sessionFor(w, p, resolve)
		}
		p.want = w
		// Routes before the session: a new session starts with the whole
		// table.
		errs = append(errs, i.syncRoutes(ctx, p, w))
		if conf := next[w.Name]; conf != nil && p.conf == nil {
			errs = append(errs, i.addSession(ctx, p, conf))
		}
	}
	return errors.Join(errs...)
}

// sessionFor is the neighbour config p should run, nil if none; it records
// why in p.problem.
func (i *instance) sessionFor(w desired.Peer, p *peer, resolve resolver) *api.Peer {
	addr, problem := resolve(w)
	p.problem = problem
	if !addr.IsValid() {
		return nil
	}
	return peerConfig(w, addr, p.vrf)
}

func (i *instance) addPeer(ctx context.Context, name string) (*peer, error) {
	i.nextID++
	p := &peer{name: name, vrf: "peer/" + name, routes: map[netip.Prefix]desired.Route{}}
	vrf, err := vrfConfig(p.vrf, i.nextID)
	if err == nil {
		err = i.server.AddVrf(ctx, &api.AddVrfRequest{Vrf: vrf})
	}
	if err != nil {
		return nil, fmt.Errorf("peer %s: adding its VRF: %w", name, err)
	}
	i.peers[name] = p
	return p, nil
}

func (i *instance) deletePeer(ctx context.Context, p *peer) error {
	delete(i.peers, p.name)
	// Deleting the VRF withdraws its routes; the session is gone already.
	if err := i.server.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: p.vrf}); err != nil {
		return fmt.Errorf("peer %s: deleting its VRF: %w", p.name, err)
	}
	return nil
}

func (i *instance) addSession(ctx context.Context, p *peer, conf *api.Peer) error {
	i.log.V(1).Info("adding BGP neighbor", "peer", p.name, "address", conf.Conf.NeighborAddress, "asn", conf.Conf.PeerAsn)
	if err := i.server.AddPeer(ctx, &api.AddPeerRequest{Peer: conf}); err != nil {
		p.problem = "adding the neighbor: " + err.Error()
		return fmt.Errorf("peer %s: adding neighbor %s: %w", p.name, conf.Conf.NeighborAddress, err)
	}
	p.conf = conf
	p.addr, _ = netip.ParseAddr(conf.Conf.NeighborAddress)
	return nil
}

// deleteSession ends p's session with a NOTIFICATION, so the peer
// withdraws what it learnt from this node (B66).
func (i *instance) deleteSession(ctx context.Context, p *peer) error {
	addr := p.conf.Conf.NeighborAddress
	i.log.V(1).Info("deleting BGP neighbor", "peer", p.name, "address", addr)
	p.conf, p.addr = nil, netip.Addr{}
	i.book.forget(addr)
	if err := i.server.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr}); err != nil {
		return fmt.Errorf("peer %s: deleting neighbor %s: %w", p.name, addr, err)
	}
	return nil
}

// syncRoutes makes p's VRF hold exactly w's routes of w's families.
func (i *instance) syncRoutes(ctx context.Context, p *peer, w desired.Peer) error {
	want := make(map[netip.Prefix]desired.Route, len(w.Routes))
	for _, r := range w.Routes {
		if carries(w.Families, r.Prefix) {
			want[r.Prefix] = r
		}
	}
	var errs []error
	for _, pfx := range sortedPrefixes(p.routes) {
		if _, ok := want[pfx]; ok {
			continue
		}
		path, err := withdrawPath(pfx)
		if err == nil {
			err = i.server.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_VRF, VrfId: p.vrf, Family: path.Family, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: withdrawing %s: %w", p.name, pfx, err))
			continue
		}
		delete(p.routes, pfx)
	}
	for _, r := range w.Routes {
		if _, ok := want[r.Prefix]; !ok {
			continue
		}
		if have, ok := p.routes[r.Prefix]; ok && sameRoute(have, r) {
			continue
		}
		path, err := routePath(r)
		if err == nil {
			_, err = i.server.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_VRF, VrfId: p.vrf, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: advertising %s: %w", p.name, r.Prefix, err))
			continue
		}
		p.routes[r.Prefix] = r
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// comparePrefix orders IPv4 before IPv6, then by address, then by length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
