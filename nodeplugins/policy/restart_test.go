package policy

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
)

// A plugin restart in the middle of traffic: an allowed connection keeps
// exchanging messages while the plugin is gone and while the next one
// adopts the pinned maps and links (no message is lost or late), and a
// denied port stays denied throughout.
func TestRestartDuringTrafficKeepsEnforcement(t *testing.T) {
	tp := policytest.New(t)
	pinDir := policytest.BPFFS(t)
	netnstest.Serve(t, tp.B, ":7070", func(c net.Conn) { _, _ = io.Copy(c, c) })

	spec := &nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: 2000, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{{Peers: "pa", Protocol: 6, Port: 7070, EndPort: 7070}}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{1000}}},
	}
	// start runs a plugin's enforcer, as the process would; stop ends it
	// and releases its handles, as the process's exit does.
	start := func(generation int64) (stop func()) {
		maps, err := datapath.Open(pinDir)
		if err != nil {
			t.Fatal(err)
		}
		e, stopEnforcer := nodeEnforcer(t, tp, maps)
		e.SetSpec(spec, generation)
		waitReport(t, e, func(r Report) bool { return r.Generation == generation && r.Entries > 0 })
		return func() {
			stopEnforcer()
			_ = maps.Close()
		}
	}
	stop := start(1)
	t.Cleanup(func() {
		if m, err := datapath.Open(pinDir); err == nil {
			_ = m.Unpin()
			_ = m.Close()
		}
	})

	var conn net.Conn
	if err := netnstest.Do(tp.A, func() (err error) {
		conn, err = net.DialTimeout("tcp4", policytest.IPB+":7070", time.Second)
		return err
	}); err != nil {
		t.Fatalf("the allowed connection: %v", err)
	}
	defer func() { _ = conn.Close() }()
	// Ping-pong every 10 ms until told to stop; any error or a reply later
	// than 200 ms is a break.
	stopTraffic := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		buf := make([]byte, 8)
		for i := 0; ; i++ {
			select {
			case <-stopTraffic:
				result <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
			msg := fmt.Sprintf("%08d", i)
			_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := io.WriteString(conn, msg); err != nil {
				result <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
				result <- fmt.Errorf("message %d: reply %q: %w", i, buf, err)
				return
			}
		}
	}()
	denied := policytest.Probe{From: tp.A, To: policytest.IPB, Port: "9090", Want: false}

	time.Sleep(200 * time.Millisecond)
	stop() // the plugin is gone
	policytest.Check(t, "no plugin running", denied)
	time.Sleep(300 * time.Millisecond)
	stop = start(2) // the next one adopts the pins
	policytest.Check(t, "after the restart", denied)
	time.Sleep(300 * time.Millisecond)
	close(stopTraffic)
	if err := <-result; err != nil {
		t.Errorf("the allowed connection broke across the restart: %v", err)
	}
	stop()
}
