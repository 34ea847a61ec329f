package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// The L2 announcements tests run on one 3-node lab (native routing,
// cluster-pool) with the plexus-l2announcer node plugin on every node and
// the lab's external client on the segment. Subtests are named after the
// rows of the L2 checklist (spec §8.5) they cover and run in order: each
// leaves the lab as the next expects it.

const (
	l2Plugin = lab.L2AnnouncerNode
	// l2Condition is the Service condition naming the announcing node.
	l2Condition = "plexus.dev/L2Announced"
	// failoverBound is how long a test lets an address take to move to
	// another node; the design's target is well under a second (the
	// benchmark measures it), this leaves room for a loaded machine.
	failoverBound = 5 * time.Second
	// arpWait is how long one ARP probe collects replies: on a bridge
	// between namespaces they come within a millisecond.
	arpWait = 300 * time.Millisecond
)

func TestL2Announcements(t *testing.T) {
	l := labtest.Start(t, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	for i := 1; i <= 3; i++ {
		if n := l.Layout.NodeName(i); !l.Running(n, l2Plugin) {
			t.Fatalf("%s does not run on %s: the lab did not start it (see its output above)", l2Plugin, n)
		}
	}
	ctx := context.Background()
	pods := labtest.Deploy(t, l, labtest.Echo("echo", 3, nil))
	labtest.LoadBalancerService(t, l, "echo", "echo")
	vip := l.LoadBalancerIP(t, "echo", time.Minute)
	macs, err := l.NodeByMAC()
	if err != nil {
		t.Fatal(err)
	}
	podNames := func() []string {
		var out []string
		for _, p := range pods {
			out = append(out, p.Name)
		}
		return out
	}()

	t.Run("A3_AddressFromTheLabPool", func(t *testing.T) {
		first, last := l.Layout.LBPoolRange()
		if vip.Less(first) || last.Less(vip) {
			t.Fatalf("Service address %s outside pool %s (%s-%s)", vip, lab.LBPoolName, first, last)
		}
	})

	t.Run("A2_NoPolicyNoAnnouncement", func(t *testing.T) {
		// Give a (wrong) announcer time to act before asserting silence.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if got := arp(t, l, vip); len(got) != 0 {
				t.Fatalf("ARP for %s answered without a policy by %v", vip, nodesOf(got, macs))
			}
		}
		leases, err := l.Client.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, le := range leases.Items {
			if strings.HasPrefix(le.Name, "cilium-l2announce-") {
				t.Errorf("lease %s/%s exists", le.Namespace, le.Name)
			}
		}
		var anns nodesv1alpha1.L2AnnouncementList
		if err := l.Cilium.List(ctx, &anns); err != nil {
			t.Fatal(err)
		}
		if len(anns.Items) != 0 {
			t.Errorf("%d L2Announcements without a policy", len(anns.Items))
		}
	})

	policy := &ciliumv2alpha1.CiliumL2AnnouncementPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "lab"},
		Spec:       ciliumv2alpha1.L2AnnouncementPolicySpec{Interfaces: []string{"^eth0$"}},
	}
	t.Run("A5_NoAddressTypeAnnouncesNothing", func(t *testing.T) {
		if err := l.Cilium.Create(ctx, policy); err != nil {
			t.Fatal(err)
		}
		l.EventuallyIn(t, 30*time.Second, "policy Ready=False for no address type", func() error {
			return policyCondition(l, policy.Name, "Ready", metav1.ConditionFalse)
		})
		for range 5 {
			if got := arp(t, l, vip); len(got) != 0 {
				t.Fatalf("policy with loadBalancerIPs and externalIPs unset: %s answered by %v", vip, nodesOf(got, macs))
			}
		}
	})

	var announcer string
	t.Run("A3_A14_ExactlyOneNodeAnswersARP", func(t *testing.T) {
		if err := l.Cilium.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			t.Fatal(err)
		}
		policy.Spec.LoadBalancerIPs = true
		if err := l.Cilium.Update(ctx, policy); err != nil {
			t.Fatal(err)
		}
		announcer = stableAnnouncer(t, l, "echo", vip, macs, nil)
		// A14: the same single node on every probe.
		for i := range 10 {
			if got := nodesOf(arpAsClient(t, l, vip), macs); len(got) != 1 || got[0] != announcer {
				t.Fatalf("probe %d: ARP for %s answered by %v, want only %s", i, vip, got, announcer)
			}
		}
	})
	if announcer == "" {
		t.FailNow()
	}

	t.Run("A3_ClientReachesPods", func(t *testing.T) {
		c := clientHTTP(l, 2*time.Second)
		seen := map[string]bool{}
		l.EventuallyIn(t, 30*time.Second, "answers from every echo pod through "+vip.String(), func() error {
			a, err := labtest.FetchWith(c, "http://"+vip.String()+"/")
			if err != nil {
				return err
			}
			if !slices.Contains(podNames, a.Pod) {
				return fmt.Errorf("answered by %q, not an echo pod (%v)", a.Pod, podNames)
			}
			seen[a.Pod] = true
			if len(seen) < len(podNames) {
				return fmt.Errorf("answers so far from %v", seen)
			}
			return nil
		})
	})

	var second netip.Addr
	t.Run("A3_SecondServiceOwnAddress", func(t *testing.T) {
		labtest.LoadBalancerService(t, l, "echo-b", "echo")
		second = l.LoadBalancerIP(t, "echo-b", time.Minute)
		if second == vip {
			t.Fatalf("both Services have %s", vip)
		}
		b := stableAnnouncer(t, l, "echo-b", second, macs, nil)
		a := stableAnnouncer(t, l, "echo", vip, macs, nil)
		t.Logf("%s announced by %s, %s by %s", vip, a, second, b)
		c := clientHTTP(l, 2*time.Second)
		for _, ip := range []netip.Addr{vip, second} {
			l.EventuallyIn(t, 10*time.Second, "client reaches "+ip.String(), func() error {
				_, err := labtest.FetchWith(c, "http://"+ip.String()+"/")
				return err
			})
		}
		announcer = a
	})

	t.Run("A15_A18_FailoverWhenTheAnnouncerDies", func(t *testing.T) {
		old := announcer
		oldMAC := macOf(macs, old)
		stopWatch, err := labtest.WatchGratuitousARP(l.ClientNetns(), "eth0", vip)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopWatch() })
		killed := time.Now()
		if err := lab.KillComponent(l.StateRoot, l.Options.Name, old, l2Plugin, testLog{t}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lab.StartComponent(l.StateRoot, l.Options.Name, old, l2Plugin, testLog{t}) })
		var moved time.Duration
		var now string
		l.EventuallyIn(t, failoverBound, "another node answers ARP for "+vip.String(), func() error {
			got := nodesOf(arpFor(t, l, vip, 50*time.Millisecond), macs)
			if len(got) != 1 || got[0] == old {
				return fmt.Errorf("ARP answered by %v (%s killed)", got, old)
			}
			moved, now = time.Since(killed), got[0]
			return nil
		})
		t.Logf("%s moved from %s to %s %v after the kill", vip, old, now, moved.Round(time.Millisecond))
		c := clientHTTP(l, 500*time.Millisecond)
		l.EventuallyIn(t, failoverBound, "the client's requests succeed again", func() error {
			_, err := labtest.FetchWith(c, "http://"+vip.String()+"/")
			return err
		})
		t.Logf("client answered again %v after the kill", time.Since(killed).Round(time.Millisecond))
		if got := nodesOf(arpAsClient(t, l, vip), macs); len(got) != 1 || got[0] != now {
			t.Errorf("after failover ARP for %s answered by %v, want only %s", vip, got, now)
		}
		// Not fatal: the rest of the failover is still worth checking.
		if err := labtest.Poll(15*time.Second, func() error { return conditionNames(l, "echo", vip, now) }); err != nil {
			t.Errorf("the Service condition does not follow the address to %s while %s's plugin is dead: %v", now, old, err)
		}
		g := stopWatch()
		if !slices.ContainsFunc(g, func(m net.HardwareAddr) bool { return m.String() == macOf(macs, now).String() }) {
			t.Errorf("no gratuitous ARP for %s from %s (%s) after the takeover; seen from %v", vip, now, macOf(macs, now), nodesOf(g, macs))
		}
		if slices.ContainsFunc(g, func(m net.HardwareAddr) bool { return m.String() == oldMAC.String() }) {
			t.Logf("note: gratuitous ARP from the killed node %s was seen (sent before the kill)", old)
		}

		// The plugin comes back: whoever then announces, it is one node,
		// the condition says which, and the client is served.
		if err := lab.StartComponent(l.StateRoot, l.Options.Name, old, l2Plugin, testLog{t}); err != nil {
			t.Fatal(err)
		}
		announcer = stableAnnouncer(t, l, "echo", vip, macs, nil)
		l.EventuallyIn(t, 10*time.Second, "client served after the plugin's return", func() error {
			_, err := labtest.FetchWith(c, "http://"+vip.String()+"/")
			return err
		})
	})

	t.Run("A15_A18_FailoverWhenTheAnnouncerDropsOff", func(t *testing.T) {
		// The whole node leaves the segment: its plugin is killed and its
		// link cut at once. The client's neighbour entry still points at
		// the dead node, so only the new announcer's gratuitous ARP brings
		// its requests back before the entry expires (15-45 s).
		old := announcer
		c := clientHTTP(l, 500*time.Millisecond)
		if _, err := labtest.FetchWith(c, "http://"+vip.String()+"/"); err != nil {
			t.Fatalf("client before the cut: %v", err)
		}
		killed := time.Now()
		if err := lab.KillComponent(l.StateRoot, l.Options.Name, old, l2Plugin, testLog{t}); err != nil {
			t.Fatal(err)
		}
		if err := lab.SetNodeLink(l.StateRoot, l.Options.Name, old, false, testLog{t}); err != nil {
			t.Fatal(err)
		}
		restore := func() {
			_ = lab.SetNodeLink(l.StateRoot, l.Options.Name, old, true, testLog{t})
			_ = lab.StartComponent(l.StateRoot, l.Options.Name, old, l2Plugin, testLog{t})
		}
		t.Cleanup(restore)
		var now string
		l.EventuallyIn(t, failoverBound, "another node answers ARP for "+vip.String(), func() error {
			got := nodesOf(arpFor(t, l, vip, 50*time.Millisecond), macs)
			if len(got) != 1 || got[0] == old {
				return fmt.Errorf("ARP answered by %v (%s cut off)", got, old)
			}
			now = got[0]
			return nil
		})
		// eTP Cluster: a request may still be sent to the pod on the cut
		// node and time out; the client retries as a user would.
		l.EventuallyIn(t, failoverBound, "the client's requests succeed again", func() error {
			a, err := labtest.FetchWith(c, "http://"+vip.String()+"/")
			if err == nil && a.Node == old {
				return fmt.Errorf("answered from the cut-off node %s", old)
			}
			return err
		})
		t.Logf("%s moved from %s to %s; client answered again %v after the cut", vip, old, now, time.Since(killed).Round(time.Millisecond))
		restore()
		announcer = stableAnnouncer(t, l, "echo", vip, macs, nil)
	})

	t.Run("A9_NodeSelectorEditMovesAddress", func(t *testing.T) {
		excluded := announcer
		if err := l.Cilium.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			t.Fatal(err)
		}
		policy.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/hostname", Operator: metav1.LabelSelectorOpNotIn, Values: []string{excluded},
		}}}
		if err := l.Cilium.Update(ctx, policy); err != nil {
			t.Fatal(err)
		}
		notExcluded := func(n string) error {
			if n == excluded {
				return fmt.Errorf("still %s, which the node selector excludes", n)
			}
			return nil
		}
		now := stableAnnouncer(t, l, "echo", vip, macs, notExcluded)
		b := stableAnnouncer(t, l, "echo-b", second, macs, notExcluded)
		t.Logf("%s moved from %s to %s; %s announced by %s", vip, excluded, now, second, b)
		for i := range 10 {
			for _, ip := range []netip.Addr{vip, second} {
				if got := nodesOf(arpAsClient(t, l, ip), macs); slices.Contains(got, excluded) || len(got) != 1 {
					t.Errorf("probe %d: ARP for %s answered by %v (%s excluded)", i, ip, got, excluded)
					logAnnouncements(t, l)
					t.FailNow()
				}
			}
		}
		c := clientHTTP(l, 2*time.Second)
		l.EventuallyIn(t, 10*time.Second, "client reaches "+vip.String()+" through "+now, func() error {
			_, err := labtest.FetchWith(c, "http://"+vip.String()+"/")
			return err
		})
	})

	t.Run("A20_DeletedServiceNoLongerAnnounced", func(t *testing.T) {
		if err := l.Client.CoreV1().Services(labtest.Namespace).Delete(ctx, "echo-b", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		l.EventuallyIn(t, 10*time.Second, "ARP for "+second.String()+" unanswered", func() error {
			if got := arp(t, l, second); len(got) != 0 {
				return fmt.Errorf("still answered by %v", nodesOf(got, macs))
			}
			return nil
		})
		// The other Service stays announced.
		if got := nodesOf(arpAsClient(t, l, vip), macs); len(got) != 1 {
			t.Errorf("ARP for %s answered by %v after deleting the other Service", vip, got)
		}
	})

	t.Run("A27_LocalTrafficPolicyAnnouncedWhereTheEndpointIs", func(t *testing.T) {
		local := labtest.Deploy(t, l, labtest.Echo("local", 1, nil))
		where := local[0].Spec.NodeName
		// Every node may announce again: only the endpoint decides.
		if err := l.Cilium.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			t.Fatal(err)
		}
		policy.Spec.NodeSelector = nil
		if err := l.Cilium.Update(ctx, policy); err != nil {
			t.Fatal(err)
		}
		labtest.LoadBalancerService(t, l, "local", "local", func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		})
		ip := l.LoadBalancerIP(t, "local", time.Minute)
		got := stableAnnouncer(t, l, "local", ip, macs, func(n string) error {
			if n != where {
				return fmt.Errorf("announced by %s, but the only endpoint is on %s", n, where)
			}
			return nil
		})
		c := clientHTTP(l, 2*time.Second)
		l.EventuallyIn(t, 10*time.Second, "client reaches the local endpoint through "+ip.String(), func() error {
			a, err := labtest.FetchWith(c, "http://"+ip.String()+"/")
			if err != nil {
				return err
			}
			if a.Pod != local[0].Name || !strings.HasPrefix(a.ClientAddr, l.ClientIP().String()+":") {
				return fmt.Errorf("answer %+v; want pod %s seeing the client's own address %s", a, local[0].Name, l.ClientIP())
			}
			return nil
		})
		t.Logf("%s announced by %s, where its endpoint runs", ip, got)
	})
}

