package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
	"github.com/plexus-net/plexus/test/testenv"
)

// The enforcer finds the pods' veths by route, takes their identities
// from the cluster's addresses, and enforces the NodePolicy; the report
// counts what it programmed; no NodePolicy means no enforcement; a pod
// gone loses its programs.
func TestEnforcerProgramsTheNode(t *testing.T) {
	tp := policytest.New(t)
	maps, err := datapath.Open(policytest.BPFFS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = maps.Unpin(); _ = maps.Close() })
	e, stop := nodeEnforcer(t, tp, maps)
	t.Cleanup(stop)
	a := netip.MustParseAddr(policytest.IPA)
	e.SetSpec(&nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: 2000, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{{Peers: "pa", Protocol: 6, Port: 8080, EndPort: 8080}}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{1000}}},
	}, 3)
	waitReport(t, e, func(r Report) bool { return r.Generation == 3 && r.Entries > 0 })
	if r := e.Report(); r.Identities != 1 || len(r.Problems) != 0 {
		t.Errorf("report %+v", r)
	}
	policytest.Check(t, "enforced",
		policytest.Probe{From: tp.A, To: policytest.IPB, Port: "8080", Want: true},
		policytest.Probe{From: tp.A, To: policytest.IPB, Port: "9090", Want: false},
		policytest.Probe{From: tp.Ext, To: policytest.IPB, Port: "8080", Want: false})

	// A host policy puts the programs on the node's device too, and is
	// enforced there: nothing may reach the node from outside; gone, the
	// device is left alone again.
	withHost := &nodesv1alpha1.NodePolicySpec{Host: &nodesv1alpha1.DirectionalPolicy{Policies: []string{"CiliumClusterwideNetworkPolicy/lock-down"},
		Ingress: nodesv1alpha1.PolicyDirection{Enforced: true}}}
	policytest.Check(t, "before the host policy", policytest.Probe{From: tp.Ext, To: policytest.NodeExt, Port: "icmp", Want: true})
	e.SetSpec(withHost, 4)
	waitReport(t, e, func(r Report) bool { return r.Generation == 4 })
	if r := e.Report(); len(r.Problems) != 0 {
		t.Errorf("a host policy: report %+v, want no problems", r)
	}
	if attached, err := maps.Attached(); err != nil || !slices.Contains(attached, hostDevice) {
		t.Errorf("attached %v (%v), want %s among them", attached, err, hostDevice)
	}
	policytest.Check(t, "host policy",
		policytest.Probe{From: tp.Ext, To: policytest.NodeExt, Port: "icmp", Want: false},
		policytest.Probe{From: tp.Ext, To: policytest.IPA, Port: "8080", Want: true}) // forwarded to a pod: not the host's

	// The devices cannot be listed for a while: what is attached stays.
	devicesFail.Store(true)
	e.SetSpec(withHost, 5)
	waitReport(t, e, func(r Report) bool { return r.Generation == 5 })
	if r := e.Report(); len(r.Problems) != 1 {
		t.Errorf("devices not found: report %+v, want the lookup named", r)
	}
	policytest.Check(t, "host policy while its devices cannot be listed", policytest.Probe{From: tp.Ext, To: policytest.NodeExt, Port: "icmp", Want: false})
	devicesFail.Store(false)

	e.SetSpec(nil, 0)
	waitReport(t, e, func(r Report) bool { return r.Entries == 0 })
	policytest.Check(t, "no NodePolicy", policytest.Probe{From: tp.A, To: policytest.IPB, Port: "9090", Want: true})

	e.SetPods([]LocalPod{{Name: "ns/a", IPs: []netip.Addr{a}}})
	testenv.Eventually(t, 5*time.Second, "programs only on the remaining pod's veth", func() error {
		attached, err := maps.Attached()
		if err != nil {
			return fmt.Errorf("reading the pins: %w", err)
		}
		if !slices.Equal(attached, []string{policytest.VethA}) {
			return fmt.Errorf("attached %v, want only %s", attached, policytest.VethA)
		}
		return nil
	})

	// A pod whose address has no identity yet is reported, not guessed.
	e.SetPods([]LocalPod{{Name: "ns/a", IPs: []netip.Addr{a}}, {Name: "ns/new", IPs: []netip.Addr{netip.MustParseAddr("10.240.0.99")}}})
	waitReport(t, e, func(r Report) bool { return len(r.Problems) == 1 })
}

// hostDevice is the node's device towards the outside host in
// policytest's topology.
const hostDevice = "plxphx"

// devicesFail makes the enforcer's device lookup fail.
var devicesFail atomic.Bool

// nodeEnforcer runs an enforcer of maps on tp's node, as the plugin
// does, with its device towards the outside as the host device, fed tp's two pods (ns/a with identity 1000, ns/b with 2000); stop
// ends it.
func nodeEnforcer(t testing.TB, tp *policytest.Topology, maps *datapath.Maps) (e *Enforcer, stop func()) {
	e = NewEnforcer(maps, RouteVeth, []netip.Addr{netip.MustParseAddr(policytest.NodeIP), netip.MustParseAddr(policytest.NodeExt)}, logr.Discard())
	named := NamedDevices([]string{hostDevice})
	e.HostDevices = func() (map[string]int, error) {
		if devicesFail.Load() {
			return nil, errors.New("netlink dump interrupted")
		}
		return named()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- netnstest.Do(tp.Node, func() error { return e.Run(ctx) }) }()
	a, b := netip.MustParseAddr(policytest.IPA), netip.MustParseAddr(policytest.IPB)
	e.SetAddresses(map[netip.Addr]uint32{a: 1000, b: 2000})
	e.SetPods([]LocalPod{{Name: "ns/a", IPs: []netip.Addr{a}}, {Name: "ns/b", IPs: []netip.Addr{b}}})
	return e, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("enforcer: %v", err)
		}
	}
}

func waitReport(t *testing.T, e *Enforcer, ok func(Report) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !ok(e.Report()) {
		select {
		case <-e.Reports():
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("report %+v", e.Report())
		}
	}
}
