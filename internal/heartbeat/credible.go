package heartbeat

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
