package heartbeat

import nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"

// Credible tells which nodes' own status reports can be believed, from what
// every node reports it hears (views: node → live peers it reports) and whom
// it exchanges heartbeats with (peers: node → its peers). A node that was
// killed cannot clear its report, so a report counts only while another
// node still hears the reporter, or when the reporter has no other peer to
// ask.
func Credible(views, peers map[string][]string) map[string]bool {
	heard := map[string]bool{}
	for node, live := range views {
		for _, p := range live {
			if p != node {
				heard[p] = true
			}
		}
	}
	out := map[string]bool{}
	for node := range views {
		alone := true
		for _, p := range peers[node] {
			if p != node {
				alone = false
				break
			}
		}
		out[node] = heard[node] || alone
	}
	return out
}

// Report is what one node's per-node object says about heartbeats: whom the
// node hears alive (its status) and whom it should hear (its spec's peers).
type Report struct {
	Node  string
	Live  []string
	Peers []string
}

// CredibleReports is Credible over reports.
func CredibleReports(reports []Report) map[string]bool {
	views, peers := map[string][]string{}, map[string][]string{}
	for _, r := range reports {
		views[r.Node] = r.Live
		peers[r.Node] = r.Peers
	}
	return Credible(views, peers)
}

// ReportOf is the Report of a per-node object (L2Announcement, Egress):
// the node's name, its status's live peers and its spec's peers.
func ReportOf(node string, live []string, peers []nodesv1alpha1.L2Peer) Report {
	r := Report{Node: node, Live: live}
	for _, p := range peers {
		r.Peers = append(r.Peers, p.Node)
	}
	return r
}
