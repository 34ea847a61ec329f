package l7proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

// keptVersions bounds the memory of served snapshots (acknowledgements can
// only name recent ones).
const keptVersions = 16

// Server serves snapshots to the node's proxy over ADS and follows the
// proxy's acknowledgements.
type Server struct {
	// NodeID is the proxy's node id (its bootstrap's node.id): the node's
	// name.
	NodeID string
	Log    logr.Logger

	cache cache.SnapshotCache

	mu      sync.Mutex
	served  []Snapshot // oldest first
	streams map[streamKey]*stream
	// nack is the proxy's last refusal, until it acknowledges a newer
	// snapshot.
	nack    *refusal
	acked   string // the newest version every type acknowledged
	changed chan struct{}
}

// streamKey names a stream: state-of-the-world and delta streams are
// numbered apart.
type streamKey struct {
	delta bool
	id    int64
}

type stream struct {
	nonces map[string]sentResponse // nonce → what was sent
	// holds names, per type this stream asked for, the resources the
	// proxy acknowledged last (a TypeVersions value; none at first). A
	// name, not a version: over delta xDS a type that never changes keeps
	// the version of a snapshot long dropped from served.
	holds map[string]string
}

// sentResponse is what a response carried: its type, snapshot version and
// resources (named when sent, while the snapshot is surely kept).
type sentResponse struct{ typeURL, version, content string }

type refusal struct {
	version, typeURL, message string
}

// NewServer returns a server with nothing to serve yet.
func NewServer(nodeID string, log logr.Logger) *Server {
	return &Server{
		NodeID: nodeID, Log: log,
		cache:   cache.NewSnapshotCache(true, cache.IDHash{}, nil),
		streams: map[streamKey]*stream{},
		changed: make(chan struct{}, 1),
	}
}

// Changes receives a value whenever the report may have changed.
func (s *Server) Changes() <-chan struct{} { return s.changed }

