package planner

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func sel(s string) labels.Selector {
	out, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return out
}

func threeNodes() []Node {
	return []Node{
		{Name: "node-c", Labels: labels.Set{"egress": "true", "zone": "b"}, Address: "198.18.0.13", Ready: true},
		{Name: "node-a", Labels: labels.Set{"zone": "a"}, Address: "198.18.0.11", Ready: true},
		{Name: "node-b", Labels: labels.Set{"egress": "true", "zone": "a"}, Address: "198.18.0.12", Ready: true},
	}
}

func pod(ns, name, node, ip string, lbls labels.Set) Pod {
	return Pod{Namespace: ns, Name: name, UID: "uid-" + ns + "-" + name, Node: node, IPs: []string{ip}, Labels: lbls}
}

func policy(name string, rules []Rule, gws ...Gateway) Policy {
	return Policy{Name: name, Rules: rules, DestinationCIDRs: []string{"198.18.0.250/32"}, Gateways: gws}
}

// steered returns the source IPs each node steers for policy p.
func steered(plan Plan, p string) map[string][]string {
	out := map[string][]string{}
	for n, np := range plan.Nodes {
		for _, s := range np.Steering {
			if s.Policy == p {
				out[n] = append(out[n], s.SourceIPs...)
			}
		}
	}
	return out
}

