package lab_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/plexus-net/plexus/internal/lab"
	"github.com/plexus-net/plexus/internal/lab/labtest"
)

// TestStandinLab brings up a 2-node lab with the stand-in network (the
// reference ptp + host-local plugins and static routes), so that the lab
// itself is tested apart from Plexus: pods scheduled, run and addressed,
// reachable across nodes and through a ClusterIP, and `down` removing every
// namespace, link, process and file, twice without complaint. The Plexus
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

	if n := len(netnsOf(l.Options.Name)); n < 4 { // 2 nodes + 2 pods
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
