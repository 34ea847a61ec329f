package planner

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/plexus-net/plexus/internal/selectors"
)

func sel(t *testing.T, s *metav1.LabelSelector) labels.Selector {
	t.Helper()
	out, err := selectors.Compile(s, true)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func svc(ns, name string, lbls map[string]string, lbIPs ...string) Service {
	return Service{Namespace: ns, Name: name, Labels: selectors.ServiceLabels(ns, name, lbls), LoadBalancerIPs: lbIPs}
}

func nodes(n int) []Node {
	var out []Node
	for i := 1; i <= n; i++ {
		out = append(out, Node{Name: fmt.Sprintf("n%d", i), Labels: labels.Set{"zone": fmt.Sprint("z", i%2)}, Address: fmt.Sprintf("198.18.0.%d", 10+i)})
	}
	return out
}

func policy(t *testing.T, name string, svcSel, nodeSel *metav1.LabelSelector, mutate ...func(*Policy)) Policy {
	p := Policy{Name: name, Services: sel(t, svcSel), Nodes: sel(t, nodeSel), LoadBalancerIPs: true}
	for _, m := range mutate {
		m(&p)
	}
	p.InterfacesErr = CheckInterfaces(p.Interfaces)
	return p
}

// announced lists ip -> candidates over all node plans, checking that every
// node listing an address lists the same candidates.
func announced(t *testing.T, plan Plan) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for n, np := range plan.Nodes {
		for _, a := range np.Addresses {
			if prev, ok := out[a.IP]; ok && !slices.Equal(prev, a.Candidates) {
				t.Fatalf("%s: node %s has candidates %v, another node %v", a.IP, n, a.Candidates, prev)
			}
			out[a.IP] = a.Candidates
			if !slices.Contains(a.Candidates, n) {
				t.Fatalf("node %s lists %s without being a candidate", n, a.IP)
			}
		}
	}
	return out
}

func TestA3_A4_A5_AddressTypes(t *testing.T) {
	s := svc("default", "web", nil, "198.51.100.7")
	s.ExternalIPs = []string{"198.51.100.8"}
	for _, tc := range []struct {
		lb, ext bool
		want    []string
	}{{true, false, []string{"198.51.100.7"}}, {false, true, []string{"198.51.100.8"}}, {true, true, []string{"198.51.100.7", "198.51.100.8"}}, {false, false, nil}} {
		p := policy(t, "p", nil, nil, func(p *Policy) { p.LoadBalancerIPs, p.ExternalIPs = tc.lb, tc.ext })
		got := announced(t, Decide([]Policy{p}, []Service{s}, nodes(3)))
		var ips []string
		for ip, c := range got {
			ips = append(ips, ip)
			if len(c) != 3 {
				t.Errorf("%s candidates %v, want all three nodes", ip, c)
			}
		}
		slices.Sort(ips)
		if !slices.Equal(ips, tc.want) {
			t.Errorf("loadBalancerIPs=%v externalIPs=%v: announced %v, want %v", tc.lb, tc.ext, ips, tc.want)
		}
	}
}