// arp probes ip from the client once and returns the MACs that answered.
func arp(t testing.TB, l *labtest.Lab, ip netip.Addr) []net.HardwareAddr {
	return arpFor(t, l, ip, arpWait)
}

func arpFor(t testing.TB, l *labtest.Lab, ip netip.Addr, wait time.Duration) []net.HardwareAddr {
	t.Helper()
	got, err := l.ARPReplies(ip, wait)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// arpAsClient asks for ip the way a host's kernel does: an unanswered
// request is sent again, three requests in all (net.ipv4.neigh.*.mcast_solicit).
// A request lost on a loaded machine then does not read as "nobody
// announces"; any answer, from whichever node, is returned at once.
func arpAsClient(t testing.TB, l *labtest.Lab, ip netip.Addr) []net.HardwareAddr {
	t.Helper()
	var got []net.HardwareAddr
	for range 3 {
		if got = arp(t, l, ip); len(got) > 0 {
			break
		}
	}
	return got
}

// logAnnouncements logs what each node's L2 plugin says it started and
// stopped announcing, to tell a hand-over from a lost reply.
func logAnnouncements(t testing.TB, l *labtest.Lab) {
	logs, _ := filepath.Glob(filepath.Join(l.Layout.LogDir(), "*-"+l2Plugin+".log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var lines []string
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, "announcing") {
				lines = append(lines, line)
			}
		}
		t.Logf("%s:\n%s", filepath.Base(f), strings.Join(lines, "\n"))
	}
}

