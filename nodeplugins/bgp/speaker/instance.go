package speaker

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	peers     map[string]*peer  // by desired name
	tables    map[string]*table // by tableKey
	nextID    uint32

	// sockets are the TCP endpoints of established sessions, by neighbour
	// address, as GoBGP's peer events report them (ListPeer does not).
	socketsMu sync.Mutex
	sockets   map[string]endpoints
}

type endpoints struct{ local, remote netip.AddrPort }

// table holds the routes a set of peers is sent: the global RIB (vrf "")
// or a VRF the peers are bound to. Peers of one route group share a table
// (see doc.go).
type table struct {
	key    string
	vrf    string
	routes map[netip.Prefix]desired.Route
	// members are the peers bound to it; filledBy is the peer whose routes
	// it took in the current sync.
	members  map[string]bool
	filledBy string
}

// tableKey is the table a desired peer belongs to.
func tableKey(w desired.Peer) string {
	if w.RouteGroup != "" {
		return "group/" + w.RouteGroup
	}
	return "peer/" + w.Name
}

// peer is one desired peer: its table, and its session if it has an
// address.
type peer struct {
	name  string
	table *table
	want  desired.Peer
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
	inst := &instance{name: in.Name, key: keyOf(in), log: log, server: srv, book: book, peers: map[string]*peer{}, tables: map[string]*table{}, sockets: map[string]endpoints{}}
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
	for _, t := range i.tables {
		t.filledBy = ""
	}
	// Sessions first: removed peers and peers whose session changes let
	// go of their address before any other peer takes it. A peer that
	// changes table is bound anew, which is a session change.
	next := map[string]*api.Peer{}
	for _, name := range sortedKeys(i.peers) {
		p := i.peers[name]
		w, keep := wanted[name]
		var conf *api.Peer
		if keep {
			if p.table.key != tableKey(w) {
				i.leaveTable(p)
			}
			conf = i.sessionFor(w, p, resolve)
			next[name] = conf
		}
		if p.conf != nil && !proto.Equal(p.conf, conf) {
			errs = append(errs, i.deleteSession(ctx, p))
		}
		if !keep {
			i.leaveTable(p)
			delete(i.peers, name)
		}
	}
	for _, w := range want {
		p := i.peers[w.Name]
		if p == nil {
			p = &peer{name: w.Name}
			i.peers[w.Name] = p
		}
		if p.table == nil {
			t, err := i.joinTable(ctx, p, tableKey(w))
			if err != nil {
				errs = append(errs, err)
				delete(i.peers, w.Name)
				continue
			}
			p.table = t
			next[w.Name] = i.sessionFor(w, p, resolve)
		}
		p.want = w
		// Routes before the session: a new session starts with the whole
		// table.
		errs = append(errs, i.fillTable(ctx, p.table, w))
		if conf := next[w.Name]; conf != nil && p.conf == nil {
			errs = append(errs, i.addSession(ctx, p, conf))
		}
	}
	for _, key := range sortedKeys(i.tables) {
		if t := i.tables[key]; len(t.members) == 0 {
			errs = append(errs, i.deleteTable(ctx, t))
		}
	}
	return errors.Join(errs...)
}

// sessionFor is the neighbour config p should run, nil if none; it records
// why in p.problem.
func (i *instance) sessionFor(w desired.Peer, p *peer, resolve resolver) *api.Peer {
	addr, problem := resolve(w)
	p.problem = problem
	if !addr.IsValid() || p.table == nil {
		return nil
	}
	return peerConfig(w, addr, p.table.vrf)
}

// joinTable binds p to the table of key, making the table if there is
// none: the global RIB when no table holds it, else a VRF of its own.
func (i *instance) joinTable(ctx context.Context, p *peer, key string) (*table, error) {
	t := i.tables[key]
	if t == nil {
		t = &table{key: key, routes: map[netip.Prefix]desired.Route{}, members: map[string]bool{}}
		global := !slices.ContainsFunc(slices.Collect(maps.Values(i.tables)), func(o *table) bool { return o.vrf == "" })
		if !global {
			i.nextID++
			t.vrf = "table/" + strconv.FormatUint(uint64(i.nextID), 10)
			vrf, err := vrfConfig(t.vrf, i.nextID)
			if err == nil {
				err = i.server.AddVrf(ctx, &api.AddVrfRequest{Vrf: vrf})
			}
			if err != nil {
				return nil, fmt.Errorf("peer %s: adding the VRF of its routes: %w", p.name, err)
			}
		}
		i.tables[key] = t
	}
	t.members[p.name] = true
	return t, nil
}