func TestA6_A7_A8_ServiceSelection(t *testing.T) {
	blue := svc("default", "blue", map[string]string{"color": "blue"}, "198.51.100.1")
	red := svc("default", "red", map[string]string{"color": "red"}, "198.51.100.2")
	other := svc("x", "other", nil, "198.51.100.3")
	bgp := svc("default", "bgp", map[string]string{"color": "blue"}, "198.51.100.4")
	bgp.Class = "io.cilium/bgp-control-plane"
	l2 := svc("default", "l2", map[string]string{"color": "blue"}, "198.51.100.5")
	l2.Class = ClassL2
	all := []Service{blue, red, other, bgp, l2}
	for _, tc := range []struct {
		name string
		sel  *metav1.LabelSelector
		want []string
	}{
		{"A6 color=blue", &metav1.LabelSelector{MatchLabels: map[string]string{"color": "blue"}}, []string{"198.51.100.1", "198.51.100.5"}},
		{"A6 no selector", nil, []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.5"}},
		{"A7 namespace key", &metav1.LabelSelector{MatchLabels: map[string]string{selectors.ServiceNamespaceKey: "x"}}, []string{"198.51.100.3"}},
	} {
		got := announced(t, Decide([]Policy{policy(t, "p", tc.sel, nil)}, all, nodes(2)))
		var ips []string
		for ip := range got {
			ips = append(ips, ip)
		}
		slices.Sort(ips)
		if !slices.Equal(ips, tc.want) { // A8: the bgp-class Service never appears
			t.Errorf("%s: %v, want %v", tc.name, ips, tc.want)
		}
	}
}

func TestA9_A10_NodesAndInterfaces(t *testing.T) {
	p := policy(t, "p", nil, &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "z1"}}, func(p *Policy) { p.Interfaces = []string{"^eth[0-9]+"} })
	plan := Decide([]Policy{p}, []Service{svc("default", "web", nil, "198.51.100.7")}, nodes(4))
	got := announced(t, plan)["198.51.100.7"]
	slices.Sort(got)
	if !slices.Equal(got, []string{"n1", "n3"}) {
		t.Fatalf("candidates %v, want the zone z1 nodes n1 and n3", got)
	}
	if a := plan.Nodes["n1"].Addresses[0]; !slices.Equal(a.Interfaces, []string{"^eth[0-9]+"}) {
		t.Errorf("interfaces %v", a.Interfaces)
	}
	if peers := plan.Nodes["n3"].Peers; len(peers) != 2 || peers[0] != (Peer{"n1", "198.18.0.11"}) {
		t.Errorf("peers of n3: %v", peers)
	}
	if plan.Nodes["n2"] != nil {
		t.Error("n2 is not selected but has a plan")
	}
	// A second policy allowing every interface on n1 widens n1's list.
	p2 := policy(t, "q", nil, &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": "none"}})
	p3 := policy(t, "r", nil, nil)
	plan = Decide([]Policy{p, p2, p3}, []Service{svc("default", "web", nil, "198.51.100.7")}, nodes(4))
	if a := plan.Nodes["n1"].Addresses[0]; a.Interfaces != nil {
		t.Errorf("n1 interfaces %v, want all (nil)", a.Interfaces)
	}
}

func TestA27_LocalTrafficPolicyOnlyNodesWithEndpoints(t *testing.T) {
	s := svc("default", "local", nil, "198.51.100.9")
	s.LocalOnly, s.EndpointNodes = true, map[string]bool{"n2": true}
	plan := Decide([]Policy{policy(t, "p", nil, nil)}, []Service{s}, nodes(3))
	if got := announced(t, plan)["198.51.100.9"]; !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("candidates %v, want only n2", got)
	}
	s.EndpointNodes = nil
	plan = Decide([]Policy{policy(t, "p", nil, nil)}, []Service{s}, nodes(3))
	if pr := plan.Services["default/local"].Problem; !strings.Contains(pr, "externalTrafficPolicy is Local and no selected node has a ready endpoint") {
		t.Errorf("problem %q", pr)
	}
}

func TestA28_IPv6NotAnnounced(t *testing.T) {
	plan := Decide([]Policy{policy(t, "p", nil, nil)}, []Service{svc("default", "v6", nil, "2001:db8::7")}, nodes(2))
	if len(plan.Nodes) != 0 || !strings.Contains(plan.Services["default/v6"].Problem, "IPv4 (ARP) only") {
		t.Fatalf("plan %+v, service %+v", plan.Nodes, plan.Services["default/v6"])
	}
}

func TestA21_A22_BrokenPoliciesAnnounceNothing(t *testing.T) {
	bad := policy(t, "bad", nil, nil, func(p *Policy) { p.Interfaces = []string{"eth[0-"} })
	plan := Decide([]Policy{bad}, []Service{svc("default", "web", nil, "198.51.100.7")}, nodes(2))
	if len(plan.Nodes) != 0 || plan.Policies["bad"].BadRegex == nil || !strings.Contains(plan.Policies["bad"].BadRegex.Error(), `"eth[0-"`) {
		t.Fatalf("plan %+v, policy %+v", plan.Nodes, plan.Policies["bad"])
	}
	broken := Policy{Name: "sel", ServiceErr: fmt.Errorf("invalid"), Nodes: labels.Everything(), LoadBalancerIPs: true}
	if plan := Decide([]Policy{broken}, []Service{svc("default", "web", nil, "198.51.100.7")}, nodes(2)); len(plan.Nodes) != 0 {
		t.Fatal("a policy with a bad selector announced")
	}
}