// nodesOf names the nodes of MACs (an unknown MAC stays a MAC).
func nodesOf(got []net.HardwareAddr, macs map[string]string) []string {
	var out []string
	for _, m := range got {
		if n, ok := macs[m.String()]; ok {
			out = append(out, n)
		} else {
			out = append(out, m.String())
		}
	}
	return out
}

func macOf(macs map[string]string, node string) net.HardwareAddr {
	for m, n := range macs {
		if n == node {
			hw, _ := net.ParseMAC(m)
			return hw
		}
	}
	return nil
}

// stableAnnouncer waits until exactly one node answers ARP for ip, passes
// check (nil: any node), and is the node Service svc's condition names;
// then returns it.
func stableAnnouncer(t testing.TB, l *labtest.Lab, svc string, ip netip.Addr, macs map[string]string, check func(string) error) string {
	t.Helper()
	var node string
	l.EventuallyIn(t, 30*time.Second, fmt.Sprintf("one node answers ARP for %s and Service %s names it", ip, svc), func() error {
		got := nodesOf(arp(t, l, ip), macs)
		if len(got) != 1 {
			return fmt.Errorf("ARP answered by %v, want exactly one node", got)
		}
		if check != nil {
			if err := check(got[0]); err != nil {
				return err
			}
		}
		node = got[0]
		return conditionNames(l, svc, ip, node)
	})
	return node
}