// leaveTable unbinds p from its table; sync deletes tables left empty.
func (i *instance) leaveTable(p *peer) {
	if p.table != nil {
		delete(p.table.members, p.name)
		p.table = nil
	}
}

// deleteTable withdraws an empty table's routes: deleting a VRF withdraws
// them, the global RIB's are withdrawn one by one.
func (i *instance) deleteTable(ctx context.Context, t *table) error {
	if t.vrf == "" {
		if err := i.syncTable(ctx, t, nil); err != nil {
			return err
		}
	} else if err := i.server.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: t.vrf}); err != nil {
		return fmt.Errorf("deleting VRF %s: %w", t.vrf, err)
	}
	delete(i.tables, t.key)
	return nil
}

func (i *instance) addSession(ctx context.Context, p *peer, conf *api.Peer) error {
	i.log.V(1).Info("adding BGP neighbor", "peer", p.name, "address", conf.Conf.NeighborAddress, "asn", conf.Conf.PeerAsn, "vrf", conf.Conf.Vrf)
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

// fillTable makes t hold w's routes of w's families, once per sync: the
// other members of a route group are sent the same routes, which is
// checked, so that a broken promise shows as an error instead of a wrong
// advertisement going unnoticed.
func (i *instance) fillTable(ctx context.Context, t *table, w desired.Peer) error {
	if t.filledBy != "" {
		first := i.peers[t.filledBy].want
		if !slices.Equal(w.Families, first.Families) || !slices.EqualFunc(w.Routes, first.Routes, sameRoute) {
			return fmt.Errorf("peers %s and %s are in route group %q but are sent different routes; %s is sent %s's", t.filledBy, w.Name, w.RouteGroup, w.Name, t.filledBy)
		}
		return nil
	}
	t.filledBy = w.Name
	return i.syncTable(ctx, t, carried(w))
}

// carried are the routes of w's families.
func carried(w desired.Peer) []desired.Route {
	has4 := slices.Contains(w.Families, desired.Family{AFI: "ipv4", SAFI: "unicast"})
	has6 := slices.Contains(w.Families, desired.Family{AFI: "ipv6", SAFI: "unicast"})
	out := make([]desired.Route, 0, len(w.Routes))
	for _, r := range w.Routes {
		if r.Prefix.Addr().Is4() && has4 || !r.Prefix.Addr().Is4() && has6 {
			out = append(out, r)
		}
	}
	return out
}

// syncTable makes t hold exactly routes (sorted by prefix).
func (i *instance) syncTable(ctx context.Context, t *table, routes []desired.Route) error {
	want := make(map[netip.Prefix]desired.Route, len(routes))
	for _, r := range routes {
		want[r.Prefix] = r
	}
	tableType := api.TableType_GLOBAL
	if t.vrf != "" {
		tableType = api.TableType_VRF
	}
	var errs []error
	for pfx := range t.routes {
		if _, ok := want[pfx]; ok {
			continue
		}
		path, err := withdrawPath(pfx)
		if err == nil {
			err = i.server.DeletePath(ctx, &api.DeletePathRequest{TableType: tableType, VrfId: t.vrf, Family: path.Family, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("table of %s: withdrawing %s: %w", t.key, pfx, err))
			continue
		}
		delete(t.routes, pfx)
	}
	for _, r := range routes {
		if have, ok := t.routes[r.Prefix]; ok && sameRoute(have, r) {
			continue
		}
		path, err := routePath(r)
		if err == nil {
			_, err = i.server.AddPath(ctx, &api.AddPathRequest{TableType: tableType, VrfId: t.vrf, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("table of %s: advertising %s: %w", t.key, r.Prefix, err))
			continue
		}
		t.routes[r.Prefix] = r
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
