// Package xdsclient is a small ADS (state of the world) client that plays
// Envoy's part in tests and in the lab's stand-in proxy: it subscribes to
// every resource type, keeps what it was sent, and accepts (ACK) or refuses
// (NACK, with error_detail) each response as its Check says. It is a test
// fixture, not shipped.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/plexus-net/plexus/internal/envoyxds"
)

// State is what the client accepted: resources by type and name, and the
// version accepted per type.
type State struct {
	Resources map[string]map[string]proto.Message
	Versions  map[string]string
}

// Client is one ADS stream.
type Client struct {
	// NodeID is sent as node.id.
	NodeID string
	// Check, if set, judges each response (type URL and its resources by
	// name); an error refuses it.
	Check func(typeURL string, resources map[string]proto.Message) error

	mu      sync.Mutex
	state   State
	updates chan struct{}
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

// State returns a copy of what was accepted.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := State{Resources: map[string]map[string]proto.Message{}, Versions: map[string]string{}}
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
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: c.NodeID}
	for _, t := range envoyxds.Types {
		// Every type as a wildcard: the stand-in takes all it is given.
		if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
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
		req := &discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		var refusal error
		if c.Check != nil {
			refusal = c.Check(resp.GetTypeUrl(), got)
		}
		c.mu.Lock()
		if refusal != nil {
			req.VersionInfo = c.state.Versions[resp.GetTypeUrl()]
			req.ErrorDetail = &statuspb.Status{Code: 3, Message: refusal.Error()}
		} else {
			req.VersionInfo = resp.GetVersionInfo()
			if c.state.Resources == nil {
				c.state = State{Resources: map[string]map[string]proto.Message{}, Versions: map[string]string{}}
			}
			c.state.Resources[resp.GetTypeUrl()] = got
			c.state.Versions[resp.GetTypeUrl()] = resp.GetVersionInfo()
		}
		c.mu.Unlock()
		if err := stream.Send(req); err != nil {
			return err
		}
		if refusal == nil {
			select {
			case c.updates <- struct{}{}:
			default:
			}
		}
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