func (s *Server) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Set serves snap from now on (a snapshot equal to the current one changes
// nothing).
func (s *Server) Set(ctx context.Context, snap Snapshot) error {
	cs, err := cache.NewSnapshot(snap.Version, snap.Resources)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if n := len(s.served); n > 0 && s.served[n-1].Version == snap.Version {
		// Same content; newer generations of unchanged configs still
		// count as served once this version is acknowledged.
		s.served[n-1] = snap
		s.mu.Unlock()
		s.notify()
		return nil
	}
	// Known before the cache can send it: a response names its
	// resources by this snapshot (sent, below).
	s.served = append(s.served, snap)
	if len(s.served) > keptVersions {
		s.served = s.served[len(s.served)-keptVersions:]
	}
	s.mu.Unlock()
	if err := s.cache.SetSnapshot(ctx, s.NodeID, cs); err != nil {
		s.mu.Lock()
		s.served = slices.DeleteFunc(s.served, func(x Snapshot) bool { return x.Version == snap.Version })
		s.mu.Unlock()
		return err
	}
	s.notify()
	return nil
}

// Serve answers ADS on l until ctx ends, state of the world or delta, as
// the proxy asks (the chart's Envoy bootstrap asks for delta, so an edit
// sends only the resources it changed).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	g := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, server.NewServer(ctx, s.cache, s.callbacks()))
	go func() {
		<-ctx.Done()
		g.GracefulStop()
	}()
	if err := g.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

func (s *Server) callbacks() server.CallbackFuncs {
	open := func(k streamKey) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.streams[k] = &stream{nonces: map[string]sentResponse{}, holds: map[string]string{}}
	}
	closed := func(k streamKey) {
		s.mu.Lock()
		delete(s.streams, k)
		s.mu.Unlock()
		s.notify()
	}
	checkNode := func(n *corev3.Node) error {
		if n != nil && n.GetId() != "" && n.GetId() != s.NodeID {
			return fmt.Errorf("this server serves node %q, not %q", s.NodeID, n.GetId())
		}
		return nil
	}
	return server.CallbackFuncs{
		StreamOpenFunc:        func(_ context.Context, id int64, _ string) error { open(streamKey{id: id}); return nil },
		DeltaStreamOpenFunc:   func(_ context.Context, id int64, _ string) error { open(streamKey{delta: true, id: id}); return nil },
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { closed(streamKey{id: id}) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { closed(streamKey{delta: true, id: id}) },
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			if err := checkNode(req.GetNode()); err != nil {
				return err
			}
			s.request(streamKey{id: id}, req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoverygrpc.DeltaDiscoveryRequest) error {
			if err := checkNode(req.GetNode()); err != nil {
				return err
			}
			s.request(streamKey{delta: true, id: id}, req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
			s.sent(streamKey{id: id}, resp.GetNonce(), resp.GetTypeUrl(), resp.GetVersionInfo())
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoverygrpc.DeltaDiscoveryRequest, resp *discoverygrpc.DeltaDiscoveryResponse) {
			// A delta response's system version is the snapshot's.
			s.sent(streamKey{delta: true, id: id}, resp.GetNonce(), resp.GetTypeUrl(), resp.GetSystemVersionInfo())
		},
	}
}

// sent remembers what a response carried, to follow its ACK or NACK.
func (s *Server) sent(k streamKey, nonce, typeURL, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[k]; st != nil {
		st.nonces[nonce] = sentResponse{typeURL: typeURL, version: version, content: s.contentOf(version, typeURL)}
		if _, ok := st.holds[typeURL]; !ok {
			st.holds[typeURL] = emptyTypeVersion
		}
	}
}

// request follows an ACK or NACK: a request that answers a response (its
// nonce) accepts that response's version, or refuses it with error_detail.
// (A new stream is sent every type again, even when the proxy names what
// it holds, so a restarted plugin hears acknowledgements too.)
func (s *Server) request(k streamKey, typeURL, nonce, errorDetail string, refused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		return
	}
	// A type the proxy asks for counts from its first request: until it
	// acknowledges a version, no version is acknowledged by the proxy.
	if _, ok := st.holds[typeURL]; !ok {
		st.holds[typeURL] = emptyTypeVersion
	}
	if nonce == "" {
		return
	}
	sent, ok := st.nonces[nonce]
	if !ok {
		return
	}
	delete(st.nonces, nonce)
	if refused {
		s.nack = &refusal{version: sent.version, typeURL: sent.typeURL, message: errorDetail}
		s.Log.Info("the proxy refused a configuration", "type", sent.typeURL, "version", sent.version, "error", errorDetail)
	} else {
		st.holds[sent.typeURL] = sent.content
	}
	s.updateAcked()
	s.notify()
}

// updateAcked moves acked to the newest snapshot whose every type every
// open stream holds: a type's acknowledged version need not be the
// snapshot's, only carry the same resources (delta xDS sends a type only
// when it changed, and nothing for a type that stays empty). Called with
// mu held.
func (s *Server) updateAcked() {
	for i := len(s.served) - 1; i >= 0; i-- {
		want := s.served[i]
		all, any := true, false
		for _, st := range s.streams {
			for typ, got := range st.holds {
				any = true
				all = all && got == want.TypeVersions[typ]
			}
		}
		if all && any {
			s.acked = want.Version
			if s.nack != nil && s.indexOf(s.nack.version) < i {
				s.nack = nil // a newer snapshot was accepted
			}
			return
		}
	}
}

// contentOf names the resources of one type in a served snapshot ("" for
// a version no longer kept). Called with mu held.
func (s *Server) contentOf(version, typeURL string) string {
	if i := s.indexOf(version); i >= 0 {
		return s.served[i].TypeVersions[typeURL]
	}
	return ""
}

func (s *Server) indexOf(version string) int {
	return slices.IndexFunc(s.served, func(sn Snapshot) bool { return sn.Version == version })
}

// Report is what the proxy has of the configs.
type Report struct {
	// Connected says a proxy holds a stream open.
	Connected bool
	// Version is the newest snapshot the proxy acknowledged ("": none).
	Version string
	// Generations are the configs of that snapshot, at their generation.
	Generations map[nodesv1alpha1.EnvoyConfigRef]int64
	// Refused names, per config, the proxy's refusal of a newer snapshot.
	Refused map[nodesv1alpha1.EnvoyConfigRef]string
}

// Report returns the current report.
func (s *Server) Report() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{Connected: len(s.streams) > 0, Version: s.acked, Refused: map[nodesv1alpha1.EnvoyConfigRef]string{}}
	if i := s.indexOf(s.acked); i >= 0 {
		r.Generations = s.served[i].Generations
	}
	if n := s.nack; n != nil {
		if i := s.indexOf(n.version); i >= 0 {
			for ref, msg := range blame(s.served[i], n) {
				r.Refused[ref] = msg
			}
		}
	}
	return r
}

// blame attributes a refusal to the configs whose resources its message
// names, or, when it names none, to every config with resources of the
// refused type.
func blame(snap Snapshot, n *refusal) map[nodesv1alpha1.EnvoyConfigRef]string {
	out := map[nodesv1alpha1.EnvoyConfigRef]string{}
	msg := "the proxy refused it: " + n.message
	for name, ref := range snap.Owners[n.typeURL] {
		if strings.Contains(n.message, name) {
			out[ref] = msg
		}
	}
	if len(out) == 0 {
		for _, ref := range snap.Owners[n.typeURL] {
			out[ref] = msg
		}
	}
	return out
}

// accepted returns the newest snapshot the proxy acknowledged.
func (s *Server) accepted() (Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.indexOf(s.acked)
	if i < 0 {
		return Snapshot{}, false
	}
	return s.served[i], true
}
