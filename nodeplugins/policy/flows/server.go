package flows

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Server serves a Store over the Hubble Observer API.
type Server struct {
	observerpb.UnimplementedObserverServer
	Store    *Store
	NodeName string
	Version  string
	started  time.Time
}

// NewServer serves store as node's flows.
func NewServer(store *Store, node, version string) *Server {
	return &Server{Store: store, NodeName: node, Version: version, started: time.Now()}
}

// Serve answers on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	g := grpc.NewServer()
	observerpb.RegisterObserverServer(g, s)
	// hubble status asks the standard health service about the
	// observer, by the name Hubble's servers give it.
	h := health.NewServer()
	for _, service := range []string{"", "hubble.server.Observer"} {
		h.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(g, h)
	stop := context.AfterFunc(ctx, g.GracefulStop)
	defer stop()
	if err := g.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// GetFlows sends the held flows that the request selects (the last
// `number`, or the first with `first`, or all between since and until),
// then, with follow, every new one until the client leaves.
func (s *Server) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	if len(req.GetFieldMask().GetPaths()) > 0 {
		return status.Error(codes.InvalidArgument, "field_mask is not supported by this server: flows are sent whole")
	}
	if req.GetExperimental() != nil || req.GetExtensions() != nil {
		return status.Error(codes.InvalidArgument, "experimental options and extensions are not supported by this server")
	}
	filter, err := NewFilter(req.GetWhitelist(), req.GetBlacklist())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var since, until time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		until = req.GetUntil().AsTime()
	}
	selected := func(f *flowpb.Flow) bool {
		t := f.GetTime().AsTime()
		return (since.IsZero() || !t.Before(since)) && (until.IsZero() || !t.After(until)) && filter.Match(f)
	}

	held, next, added := s.Store.From(0)
	var history []*flowpb.Flow
	// Following without a number or a start sends only what comes next.
	if !req.GetFollow() || req.GetNumber() > 0 || !since.IsZero() {
		for _, f := range held {
			if selected(f) {
				history = append(history, f)
			}
		}
	}
	if n := req.GetNumber(); n > 0 && uint64(len(history)) > n {
		if req.GetFirst() {
			history = history[:n]
		} else {
			history = history[uint64(len(history))-n:]
		}
	}
	for _, f := range history {
		if err := s.send(stream, f); err != nil {
			return err
		}
	}
	if !req.GetFollow() {
		return nil
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-added:
		}
		var fresh []*flowpb.Flow
		fresh, next, added = s.Store.From(next)
		for _, f := range fresh {
			if !until.IsZero() && f.GetTime().AsTime().After(until) {
				return nil
			}
			if !selected(f) {
				continue
			}
			if err := s.send(stream, f); err != nil {
				return err
			}
		}
	}
}

func (s *Server) send(stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse], f *flowpb.Flow) error {
	return stream.Send(&observerpb.GetFlowsResponse{
		ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: f},
		NodeName:      f.GetNodeName(),
		Time:          f.GetTime(),
	})
}

// ServerStatus reports the buffer: flows held, its capacity, flows seen.
func (s *Server) ServerStatus(context.Context, *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	held, capacity, seen := s.Store.Stats()
	return &observerpb.ServerStatusResponse{
		NumFlows: held, MaxFlows: capacity, SeenFlows: seen,
		UptimeNs: uint64(time.Since(s.started).Nanoseconds()), Version: s.Version,
	}, nil
}

// GetNodes lists this node: each node plugin serves its own flows.
func (s *Server) GetNodes(context.Context, *observerpb.GetNodesRequest) (*observerpb.GetNodesResponse, error) {
	held, capacity, seen := s.Store.Stats()
	return &observerpb.GetNodesResponse{Nodes: []*observerpb.Node{{
		Name: s.NodeName, Version: s.Version, State: relaypb.NodeState_NODE_CONNECTED,
		UptimeNs: uint64(time.Since(s.started).Nanoseconds()), NumFlows: held, MaxFlows: capacity, SeenFlows: seen,
	}}}, nil
}

// GetNamespaces lists the namespaces of the held flows' endpoints.
func (s *Server) GetNamespaces(context.Context, *observerpb.GetNamespacesRequest) (*observerpb.GetNamespacesResponse, error) {
	held, _, _ := s.Store.From(0)
	var names []string
	for _, f := range held {
		for _, ep := range []*flowpb.Endpoint{f.GetSource(), f.GetDestination()} {
			if ns := ep.GetNamespace(); ns != "" {
				names = append(names, ns)
			}
		}
	}
	slices.Sort(names)
	out := &observerpb.GetNamespacesResponse{}
	for _, ns := range slices.Compact(names) {
		out.Namespaces = append(out.Namespaces, &observerpb.Namespace{Namespace: ns})
	}
	return out, nil
}

// GetAgentEvents has nothing to send: Plexus reports its state in the
// Kubernetes status of its objects, not as agent events.
func (s *Server) GetAgentEvents(*observerpb.GetAgentEventsRequest, grpc.ServerStreamingServer[observerpb.GetAgentEventsResponse]) error {
	return status.Error(codes.Unimplemented, "Plexus has no agent events: its state is in the status of its Kubernetes objects (kubectl describe nodepolicy)")
}

// GetDebugEvents has nothing to send: the policy programs emit verdicts only.
func (s *Server) GetDebugEvents(*observerpb.GetDebugEventsRequest, grpc.ServerStreamingServer[observerpb.GetDebugEventsResponse]) error {
	return status.Error(codes.Unimplemented, "Plexus's policy programs emit verdicts (flows) only, no debug events")
}
