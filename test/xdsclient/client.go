// Package xdsclient is a small ADS client that plays Envoy's part in tests
// and in the lab's stand-in proxy, over state-of-the-world or (Delta set)
// incremental xDS: it subscribes to every resource type, keeps what it was
// sent, and accepts (ACK) or refuses (NACK, with error_detail) each
// response as its Check says. It is a test fixture, not shipped.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/plexus-net/plexus/internal/envoyxds"
)

// State is what the client accepted: resources by type and name, the
// version accepted per type (with delta xDS, the system version of the
// type's last response), and the version of the last response accepted of
// any type.
type State struct {
	Resources map[string]map[string]proto.Message
	Versions  map[string]string
	Last      string
	// Accepted counts the responses accepted.
	Accepted int64
}

// Client is one ADS stream.
type Client struct {
	// NodeID is sent as node.id.
	NodeID string
	// Check, if set, judges each response (type URL and, after it, all
	// the type's resources by name); an error refuses it.
	Check func(typeURL string, resources map[string]proto.Message) error
	// Delta speaks incremental xDS (DeltaAggregatedResources), as an
	// Envoy whose bootstrap says DELTA_GRPC does.
	Delta bool

	mu      sync.Mutex
	state   State
	updates chan struct{}
	// resourceVersions are, with delta xDS, the versions of the resources
	// held, by type and name.
	resourceVersions map[string]map[string]string
}

// Updates receives a value after each accepted response.
func (c *Client) Updates() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.updates == nil {
		c.updates = make(chan struct{}, 1)
	}
	return c.updates
}

// Accepted counts the responses accepted so far.
func (c *Client) Accepted() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Accepted
}

// State returns a copy of what was accepted.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := State{Resources: map[string]map[string]proto.Message{}, Versions: map[string]string{}, Last: c.state.Last, Accepted: c.state.Accepted}
	for t, rs := range c.state.Resources {
		s.Resources[t] = map[string]proto.Message{}
		for n, r := range rs {
			s.Resources[t][n] = r
		}
	}
	for t, v := range c.state.Versions {
		s.Versions[t] = v
	}
	return s
}

// Run holds a stream open on conn until ctx ends or the stream fails.
func (c *Client) Run(ctx context.Context, conn grpc.ClientConnInterface) error {
	c.Updates()
	if c.Delta {
		return c.runDelta(ctx, conn)
	}
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: c.NodeID}
	for _, t := range envoyxds.Types {
		// Every type as a wildcard: the stand-in takes all it is given.
		// On a reconnect, the version held is named, as Envoy does.
		c.mu.Lock()
		held := c.state.Versions[t]
		c.mu.Unlock()
		if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: t, VersionInfo: held}); err != nil {
			return err
		}
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		got := map[string]proto.Message{}
		for _, a := range resp.GetResources() {
			m, err := a.UnmarshalNew()
			if err != nil {
				return fmt.Errorf("%s: %w", resp.GetTypeUrl(), err)
			}
			got[resourceName(m)] = m
		}
		req := &discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(), VersionInfo: resp.GetVersionInfo()}
		req.ErrorDetail = c.judge(resp.GetTypeUrl(), got, func() { c.accept(resp.GetTypeUrl(), resp.GetVersionInfo(), got) })
		if req.ErrorDetail != nil {
			c.mu.Lock()
			req.VersionInfo = c.state.Versions[resp.GetTypeUrl()] // a NACK names the version kept
			c.mu.Unlock()
		}
		if err := c.answer(func() error { return stream.Send(req) }, req.ErrorDetail); err != nil {
			return err
		}
	}
}

// judge runs Check on a type's resources as they would be after a
// response; when they pass, record (called with mu held) keeps them. It
// returns the refusal to send back, or nil.
func (c *Client) judge(typeURL string, resources map[string]proto.Message, record func()) *statuspb.Status {
	if c.Check != nil {
		if err := c.Check(typeURL, resources); err != nil {
			return &statuspb.Status{Code: 3, Message: err.Error()}
		}
	}
	c.mu.Lock()
	record()
	c.mu.Unlock()
	return nil
}

// answer sends an ACK or NACK and, after an ACK, tells Updates.
func (c *Client) answer(send func() error, refusal *statuspb.Status) error {
	if err := send(); err != nil {
		return err
	}
	if refusal == nil {
		c.notify()
	}
	return nil
}

// accept records a type's resources at version. Called with mu held.
func (c *Client) accept(typeURL, version string, resources map[string]proto.Message) {
	if c.state.Resources == nil {
		c.state = State{Resources: map[string]map[string]proto.Message{}, Versions: map[string]string{}}
	}
	c.state.Resources[typeURL] = resources
	c.state.Versions[typeURL] = version
	c.state.Last = version
	c.state.Accepted++
}

func (c *Client) notify() {
	select {
	case c.updates <- struct{}{}:
	default:
	}
}

// runDelta is Run over incremental xDS: every type is a wildcard
// subscription, and each response adds, replaces and removes resources of
// what the client holds; Check judges the type's resources as they would
// be after it.
func (c *Client) runDelta(ctx context.Context, conn grpc.ClientConnInterface) error {
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: c.NodeID}
	// A reconnect starts from nothing on the server's side: say what is
	// held, so only what changed is sent again.
	for _, t := range envoyxds.Types {
		req := &discoverygrpc.DeltaDiscoveryRequest{Node: node, TypeUrl: t, ResourceNamesSubscribe: []string{"*"}}
		c.mu.Lock()
		if held := c.resourceVersions[t]; len(held) > 0 {
			req.InitialResourceVersions = maps.Clone(held)
		}
		c.mu.Unlock()
		if err := stream.Send(req); err != nil {
			return err
		}
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		t := resp.GetTypeUrl()
		next := map[string]proto.Message{}
		c.mu.Lock()
		maps.Copy(next, c.state.Resources[t])
		c.mu.Unlock()
		versions := map[string]string{}
		for _, r := range resp.GetResources() {
			m, err := r.GetResource().UnmarshalNew()
			if err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
			next[r.GetName()] = m
			versions[r.GetName()] = r.GetVersion()
		}
		for _, name := range resp.GetRemovedResources() {
			delete(next, name)
		}
		req := &discoverygrpc.DeltaDiscoveryRequest{Node: node, TypeUrl: t, ResponseNonce: resp.GetNonce()}
		req.ErrorDetail = c.judge(t, next, func() {
			c.accept(t, resp.GetSystemVersionInfo(), next)
			c.keepVersions(t, versions, resp.GetRemovedResources())
		})
		if err := c.answer(func() error { return stream.Send(req) }, req.ErrorDetail); err != nil {
			return err
		}
	}
}

// keepVersions remembers the resource versions held, for a reconnect.
// Called with mu held.
func (c *Client) keepVersions(typeURL string, versions map[string]string, removed []string) {
	if c.resourceVersions == nil {
		c.resourceVersions = map[string]map[string]string{}
	}
	if c.resourceVersions[typeURL] == nil {
		c.resourceVersions[typeURL] = map[string]string{}
	}
	maps.Copy(c.resourceVersions[typeURL], versions)
	for _, n := range removed {
		delete(c.resourceVersions[typeURL], n)
	}
}

func resourceName(m proto.Message) string {
	if n, ok := m.(interface{ GetName() string }); ok && n.GetName() != "" {
		return n.GetName()
	}
	if n, ok := m.(interface{ GetClusterName() string }); ok {
		return n.GetClusterName()
	}
	return ""
}
