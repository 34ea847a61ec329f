package frontends

import (
	"io"
	"net"
	"strings"
	"testing"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/netnstest"
)

// A connection to a frontend that reaches the node goes to the node's own
// proxy port with the client's address intact, ahead of a Service DNAT
// (kube-proxy's, at dstnat) for the same address; without the frontend the
// Service DNAT has it again.
func TestGW45_RedirectKeepsTheClient(t *testing.T) {
	netnstest.RequireRoot(t)
	seg := netnstest.NewSegment(t, 77)
	node, nodeIP := seg.Attach("node", 11)
	client, clientIP := seg.Attach("cli", 50)
	const vip = "198.19.77.200"
	netnstest.Run(t, "ip", "-n", client, "route", "add", vip+"/32", "via", nodeIP.String())
	// The proxy answers with the client address it sees; "service" is
	// where Service load-balancing would have sent the connection.
	netnstest.Serve(t, node, ":10080", netnstest.AnswerRemoteHost)
	netnstest.Serve(t, node, ":10081", func(c net.Conn) { _, _ = io.WriteString(c, "service") })
	netnstest.Run(t, "ip", "netns", "exec", node, "nft", "add table ip kp; add chain ip kp pre { type nat hook prerouting priority -100; }; "+
		"add rule ip kp pre ip daddr "+vip+" tcp dport 80 dnat to "+nodeIP.String()+":10081")

	var tbl *Table
	if err := netnstest.Do(node, func() (err error) { tbl, err = New(); return err }); err != nil {
		t.Fatal(err)
	}
	fronts := []nodesv1alpha1.L7Frontend{
		{Address: vip, Port: 80, ProxyPort: 10080},
		{Address: "fd00::200", Port: 80, ProxyPort: 10080}, // IPv6: left to the Service
	}
	if err := tbl.Apply(fronts); err != nil {
		t.Fatal(err)
	}
	if got, err := netnstest.ReadFrom(client, vip+":80"); err != nil || got != clientIP.String() {
		t.Errorf("through the frontend the proxy saw %q (%v), want the client %s", got, err, clientIP)
	}
	if err := tbl.Apply(fronts); err != nil { // the same again: nothing to do
		t.Fatal(err)
	}
	listing := netnstest.Run(t, "ip", "netns", "exec", node, "nft", "list", "table", "ip", TableName)
	if strings.Count(listing, "redirect to :10080") != 1 {
		t.Errorf("want one redirect rule:\n%s", listing)
	}
	if err := tbl.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := netnstest.ReadFrom(client, vip+":80"); err != nil || got != "service" {
		t.Errorf("without the frontend: %q (%v), want Service load-balancing's answer", got, err)
	}
	if out, err := netnstest.Exec(node, "nft", "list", "table", "ip", TableName); err == nil {
		t.Errorf("the table is still there with no frontends:\n%s", out)
	}
}
