package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/nodeplugins/policy/flows"
	"github.com/plexus-net/plexus/test/policytest"
	"github.com/plexus-net/plexus/test/testenv"
)

const (
	allowA   = "CiliumNetworkPolicy/ns/allow-a"
	deny9999 = "CiliumClusterwideNetworkPolicy/deny-9999"
)

// Verdicts in the kernel become Hubble flows: an allowed connection names
// the policy that allowed it, a default-deny drop says so (HB-04), a
// deny rule's drop names the policy; the Observer API serves them with
// filters, the drop counters are metrics, and the upstream hubble CLI
// (when $HUBBLE names it, as make test does) reads them: status
// (HB-02), --verdict DROPPED (HB-04) and JSON output (HB-07).
func TestHB02_HB04_HB07_FlowsFromTheKernel(t *testing.T) {
	tp := policytest.New(t)
	maps, err := datapath.Open(policytest.BPFFS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = maps.Unpin(); _ = maps.Close() })
	e, stopEnforcer := nodeEnforcer(t, tp, maps)
	t.Cleanup(stopEnforcer)
	store := flows.NewStore(100)
	o := &Observer{Maps: maps, Enforcer: e, Store: store, NodeName: "node-1"}
	srv := flows.NewServer(store, "node-1", "test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- o.Run(ctx) }()
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("stopping: %v", err)
			}
		}
	})

	e.SetSpec(&nodesv1alpha1.NodePolicySpec{
		Identities: []nodesv1alpha1.IdentityPolicy{{Identity: 2000, DirectionalPolicy: nodesv1alpha1.DirectionalPolicy{
			Policies: []string{deny9999, allowA},
			Ingress: nodesv1alpha1.PolicyDirection{Enforced: true, Entries: []nodesv1alpha1.PolicyEntry{
				{Peers: nodesv1alpha1.AnyPeer, Protocol: 6, Port: 9999, EndPort: 9999, Deny: true, Source: 1},
				{Peers: "pa", Protocol: 6, Port: 8080, EndPort: 8080, Source: 2},
				{Peers: "pa", Protocol: 6, Port: 9999, EndPort: 9999, Source: 2},
			}},
		}}},
		PeerSets: []nodesv1alpha1.PeerSet{{Name: "pa", Identities: []int64{1000}}},
	}, 1)
	waitReport(t, e, func(r Report) bool { return r.Generation == 1 && r.Entries > 0 })
	policytest.Check(t, "enforced",
		policytest.Probe{From: tp.A, To: policytest.IPB, Port: "8080", Want: true},
		policytest.Probe{From: tp.A, To: policytest.IPB, Port: "9090", Want: false},
		policytest.Probe{From: tp.A, To: policytest.IPB, Port: "9999", Want: false})

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	observer := observerpb.NewObserverClient(conn)
	getFlows := func(req *observerpb.GetFlowsRequest) ([]*flowpb.Flow, error) {
		stream, err := observer.GetFlows(context.Background(), req)
		if err != nil {
			return nil, err
		}
		var out []*flowpb.Flow
		for {
			resp, err := stream.Recv()
			if err != nil {
				if strings.Contains(err.Error(), "EOF") {
					return out, nil
				}
				return out, err
			}
			out = append(out, resp.GetFlow())
		}
	}
	toB := []*flowpb.FlowFilter{{DestinationPod: []string{"ns/b"}}}
	var got []*flowpb.Flow
	testenv.Eventually(t, 5*time.Second, "flows of the three connections", func() error {
		got, err = getFlows(&observerpb.GetFlowsRequest{Whitelist: toB})
		if err != nil {
			return err
		}
		if len(got) < 3 {
			return fmt.Errorf("%d flows to ns/b, want at least 3 (the retried SYNs of a drop repeat it)", len(got))
		}
		return nil
	})
	byPort := map[uint32]*flowpb.Flow{}
	for _, f := range got {
		byPort[f.GetL4().GetTCP().GetDestinationPort()] = f
	}
	for port, want := range map[uint32]struct {
		verdict flowpb.Verdict
		reason  flowpb.DropReason
		allowed []string
		denied  []string
	}{
		8080: {verdict: flowpb.Verdict_FORWARDED, allowed: []string{"ns/allow-a"}},
		9090: {verdict: flowpb.Verdict_DROPPED, reason: flowpb.DropReason_POLICY_DENIED},
		9999: {verdict: flowpb.Verdict_DROPPED, reason: flowpb.DropReason_POLICY_DENY, denied: []string{"/deny-9999"}},
	} {
		f := byPort[port]
		if f == nil {
			t.Errorf("no flow to port %d among %v", port, got)
			continue
		}
		if f.GetVerdict() != want.verdict || f.GetDropReasonDesc() != want.reason {
			t.Errorf("port %d: verdict %v reason %v, want %v %v", port, f.GetVerdict(), f.GetDropReasonDesc(), want.verdict, want.reason)
		}
		if src, dst := f.GetSource(), f.GetDestination(); src.GetPodName() != "a" || src.GetNamespace() != "ns" || src.GetIdentity() != 1000 ||
			dst.GetPodName() != "b" || dst.GetIdentity() != 2000 || f.GetIP().GetSource() != policytest.IPA || f.GetTrafficDirection() != flowpb.TrafficDirection_INGRESS {
			t.Errorf("port %d: flow %v, want ns/a (1000) → ns/b (2000) ingress", port, f)
		}
		if names := policyNames(f.GetIngressAllowedBy()); !slices.Equal(names, want.allowed) {
			t.Errorf("port %d: allowed by %v, want %v", port, names, want.allowed)
		}
		if names := policyNames(f.GetIngressDeniedBy()); !slices.Equal(names, want.denied) {
			t.Errorf("port %d: denied by %v, want %v", port, names, want.denied)
		}
	}

	drops, err := getFlows(&observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}, DestinationPort: []string{"9999"}}}, Number: 1})
	if err != nil || len(drops) != 1 || drops[0].GetDropReasonDesc() != flowpb.DropReason_POLICY_DENY {
		t.Errorf("the last drop to 9999: %v, %v", drops, err)
	}
	// A filter this server cannot evaluate is refused by name, never
	// ignored.
	if _, err := getFlows(&observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{HttpMethod: []string{"GET"}}}}); err == nil || !strings.Contains(err.Error(), "http_method") {
		t.Errorf("an http_method filter: %v, want an error naming it", err)
	}

	metrics := gather(t, Metrics{Maps: maps})
	if metrics[`plexus_policy_drops_total{direction="ingress",reason="policy-denied"}`] < 1 ||
		metrics[`plexus_policy_drops_total{direction="ingress",reason="policy-deny"}`] < 1 ||
		metrics[`plexus_policy_allowed_flows_total{direction="ingress"}`] < 1 {
		t.Errorf("metrics %v, want drops of both reasons and an allowed flow on ingress", metrics)
	}

	hubble := os.Getenv("HUBBLE")
	if hubble == "" {
		t.Log("HUBBLE is not set (make test sets it to the CLI hack/build-hubble.sh builds): the upstream CLI's part is skipped")
		return
	}
	server := "--server=" + l.Addr().String()
	out, err := exec.Command(hubble, "status", server).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Healthcheck") || !strings.Contains(string(out), "Flows") {
		t.Errorf("hubble status: %v\n%s", err, out)
	}
	out, err = exec.Command(hubble, "observe", server, "--verdict", "DROPPED", "--to-pod", "ns/b", "-o", "json", "--last", "100").CombinedOutput()
	if err != nil {
		t.Fatalf("hubble observe: %v\n%s", err, out)
	}
	reasons := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var resp struct {
			Flow struct {
				Verdict        string `json:"verdict"`
				DropReasonDesc string `json:"drop_reason_desc"`
				Source         struct {
					Namespace string `json:"namespace"`
					PodName   string `json:"pod_name"`
					Identity  uint32 `json:"identity"`
				} `json:"source"`
			} `json:"flow"`
		}
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatalf("hubble observe -o json printed %q: %v", line, err)
		}
		if resp.Flow.Verdict != "DROPPED" || resp.Flow.Source.PodName != "a" || resp.Flow.Source.Identity != 1000 {
			t.Errorf("hubble observe --verdict DROPPED printed %s", line)
		}
		reasons[resp.Flow.DropReasonDesc] = true
	}
	if !reasons["POLICY_DENIED"] || !reasons["POLICY_DENY"] {
		t.Errorf("hubble observe showed drop reasons %v, want POLICY_DENIED and POLICY_DENY:\n%s", reasons, out)
	}
}

func policyNames(ps []*flowpb.Policy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.GetNamespace()+"/"+p.GetName())
	}
	return out
}

// gather collects c's metrics as name{labels} → value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := fam.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}
