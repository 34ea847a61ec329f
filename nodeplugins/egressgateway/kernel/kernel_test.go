package kernel

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/test/netnstest"
)

// TestE3_SteerAndSNAT: node-1 steers its pod's packets to the egress IP held by
// node-2, which translates them; the external server sees the egress IP and
// the exchange completes (its reply can only come back translated).
func TestE3_SteerAndSNAT(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.nodes[1], l.nodes[2]
	l.requireUnreachable(t, "before any state (no route back to the pod)")

	k1, k2 := kernelIn(t, n1), kernelIn(t, n2)
	steering := State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{steerVia(egressIP, podTo(extIP))}}
	gateway := State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{snatTo(egressIP, podTo(extIP))}}
	apply(t, n1, k1, steering)
	apply(t, n2, k2, gateway)
	l.requireSeenAs(t, egressIP)

	if n := packets(t, n1, "steer_0"); n == 0 {
		t.Errorf("node-1: steer_0 counted no packets")
	}
	if n := packets(t, n2, "snat_0"); n == 0 {
		t.Errorf("node-2: snat_0 counted no connections")
	}
	rules := netnstest.Run(t, "ip", "-n", n1, "rule", "show", "priority", "100")
	want := "fwmark 0x10000/0xfff0000 lookup 2001 proto 185"
	if !strings.Contains(rules, want) {
		t.Errorf("node-1 rules: want %q in\n%s", want, rules)
	}
	route := netnstest.Run(t, "ip", "-n", n1, "route", "show", "table", "2001")
	if !strings.Contains(route, "default via "+egressIP+" dev eth0 proto 185") {
		t.Errorf("node-1 table 2001: %s", route)
	}
	for _, ns := range []string{n1, n2} {
		for key, want := range map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.default.send_redirects": "0"} {
			if got := strings.TrimSpace(netnstest.Run(t, "ip", "netns", "exec", ns, "sysctl", "-n", key)); got != want {
				t.Errorf("%s: %s = %s, want %s", ns, key, got, want)
			}
		}
	}

	// Replacing the tables keeps established connections: their conntrack
	// entries, NAT binding included, are not the table's.
	var conn net.Conn
	if err := netnstest.Do(l.pod, func() (err error) {
		conn, err = net.DialTimeout("tcp4", net.JoinHostPort(extIP, "7"), time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := roundTrip(conn, "before"); err != nil {
		t.Fatal(err)
	}
	other := steerVia(egressIP, podTo("198.19.0.0/16"))
	apply(t, n1, k1, State{ClusterCIDRs: clusterCIDRs, Steers: append([]Steer{other}, steering.Steers...)})
	apply(t, n2, k2, State{ClusterCIDRs: clusterCIDRs, SNATs: append([]SNAT{snatTo(egressIP2, podTo("198.19.0.0/16"))}, gateway.SNATs...)})
	if err := roundTrip(conn, "after"); err != nil {
		t.Fatalf("connection broken by replacing the tables: %v", err)
	}
	apply(t, n1, k1, steering)
	apply(t, n2, k2, gateway)
	if err := roundTrip(conn, "back"); err != nil {
		t.Fatalf("connection broken by replacing the tables again: %v", err)
	}

	// Idempotent: the same State again writes nothing.
	before1, before2 := owned(t, n1), owned(t, n2)
	w1, w2 := k1.Writes(), k2.Writes()
	apply(t, n1, k1, steering)
	apply(t, n2, k2, gateway)
	if k1.Writes() != w1 || k2.Writes() != w2 {
		t.Errorf("second apply wrote: node-1 %d, node-2 %d", k1.Writes()-w1, k2.Writes()-w2)
	}
	if after := owned(t, n1); after != before1 {
		t.Errorf("node-1 changed by a second apply:\n%s\n---\n%s", before1, after)
	}
	if after := owned(t, n2); after != before2 {
		t.Errorf("node-2 changed by a second apply:\n%s\n---\n%s", before2, after)
	}

	// A restarted process replaces the table once and adopts the rest.
	fresh := kernelIn(t, n1)
	apply(t, n1, fresh, steering)
	if fresh.Writes() != 1 {
		t.Errorf("restart: %d writes, want 1 (the table)", fresh.Writes())
	}
	l.requireSeenAs(t, egressIP)

	// Someone flushes the ruleset: the next pass puts the table back.
	netnstest.Run(t, "ip", "netns", "exec", n1, "nft", "flush", "ruleset")
	apply(t, n1, fresh, steering)
	l.requireSeenAs(t, egressIP)

	// Nothing to do leaves nothing of ours; Clear too.
	apply(t, n1, fresh, State{ClusterCIDRs: clusterCIDRs})
	clearIn(t, n2, k2)
	for _, ns := range []string{n1, n2} {
		if got := owned(t, ns); got != "" {
			t.Errorf("left behind in %s:\n%s", ns, got)
		}
	}
	l.requireUnreachable(t, "after clearing")
}

// TestNoICMPRedirects: conf/all/send_redirects=0 does not silence an
// interface whose own send_redirects is 1 (the kernel ORs the two), so the
// table's output chain drops the redirects. The external host routes the pod
// range via node-2, which forwards out of the link it received on: the
// textbook redirect.
func TestNoICMPRedirects(t *testing.T) {
	l := newLab(t)
	n2 := l.nodes[2]
	netnstest.Run(t, "ip", "-n", l.ext, "route", "add", podCIDR, "via", nodeIP(2))
	netnstest.Run(t, "ip", "netns", "exec", n2, "sysctl", "-qw",
		"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=1")
	netnstest.Run(t, "ip", "netns", "exec", l.ext, "nft", "add table ip probe; add chain ip probe in { type filter hook input priority 0; }; add rule ip probe in icmp type redirect counter")
	received := func() int {
		out := netnstest.Run(t, "ip", "netns", "exec", l.ext, "nft", "list", "table", "ip", "probe")
		m := counterRE.FindStringSubmatch(out)
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// poke sends a datagram from the external host to the pod, always from
	// the same port: from the second one on, node-2's conntrack entry for
	// the flow has its NAT done (a null binding), and the NAT core lets the
	// redirect through (while a flow's NAT is not done, or when the flow is
	// translated, the NAT core drops its redirects itself).
	var sock *net.UDPConn
	if err := netnstest.Do(l.ext, func() (err error) {
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4242})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	pod := &net.UDPAddr{IP: net.ParseIP(podIP), Port: 9}
	poke := func() {
		netnstest.Run(t, "ip", "-n", l.ext, "route", "flush", "cache")
		if _, err := sock.WriteToUDP([]byte("x"), pod); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // past node-2's redirect rate limit
	}
	for i := 0; i < 20 && received() == 0; i++ {
		poke()
	}
	if received() == 0 {
		t.Fatal("without the table, node-2 sent no redirect: the check below would prove nothing")
	}

	k2 := kernelIn(t, n2)
	apply(t, n2, k2, State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{snatTo(egressIP, podTo(extIP))}})
	netnstest.Run(t, "ip", "netns", "exec", n2, "sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=1")
	before := received()
	for range 4 {
		poke()
	}
	if got := received() - before; got != 0 {
		t.Errorf("the external host received %d redirects with the table in place", got)
	}
	if n := packets(t, n2, "output"); n == 0 {
		t.Errorf("the output chain dropped no redirect")
	}
}

// TestE10_E11_NotSteered: excluded and cluster destinations keep the pod's path
// and address, even with a gateway ready to translate everything.
func TestE10_E11_NotSteered(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.nodes[1], l.nodes[2]
	// Unsteered traffic can return directly now, with the pod's address.
	netnstest.Run(t, "ip", "-n", l.ext, "route", "add", podCIDR, "via", nodeIP(1))
	k1, k2 := kernelIn(t, n1), kernelIn(t, n2)
	apply(t, n2, k2, State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{snatTo(egressIP, podTo("0.0.0.0/0"))}})

	everything := steerVia(egressIP, podTo("0.0.0.0/0"))
	apply(t, n1, k1, State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{everything}})
	l.requireSeenAs(t, egressIP)

	excluded := everything
	excluded.Excluded = prefixes("198.18.40.0/25", extIP, "198.18.40.248/29") // overlapping on purpose
	apply(t, n1, k1, State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{excluded}})
	l.requireSeenAs(t, podIP)
	if !strings.Contains(netnstest.Run(t, "ip", "netns", "exec", n1, "nft", "list", "set", "ip", TableName, "steer_0_excl"),
		"elements = { 198.18.40.0/25, 198.18.40.248/29 }") {
		t.Errorf("excluded prefixes not merged")
	}

	inCluster := State{ClusterCIDRs: append(prefixes(extIP), clusterCIDRs...), Steers: []Steer{everything}}
	apply(t, n1, k1, inCluster)
	l.requireSeenAs(t, podIP)
	if n := packets(t, n1, "steer_0"); n != 0 {
		t.Errorf("steer_0 counted %d packets to the cluster", n)
	}
}

