package lab_test

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// TestStandinLab brings up a 2-node lab with the stand-in network (the
// reference ptp + host-local plugins and static routes), so that the lab
// itself is tested apart from Plexus: pods scheduled, run and addressed,
// reachable across nodes and through a ClusterIP, the external client on
// the segment, and `down` removing every namespace, link, process and file,
// twice without complaint. The Plexus
// network is tested in test/e2e.
func TestStandinLab(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", CNI: "standin", Datapath: "standin"})
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 2, nil))
	if pods[0].Spec.NodeName == pods[1].Spec.NodeName {
		t.Fatalf("both pods on %s", pods[0].Spec.NodeName)
	}
	svc := labtest.Service(t, l, "echo")
	labtest.ReachAll(t, l, pods, pods)
	labtest.ReachesAllNodesThrough(t, l, &pods[0], svc, 2)
	clientOnSegment(t, l)

	if n := len(netnsOf(l.Options.Name)); n < 5 { // 2 nodes + 2 pods + the client
		t.Errorf("expected node and pod namespaces before down, got %d", n)
	}
	for range 2 {
		if err := lab.Down(context.Background(), l.StateRoot, l.Options.Name, os.Stderr); err != nil {
			t.Fatalf("down: %v", err)
		}
		if left := lab.Leftovers(l.StateRoot, l.Options.Name); len(left) > 0 {
			t.Errorf("left after down: %v", left)
		}
	}
}

func netnsOf(name string) []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// clientOnSegment checks the external client and the LB-IPAM pool `lab up`
// makes: ARP from the client finds exactly the node that has an address and
// nothing for an unused one (which also tests labtest's ARP helper), the
// client has no default route, and the pool covers the lab's range.
func clientOnSegment(t *testing.T, l *labtest.Lab) {
	t.Helper()
	node := l.Layout.NodeName(1)
	mac, err := l.NodeMAC(node)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.ARPReplies(l.Layout.NodeIP(1), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].String() != mac.String() {
		t.Errorf("ARP for %s from the client: replies %v, want exactly %s (%s eth0)", l.Layout.NodeIP(1), got, mac, node)
	}
	unused := netip.AddrFrom4([4]byte{198, 18, byte(l.Layout.Segment), 249})
	if got, err := l.ARPReplies(unused, 300*time.Millisecond); err != nil || len(got) != 0 {
		t.Errorf("ARP for unused %s: replies %v (%v), want none", unused, got, err)
	}
	if out, err := exec.Command("ip", "-n", l.ClientNetns(), "route", "show", "default").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("client %s has a default route: %q (%v)", l.ClientNetns(), out, err)
	}
	var pool ciliumv2.CiliumLoadBalancerIPPool
	if err := l.Cilium.Get(context.Background(), client.ObjectKey{Name: lab.LBPoolName}, &pool); err != nil {
		t.Fatalf("pool %s: %v", lab.LBPoolName, err)
	}
	first, last := l.Layout.LBPoolRange()
	if len(pool.Spec.Blocks) != 1 || pool.Spec.Blocks[0].Start != first.String() || pool.Spec.Blocks[0].Stop != last.String() {
		t.Errorf("pool %s blocks %+v, want %s-%s", lab.LBPoolName, pool.Spec.Blocks, first, last)
	}
}
