package l7proxy

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/xdsclient"
)

// Over both state-of-the-world and delta xDS, the server counts what the
// proxy acknowledged; an edit of one config sends (with delta) only that
// config's resources, edit after edit; and after the plugin restarts with the snapshot the
// proxy holds, the proxy's reconnect ends acknowledged again.
func TestAcknowledgementsAcrossReconnects(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			ref := func(n string) nodesv1alpha1.EnvoyConfigRef {
				return nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: "ns", Name: n}
			}
			build := func(aPort uint32) Snapshot {
				snap, errs := Build([]Config{
					{Ref: ref("a"), Generation: 1, Resources: app(t, "a", aPort)},
					{Ref: ref("b"), Generation: 1, Resources: app(t, "b", 10002)},
				}, nil)
				if len(errs) > 0 {
					t.Fatal(errs)
				}
				return snap
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			serve := func(l net.Listener, snap Snapshot) (*Server, context.CancelFunc) {
				srv := NewServer("node-1", logr.Discard())
				if err := srv.Set(t.Context(), snap); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = srv.Serve(ctx, l); close(done) }()
				return srv, func() { cancel(); <-done }
			}
			waitAcked := func(srv *Server, version string) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); srv.Report().Version != version; time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("version %s not acknowledged (report %+v)", version, srv.Report())
					}
				}
			}

			first := build(10001)
			srv, stop := serve(l, first)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := &xdsclient.Client{NodeID: "node-1", Delta: delta}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for ctx.Err() == nil { // reconnect, as Envoy does
					_ = c.Run(ctx, conn)
					time.Sleep(20 * time.Millisecond)
				}
			}()
			waitAcked(srv, first.Version)

			// Edits of a, more than the server keeps versions of: with delta
			// only a's listener is sent again, and the types that never
			// change still count as acknowledged.
			var second Snapshot
			for i := range keptVersions + 4 {
				before := c.State().Accepted
				second = build(uint32(10011 + i)) //nolint:gosec // small
				if err := srv.Set(t.Context(), second); err != nil {
					t.Fatal(err)
				}
				waitAcked(srv, second.Version)
				wantResponses := int64(len(first.Resources)) // SotW: every type again
				if delta {
					wantResponses = 1 // the listener type, with a's listener only
				} else {
					// The snapshot counts as served once the listener is
					// acknowledged (the other types carry the same
					// resources); the unchanged types' resends may still
					// be on their way.
					for deadline := time.Now().Add(10 * time.Second); !allAt(c.State(), second.Version); time.Sleep(time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatalf("edit %d: the client has versions %v", i, c.State().Versions)
						}
					}
				}
				if got := c.State().Accepted - before; got != wantResponses {
					t.Errorf("edit %d took %d responses, want %d", i, got, wantResponses)
				}
			}
			if _, ok := c.State().Resources[resource.ListenerType]["b-listener"]; !ok {
				t.Errorf("b's listener went missing: %v", c.State().Resources[resource.ListenerType])
			}

			// The plugin restarts with the snapshot the proxy has.
			stop()
			l2, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			srv2, stop2 := serve(l2, second)
			defer stop2()
			waitAcked(srv2, second.Version)
		})
	}
}

// An acknowledgement that arrives after the server dropped the snapshot it
// answers (more than keptVersions newer ones were set meanwhile) still
// counts, for a type that never changes again: the response's resources
// are named when it is sent.
func TestLateAcknowledgementOfAnUnchangedType(t *testing.T) {
	ref := nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: "ns", Name: "a"}
	build := func(port uint32) Snapshot {
		snap, errs := Build([]Config{{Ref: ref, Generation: 1, Resources: app(t, "a", port)}}, nil)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return snap
	}
	srv := NewServer("node-1", logr.Discard())
	if err := srv.Set(t.Context(), build(10001)); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The proxy holds its first cluster response back until the server
	// has moved on by more snapshots than it keeps.
	release := make(chan struct{})
	var held atomic.Bool
	c := &xdsclient.Client{NodeID: "node-1", Delta: true, Check: func(typeURL string, _ map[string]proto.Message) error {
		if typeURL == resource.ClusterType && held.CompareAndSwap(false, true) {
			<-release
		}
		return nil
	}}
	go func() { _ = c.Run(ctx, conn) }()
	for deadline := time.Now().Add(10 * time.Second); !held.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no cluster response arrived")
		}
	}
	var last Snapshot
	for i := range keptVersions + 4 { // only the listener changes
		last = build(uint32(10002 + i)) //nolint:gosec // small
		if err := srv.Set(t.Context(), last); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); srv.Report().Version != last.Version; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("version %s not acknowledged (report %+v)", last.Version, srv.Report())
		}
	}
}

// allAt says whether the client holds every type at version.
func allAt(s xdsclient.State, version string) bool {
	if len(s.Versions) == 0 {
		return false
	}
	for _, v := range s.Versions {
		if v != version {
			return false
		}
	}
	return true
}