// TestE14_E19_Drop: a dropping Steer drops on the node, a dropping SNAT on the
// gateway; the first matching SNAT wins.
func TestE14_E19_Drop(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.nodes[1], l.nodes[2]
	// A leaked packet would come back with the pod's address.
	netnstest.Run(t, "ip", "-n", l.ext, "route", "add", podCIDR, "via", nodeIP(1))
	l.requireSeenAs(t, podIP)
	k1, k2 := kernelIn(t, n1), kernelIn(t, n2)

	apply(t, n1, k1, State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{{Match: podTo(extIP), Drop: true}}})
	l.requireUnreachable(t, "dropping Steer")
	if n := packets(t, n1, "steer_0"); n == 0 {
		t.Errorf("steer_0 dropped nothing")
	}

	apply(t, n1, k1, State{ClusterCIDRs: clusterCIDRs, Steers: []Steer{steerVia(egressIP, podTo(extIP))}})
	translate := snatTo(egressIP, podTo(extIP))
	dropAll := SNAT{Match: podTo("0.0.0.0/0"), Drop: true}
	apply(t, n2, k2, State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{translate, dropAll}})
	l.requireSeenAs(t, egressIP)

	apply(t, n2, k2, State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{dropAll, translate}})
	l.requireUnreachable(t, "dropping SNAT first")
	if n := packets(t, n2, "snat_0_filter"); n == 0 {
		t.Errorf("snat_0_filter dropped nothing")
	}
}

