package kernel

import (
	"testing"

	"github.com/vishvananda/netlink"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/datapath/routes"
	"github.com/plexus-net/plexus/test/netlab"
	"github.com/plexus-net/plexus/test/netnstest"
)

const testVXLAN = netlab.VXLANDevice

func testConfig() Config {
	return Config{Device: "eth0", VXLANDevice: testVXLAN, VNI: 2, Port: 8472}
}

// apply computes node's desired state from nodes and applies it with a fresh
// Kernel (nothing in memory, as after a restart).
func apply(t *testing.T, node netlab.Node, mode routes.Mode, nodes []ciliumv2.CiliumNode) Changes {
	t.Helper()
	ch, err := tryApply(t, node, mode, nodes)
	if err != nil {
		t.Fatalf("%s: apply %s: %v", node.Name, mode, err)
	}
	return ch
}

func tryApply(t *testing.T, node netlab.Node, mode routes.Mode, nodes []ciliumv2.CiliumNode) (Changes, error) {
	t.Helper()
	d, err := routes.Compute(nodes, node.Name, mode)
	if err != nil {
		t.Fatal(err)
	}
	var ch Changes
	err = netnstest.Do(node.NS, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		ch, err = New(h, testConfig()).Apply(d)
		return err
	})
	return ch, err
}

// applyAll applies mode on every node but those in skip, which also drop out
// of the CiliumNodes.
func applyAll(t *testing.T, l *netlab.Lab, mode routes.Mode, skip ...string) {
	t.Helper()
	for _, n := range l.Nodes {
		if !netlab.Contains(skip, n.Name) {
			apply(t, n, mode, l.CiliumNodes(skip...))
		}
	}
}
