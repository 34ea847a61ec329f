package l2announcer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/test/arptest"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestPluginReadsItsL2AnnouncementAndWritesStatus runs the plugin (the
// announcer in a node namespace, fed by the API wiring) against a real API
// server: it reads its own L2Announcement, answers ARP, writes announcing,
// livePeers, addressCount and Ready into status, writes nothing while
// nothing changes, and reports an address it cannot announce (row A25: the
// state table is the status).
func TestA25_PluginReadsItsL2AnnouncementAndWritesStatus(t *testing.T) {
	testenv.Require(t, env)
	netnstest.RequireRoot(t)
	ctx := t.Context()
	c := env.Client

	seg := netnstest.NewSegment(t, 40)
	nodeNS, nodeIP := seg.Attach("l2n", 1)
	clientNS, _ := seg.Attach("l2c", 200)
	name := netnstest.Name("l2node-")
	other := name + "-b"

	obj := &nodesv1alpha1.L2Announcement{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: nodesv1alpha1.L2AnnouncementSpec{
			Peers: []nodesv1alpha1.L2Peer{{Node: name, Address: nodeIP.String()}, {Node: other, Address: "198.18.40.2"}},
			Addresses: []nodesv1alpha1.L2Address{
				{IP: "198.18.40.100", Services: []string{"default/web"}, Candidates: []string{name, other}},
				{IP: "198.18.40.101", Services: []string{"default/db"}, Interfaces: []string{"^eth"}, Candidates: []string{other, name}},
			},
		},
	}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, obj) })
	// Another node's object, which this plugin must neither read nor touch.
	foreign := &nodesv1alpha1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: other}}
	if err := c.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, foreign) })

	a, err := l2announce.New(l2announce.Config{
		NodeName:    name,
		InNamespace: func(f func() error) error { return netnstest.Do(nodeNS, f) },
		Log:         testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Count status writes, including ones the server finds change nothing.
	var writes atomic.Int64
	env.RunManager(t, func(mgr ctrl.Manager) error {
		counting := countingClient{Client: mgr.GetClient(), writes: &writes}
		return (&Plugin{Client: counting, NodeName: name, Announcer: a}).SetupWithManager(mgr)
	})

	get := func() *nodesv1alpha1.L2Announcement {
		var o nodesv1alpha1.L2Announcement
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &o); err != nil {
			t.Fatal(err)
		}
		return &o
	}
	wantMessage := "announcing 2 of 2 addresses; peers alive: " + name
	testenv.Eventually(t, 10*time.Second, "status: both addresses announced on eth0, Ready", func() error {
		o := get()
		st := o.Status
		var ips []string
		for _, an := range st.Announcing {
			if !slices.Equal(an.Interfaces, []string{"eth0"}) || an.Since.IsZero() {
				return fmt.Errorf("announcing %+v", an)
			}
			ips = append(ips, an.IP)
		}
		ready := meta.FindStatusCondition(st.Conditions, conditions.TypeReady)
		switch {
		case !slices.Equal(ips, []string{"198.18.40.100", "198.18.40.101"}):
			return fmt.Errorf("announcing %v", ips)
		case !slices.Equal(st.LivePeers, []string{name}):
			return fmt.Errorf("livePeers %v", st.LivePeers)
		case st.AddressCount != 2 || st.ObservedGeneration != o.Generation:
			return fmt.Errorf("addressCount %d, observedGeneration %d (generation %d)", st.AddressCount, st.ObservedGeneration, o.Generation)
		case ready == nil || ready.Status != metav1.ConditionTrue || ready.Message != wantMessage:
			return fmt.Errorf("Ready %+v, want True %q", ready, wantMessage)
		}
		return nil
	})

	// What status says is what the segment sees.
	ac, err := arptest.Open(clientNS, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	nodeMAC := netnstest.MAC(t, nodeNS, "eth0")
	for _, ip := range []string{"198.18.40.100", "198.18.40.101"} {
		macs, err := ac.Ask(netip.MustParseAddr(ip), 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got := arptest.Distinct(macs); !slices.Equal(got, []string{nodeMAC}) {
			t.Errorf("%s answered by %v, want %s", ip, got, nodeMAC)
		}
	}

	// Nothing changes: no writes, through heartbeats (100 ms), interface
	// rescans (2 s) and GARP bursts.
	rv, before := get().ResourceVersion, writes.Load()
	time.Sleep(2500 * time.Millisecond)
	if o, n := get(), writes.Load(); o.ResourceVersion != rv || n != before {
		t.Errorf("status written with nothing changed: %d writes, resourceVersion %s -> %s, status %+v", n-before, rv, o.ResourceVersion, o.Status)
	}
	if before > 3 {
		// While joining: one with the absent peer presumed alive (a new
		// peer is, for --dead-after), one when the presumption ends; one
		// once announcing. More means writes that change nothing (e.g. a
		// timestamp finer than status can hold).
		t.Errorf("%d status writes from start to steady state, want at most 3", before)
	}
	if f := (&nodesv1alpha1.L2Announcement{}); c.Get(ctx, client.ObjectKey{Name: other}, f) == nil && len(f.Status.Conditions) > 0 {
		t.Errorf("the plugin wrote another node's status: %+v", f.Status)
	}

	// A new address no interface matches: Ready False naming it, for the
	// new generation; the others are still announced.
	o := get()
	o.Spec.Addresses = append(o.Spec.Addresses, nodesv1alpha1.L2Address{
		IP: "198.18.40.102", Services: []string{"default/x"}, Interfaces: []string{"^bond0$"}, Candidates: []string{name},
	})
	if err := c.Update(ctx, o); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "Ready False naming the unannounceable address", func() error {
		o := get()
		ready := meta.FindStatusCondition(o.Status.Conditions, conditions.TypeReady)
		switch {
		case o.Status.ObservedGeneration != o.Generation || o.Status.AddressCount != 3:
			return fmt.Errorf("observedGeneration %d (generation %d), addressCount %d", o.Status.ObservedGeneration, o.Generation, o.Status.AddressCount)
		case ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != l2announce.ReasonError:
			return fmt.Errorf("Ready %+v", ready)
		case !strings.Contains(ready.Message, "address 198.18.40.102: no interface matches ^bond0$") ||
			!strings.HasSuffix(ready.Message, "announcing 2 of 3 addresses; peers alive: "+name):
			return fmt.Errorf("Ready message %q", ready.Message)
		case len(o.Status.Announcing) != 2:
			return errors.New("announcing changed")
		}
		return nil
	})
}

// countingClient counts status writes, including ones the server finds
// change nothing (they cost an API request all the same).
type countingClient struct {
	client.Client
	writes *atomic.Int64
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingWriter{SubResourceWriter: c.Client.Status(), writes: c.writes}
}

type countingWriter struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (w countingWriter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	w.writes.Add(1)
	return w.SubResourceWriter.Patch(ctx, o, p, opts...)
}

func (w countingWriter) Update(ctx context.Context, o client.Object, opts ...client.SubResourceUpdateOption) error {
	w.writes.Add(1)
	return w.SubResourceWriter.Update(ctx, o, opts...)
}