// TestChangeVia: changing the next hop changes the path at once and leaves
// no stale rule or route; of two Steers, the first that matches wins.
func TestChangeVia(t *testing.T) {
	l := newLab(t)
	n1 := l.nodes[1]
	for i, egress := range map[int]string{2: egressIP, 3: egressIP2} {
		apply(t, l.nodes[i], kernelIn(t, l.nodes[i]), State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{snatTo(egress, podTo("0.0.0.0/0"))}})
	}
	k1 := kernelIn(t, n1)
	// rules is node-1's rules and routes of ours, a line each, spaces
	// normalised.
	rules := func() string {
		out := netnstest.Run(t, "ip", "-n", n1, "rule", "show", "priority", "100") +
			netnstest.Run(t, "ip", "-n", n1, "route", "show", "table", "all", "proto", "185")
		var lines []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
		return strings.Join(lines, "\n")
	}
	steer := func(steers ...Steer) { apply(t, n1, k1, State{ClusterCIDRs: clusterCIDRs, Steers: steers}) }

	steer(steerVia(egressIP, podTo(extIP)))
	l.requireSeenAs(t, egressIP)
	steer(steerVia(egressIP2, podTo(extIP)))
	l.requireSeenAs(t, egressIP2)
	one := "100: from all fwmark 0x10000/0xfff0000 lookup 2001 proto 185\n" +
		"default via " + egressIP2 + " dev eth0 table 2001"
	if got := rules(); got != one {
		t.Errorf("after changing Via:\n%s\nwant:\n%s", got, one)
	}

	steer(steerVia(egressIP2, podTo(extIP)), steerVia(egressIP, podTo("0.0.0.0/0")))
	l.requireSeenAs(t, egressIP2)
	if got := rules(); !strings.Contains(got, "lookup 2002") || !strings.Contains(got, "default via "+egressIP+" dev eth0 table 2002") {
		t.Errorf("two next hops:\n%s", got)
	}
	steer(steerVia(egressIP, podTo("0.0.0.0/0")), steerVia(egressIP2, podTo(extIP)))
	l.requireSeenAs(t, egressIP)
	// An excluded destination falls through to the next Steer.
	skipExt := steerVia(egressIP2, podTo("0.0.0.0/0"))
	skipExt.Excluded = prefixes(extIP)
	steer(skipExt, steerVia(egressIP, podTo(extIP)))
	l.requireSeenAs(t, egressIP)

	steer(steerVia(egressIP2, podTo(extIP)))
	l.requireSeenAs(t, egressIP2)
	if got := rules(); got != one {
		t.Errorf("back to one next hop:\n%s\nwant:\n%s", got, one)
	}
}

// A standby candidate has the gateway's SNAT too (so that it translates
// from the first packet after it takes over), and steers its own pods to
// the holder: those packets must leave untranslated, or the holder would
// forward them with the egress IP already as their source and never see the
// replies as its own.
func TestStandbyDoesNotTranslateWhatItSteers(t *testing.T) {
	l := newLab(t)
	n1, n3 := l.nodes[1], l.nodes[3]
	apply(t, n3, kernelIn(t, n3), State{ClusterCIDRs: clusterCIDRs, SNATs: []SNAT{snatTo(egressIP2, podTo(extIP))}})
	apply(t, n1, kernelIn(t, n1), State{ClusterCIDRs: clusterCIDRs,
		Steers: []Steer{steerVia(egressIP2, podTo(extIP))},
		SNATs:  []SNAT{snatTo(egressIP2, podTo(extIP))}})
	l.requireSeenAs(t, egressIP2)
	if n := packets(t, n1, "snat_0"); n != 0 {
		t.Errorf("node-1 translated %d steered packets", n)
	}
	if n := packets(t, n3, "snat_0"); n == 0 {
		t.Errorf("node-3 (the holder) translated nothing")
	}
}