// conditionNames checks that Service svc's L2Announced condition is True
// and names exactly node as the announcer of ip ("<ip> by node N on eth0").
func conditionNames(l *labtest.Lab, svc string, ip netip.Addr, node string) error {
	s, err := l.Client.CoreV1().Services(labtest.Namespace).Get(context.Background(), svc, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range s.Status.Conditions {
		if c.Type != l2Condition {
			continue
		}
		if c.Status != metav1.ConditionTrue {
			return fmt.Errorf("condition %s is %s: %s", l2Condition, c.Status, c.Message)
		}
		named := announcersIn(c.Message, ip)
		if len(named) != 1 || named[0] != node {
			return fmt.Errorf("condition %s names %v for %s, want %s (message %q)", l2Condition, named, ip, node, c.Message)
		}
		return nil
	}
	return fmt.Errorf("Service %s has no %s condition", svc, l2Condition)
}

var announcerRE = regexp.MustCompile(`node (\S+) on `)

// announcersIn reads the nodes a condition message names for ip.
func announcersIn(msg string, ip netip.Addr) []string {
	var out []string
	for _, part := range strings.Split(msg, "; ") {
		rest, ok := strings.CutPrefix(part, ip.String()+" by ")
		if !ok {
			continue
		}
		for _, m := range announcerRE.FindAllStringSubmatch(rest, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func policyCondition(l *labtest.Lab, name, typ string, want metav1.ConditionStatus) error {
	var p ciliumv2alpha1.CiliumL2AnnouncementPolicy
	if err := l.Cilium.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
		return err
	}
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			if c.Status != want || c.ObservedGeneration != p.Generation {
				return fmt.Errorf("%s is %s (generation %d of %d): %s", typ, c.Status, c.ObservedGeneration, p.Generation, c.Message)
			}
			return nil
		}
	}
	return errors.New("no " + typ + " condition")
}

// clientHTTP is an HTTP client in the lab's external client namespace that
// opens a new connection for every request (a connection made through one
// announcer has its NAT state there, not on the next one), any number at
// once.
func clientHTTP(l *labtest.Lab, timeout time.Duration) *http.Client {
	c := l.HTTPClient(l.ClientNetns())
	c.Timeout = timeout
	tr := c.Transport.(*http.Transport)
	tr.DisableKeepAlives, tr.MaxConnsPerHost = true, 0
	return c
}
