// Package client is the protocol between the Plexus CNI plugin and the node's
// CNI agent: JSON over HTTP on a unix socket. The plugin is short-lived and
// runs for one CNI command; the agent owns every address decision.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultSocket is where the agent listens unless told otherwise.
const DefaultSocket = "/run/plexus/cni.sock"

// Paths of the agent's endpoints.
const (
	PathAllocate = "/v1/allocate"
	PathRelease  = "/v1/release"
	PathCheck    = "/v1/check"
	PathStatus   = "/v1/status"
)

// Key names one pod interface.
type Key struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// AllocateRequest asks for the addresses of a pod interface.
type AllocateRequest struct {
	Key
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID,omitempty"`
}

// IP is one pod address: Address carries the node CIDR's prefix length
// ("10.0.1.5/24"); Gateway is the CIDR's gateway ("10.0.1.1"), empty for
// CIDRs too small to have one.
type IP struct {
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
}

// Allocation is the answer to allocate and check.
type Allocation struct {
	Key
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	PodUID       string `json:"podUID,omitempty"`
	Pool         string `json:"pool"`
	IPs          []IP   `json:"ips"`
}

// Status is whether the agent can hand out addresses.
type Status struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// Error is the body of every non-2xx answer. Code is a CNI error code
// (types.Err*), so the plugin passes it on unchanged.
type Error struct {
	Code    uint   `json:"code"`
	Message string `json:"message"`
	// HTTPStatus is the status the answer came with (not sent).
	HTTPStatus int `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// IsNotFound reports whether err is the agent's "no such allocation".
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.HTTPStatus == http.StatusNotFound
}

// Client talks to the agent.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the agent on socket ("" means DefaultSocket).
// timeout bounds each call; an allocation may wait for the node to receive a
// CIDR, so it should exceed the agent's own wait.
func New(socket string, timeout time.Duration) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Client{
		socket: socket,
		http: &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", socket)
				},
			},
		},
	}
}

// Allocate returns the addresses of a pod interface (the same ones when
// asked again).
func (c *Client) Allocate(ctx context.Context, r AllocateRequest) (*Allocation, error) {
	var out Allocation
	return &out, c.call(ctx, http.MethodPost, PathAllocate, r, &out)
}

// Release gives the addresses of k back; releasing nothing succeeds.
func (c *Client) Release(ctx context.Context, k Key) error {
	return c.call(ctx, http.MethodPost, PathRelease, k, nil)
}

// Check returns the allocation of k; IsNotFound(err) when there is none.
func (c *Client) Check(ctx context.Context, k Key) (*Allocation, error) {
	var out Allocation
	return &out, c.call(ctx, http.MethodPost, PathCheck, k, &out)
}

// Status asks whether the agent is ready.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	return &out, c.call(ctx, http.MethodGet, PathStatus, nil, &out)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://plexus-cni-agent"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("plexus CNI agent at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("plexus CNI agent at %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{HTTPStatus: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("plexus CNI agent answered %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("plexus CNI agent sent an answer that is not JSON: %w", err)
	}
	return nil
}