// E6: the special namespace key selects pods of one namespace only, and a
// label cannot impersonate it.
func TestE6_NamespaceKey(t *testing.T) {
	pods := []Pod{
		pod("default", "a", "node-a", "10.0.1.1", labels.Set{"app": "x"}),
		pod("other", "b", "node-a", "10.0.1.2", labels.Set{"app": "x", PodNamespaceKey: "default"}),
	}
	p := policy("p", []Rule{{Pods: sel("app=x," + PodNamespaceKey + "=default")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.240"})
	got := steered(Decide([]Policy{p}, pods, nil, threeNodes()), "p")
	if !slices.Equal(got["node-a"], []string{"10.0.1.1"}) || len(got) != 1 {
		t.Fatalf("steered %v, want only 10.0.1.1 on node-a", got)
	}
}

// E7: pods matching either of two rules are both selected; namespaceSelector
// matches by the namespace's labels.
func TestE7_SelectorsOR(t *testing.T) {
	pods := []Pod{
		pod("default", "a", "node-a", "10.0.1.1", labels.Set{"app": "x"}),
		pod("team", "b", "node-b", "10.0.2.1", labels.Set{"app": "y"}),
		pod("default", "c", "node-a", "10.0.1.3", labels.Set{"app": "z"}),
	}
	ns := map[string]labels.Set{"team": {"tier": "gold"}, "default": {}}
	p := policy("p", []Rule{{Pods: sel("app=x")}, {Namespaces: sel("tier=gold")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.240"})
	got := steered(Decide([]Policy{p}, pods, ns, threeNodes()), "p")
	if !slices.Equal(got["node-a"], []string{"10.0.1.1"}) || !slices.Equal(got["node-b"], []string{"10.0.2.1"}) {
		t.Fatalf("steered %v", got)
	}
}

// E8, E9: a rule's nodeSelector limits it to pods on matching nodes; a rule
// without pod or namespace selector selects nothing.
func TestE8_E9_NodeSelectorAndAloneSelectsNothing(t *testing.T) {
	pods := []Pod{
		pod("default", "a", "node-a", "10.0.1.1", labels.Set{"app": "x"}),
		pod("default", "c", "node-c", "10.0.3.1", labels.Set{"app": "x"}),
	}
	p := policy("p", []Rule{{Pods: sel("app=x"), Nodes: sel("zone=a")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.240"})
	got := steered(Decide([]Policy{p}, pods, nil, threeNodes()), "p")
	if !slices.Equal(got["node-a"], []string{"10.0.1.1"}) || len(got["node-c"]) != 0 {
		t.Fatalf("E8: steered %v", got)
	}
	alone := policy("q", []Rule{{Nodes: sel("zone=a")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.240"})
	plan := Decide([]Policy{alone}, pods, nil, threeNodes())
	if got := steered(plan, "q"); len(got) != 0 {
		t.Fatalf("E9: a nodeSelector-only rule selected %v", got)
	}
	if res := plan.Policies["q"]; res.Sources != 0 || !strings.Contains(strings.Join(res.Problems, ";"), "no running pod") {
		t.Fatalf("E9: result %+v", res)
	}
}

// E13: without an egressIP the gateway is the first Ready matching node by
// name, alone; with one, every matching node is a candidate in name order
// and the candidates are each other's heartbeat peers.
func TestE13_LexicalGatewayAndCandidates(t *testing.T) {
	pods := []Pod{pod("default", "a", "node-a", "10.0.1.1", labels.Set{"app": "x"})}
	single := policy("single", []Rule{{Pods: sel("app=x")}}, Gateway{Nodes: sel("egress=true")})
	plan := Decide([]Policy{single}, pods, nil, threeNodes())
	st := plan.Nodes["node-a"].Steering[0]
	if st.GatewayNode != "node-b" || st.GatewayIP != "198.18.0.12" || st.EgressIP != "" {
		t.Fatalf("steering %+v, want to node-b", st)
	}
	if plan.Nodes["node-c"] != nil || len(plan.Nodes["node-b"].Duties) != 1 || len(plan.Nodes["node-b"].Peers) != 0 {
		t.Fatalf("duties: node-b %+v node-c %+v", plan.Nodes["node-b"], plan.Nodes["node-c"])
	}
	// node-b not Ready: node-c takes the single gateway.
	nodes := threeNodes()
	nodes[2].Ready = false
	plan = Decide([]Policy{single}, pods, nil, nodes)
	if st := plan.Nodes["node-a"].Steering[0]; st.GatewayNode != "node-c" {
		t.Fatalf("with node-b not Ready, steering %+v", st)
	}

	floating := policy("ha", []Rule{{Pods: sel("app=x")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.240"})
	plan = Decide([]Policy{floating}, pods, nil, threeNodes())
	if st := plan.Nodes["node-a"].Steering[0]; st.EgressIP != "198.18.0.240" || st.GatewayIP != "" {
		t.Fatalf("steering %+v, want to the egress IP", st)
	}
	for _, n := range []string{"node-b", "node-c"} {
		np := plan.Nodes[n]
		if len(np.Duties) != 1 || !slices.Equal(np.Duties[0].Candidates, []string{"node-b", "node-c"}) {
			t.Fatalf("%s duties %+v", n, np.Duties)
		}
		if want := []Peer{{"node-b", "198.18.0.12"}, {"node-c", "198.18.0.13"}}; !slices.Equal(np.Peers, want) {
			t.Fatalf("%s peers %v, want %v", n, np.Peers, want)
		}
		if !slices.Equal(np.Duties[0].SourceIPs, []string{"10.0.1.1"}) {
			t.Fatalf("%s sources %v", n, np.Duties[0].SourceIPs)
		}
	}
}

// E14: a gateway no node matches still steers its sources (to nowhere: the
// node drops the traffic) and says so.
func TestE14_NoGatewayDrops(t *testing.T) {
	pods := []Pod{pod("default", "a", "node-a", "10.0.1.1", labels.Set{"app": "x"})}
	p := policy("p", []Rule{{Pods: sel("app=x")}}, Gateway{Nodes: sel("egress=nowhere")})
	plan := Decide([]Policy{p}, pods, nil, threeNodes())
	st := plan.Nodes["node-a"].Steering[0]
	if st.EgressIP != "" || st.GatewayIP != "" || !slices.Equal(st.SourceIPs, []string{"10.0.1.1"}) {
		t.Fatalf("steering %+v, want a drop entry", st)
	}
	if probs := strings.Join(plan.Policies["p"].Problems, ";"); !strings.Contains(probs, "dropped") {
		t.Fatalf("problems %q", probs)
	}
}

// E21, E22: with several gateways each pod uses exactly one, the same on
// every computation; adding a gateway moves only pods to the new one.
func TestE21_E22_GatewayPerPodByUID(t *testing.T) {
	var pods []Pod
	for i := range 300 {
		pods = append(pods, pod("default", fmt.Sprintf("p%d", i), "node-a", fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), labels.Set{"app": "x"}))
	}
	gw := func(ip string) Gateway { return Gateway{Nodes: sel("egress=true"), EgressIP: ip} }
	assign := func(gws ...Gateway) map[string]string {
		out := map[string]string{}
		plan := Decide([]Policy{policy("p", []Rule{{Pods: sel("app=x")}}, gws...)}, pods, nil, threeNodes())
		for _, s := range plan.Nodes["node-a"].Steering {
			for _, ip := range s.SourceIPs {
				if prev, dup := out[ip]; dup {
					t.Fatalf("%s uses two gateways (%s and %s)", ip, prev, s.EgressIP)
				}
				out[ip] = s.EgressIP
			}
		}
		if len(out) != len(pods) {
			t.Fatalf("%d of %d pods assigned", len(out), len(pods))
		}
		return out
	}
	two := assign(gw("198.18.0.240"), gw("198.18.0.241"))
	again := assign(gw("198.18.0.240"), gw("198.18.0.241"))
	count := map[string]int{}
	for ip, g := range two {
		count[g]++
		if again[ip] != g {
			t.Fatalf("%s moved between identical computations", ip)
		}
	}
	if count["198.18.0.240"] < 100 || count["198.18.0.241"] < 100 {
		t.Fatalf("uneven spread %v", count)
	}
	three := assign(gw("198.18.0.240"), gw("198.18.0.241"), gw("198.18.0.242"))
	moved := 0
	for ip, g := range three {
		switch {
		case g == "198.18.0.242":
			moved++
		case g != two[ip]:
			t.Fatalf("%s moved from %s to %s, not to the new gateway", ip, two[ip], g)
		}
	}
	if moved < 60 || moved > 140 {
		t.Fatalf("the third gateway took %d of 300 pods", moved)
	}
}

// Pods of one node steered by two policies come in policy-name order, and
// the output does not depend on input order.
func TestDeterministic(t *testing.T) {
	pods := []Pod{
		pod("default", "b", "node-a", "10.0.1.2", labels.Set{"app": "x"}),
		pod("default", "a", "node-a", "10.0.1.1", labels.Set{"app": "x"}),
	}
	ps := []Policy{
		policy("zeta", []Rule{{Pods: sel("app=x")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.241"}),
		policy("alpha", []Rule{{Pods: sel("app=x")}}, Gateway{Nodes: sel("egress=true"), EgressIP: "198.18.0.240"}),
	}
	a := Decide(ps, pods, nil, threeNodes())
	slices.Reverse(ps)
	slices.Reverse(pods)
	b := Decide(ps, pods, nil, threeNodes())
	if fmt.Sprint(a.Nodes["node-a"]) != fmt.Sprint(b.Nodes["node-a"]) {
		t.Fatalf("order-dependent:\n%v\n%v", a.Nodes["node-a"], b.Nodes["node-a"])
	}
	st := a.Nodes["node-a"].Steering
	if len(st) != 2 || st[0].Policy != "alpha" || !slices.Equal(st[0].SourceIPs, []string{"10.0.1.1", "10.0.1.2"}) {
		t.Fatalf("steering %+v", st)
	}
}
