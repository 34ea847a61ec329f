package egressgateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/test/arptest"
	"github.com/plexus-net/plexus/test/netnstest"
)

// TestEgressIPStaysThroughPodChurn: a gateway node holds a floating egress
// IP while pods come and go as fast as the kernel lets them: veth pairs
// with addresses are made and deleted in its namespace, next to a hundred
// idle ones (so every link and address dump spans several messages and is
// often interrupted). Every pass of the agent must plan from a complete
// reading of the node's addresses: the egress IP is never released (the
// report never stops calling the gateway Active) and every datapath state
// applied while it is held translates to it. Before the fix, an interrupted
// dump left a partial address list and the IP was dropped for a pass.
func TestEgressIPStaysThroughPodChurn(t *testing.T) {
	netnstest.RequireRoot(t)
	seg := netnstest.NewSegment(t, 61)
	nodeNS, nodeIP := seg.Attach("egn", 1)
	clientNS, _ := seg.Attach("egc", 200)
	egressIP := netip.MustParseAddr("198.18.61.240")

	h := nsHandle(t, nodeNS)
	for i := range 100 {
		addVeth(t, h, fmt.Sprintf("idle%d", i), i)
	}

	dp := &recorder{}
	a, err := New(Config{
		Announcer: l2announce.Config{
			NodeName: "n1", Address: nodeIP, HeartbeatPort: 7960,
			RejoinAfter: 50 * time.Millisecond, InterfaceRescan: 2 * time.Millisecond,
			InNamespace: func(f func() error) error { return netnstest.Do(nodeNS, f) },
		},
		Datapath: dp, Rescan: 2 * time.Millisecond,
		Log: testr.NewWithOptions(t, testr.Options{Verbosity: 0}),
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := nodesv1alpha1.EgressTraffic{Policy: "p", SourceIPs: []string{"10.0.1.5"}, DestinationCIDRs: []string{"198.18.61.250/32"}}
	a.SetDesired(Desired{Generation: 1, Spec: nodesv1alpha1.EgressSpec{
		Peers:    []nodesv1alpha1.L2Peer{{Node: "n1", Address: nodeIP.String()}},
		Gateways: []nodesv1alpha1.EgressGatewayDuty{{EgressTraffic: gw, EgressIP: egressIP.String(), Candidates: []string{"n1"}}},
	}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	active := func() bool {
		rep := a.Report()
		return len(rep.Gateways) == 1 && rep.Gateways[0].State == StateActive
	}
	deadline := time.Now().Add(10 * time.Second)
	for !active() {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never became active: %+v", a.Report())
		}
		time.Sleep(5 * time.Millisecond)
	}
	appliedBefore := dp.count()

	// Churn: 500 pods come and go, while the agent reads every 2 ms.
	var wg sync.WaitGroup
	churnErr := make(chan error, 1)
	wg.Go(func() {
		for i := range 500 {
			name := fmt.Sprintf("pod%d", i%8)
			if err := addVethErr(h, name, 200+i%8); err != nil {
				churnErr <- err
				return
			}
			if err := h.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
				churnErr <- fmt.Errorf("deleting %s: %w", name, err)
				return
			}
		}
	})
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	lost := 0
	var lostReport Report
	for sampling := true; sampling; {
		select {
		case <-stopped:
			sampling = false
		case <-time.After(time.Millisecond):
			if !active() {
				lost++
				lostReport = a.Report()
			}
		}
	}
	select {
	case err := <-churnErr:
		t.Fatalf("churn: %v", err)
	default:
	}
	if lost > 0 {
		t.Errorf("the gateway was not active in %d samples during the churn, e.g. %+v", lost, lostReport)
	}

	dp.mu.Lock()
	applied := slices.Clone(dp.applied[appliedBefore:])
	dp.mu.Unlock()
	if len(applied) == 0 {
		t.Fatal("no pass applied anything during the churn")
	}
	for i, st := range applied {
		if len(st.SNATs) != 1 || st.SNATs[0].EgressIP != egressIP {
			t.Fatalf("datapath state %d of %d during the churn does not translate to %v: %+v", i, len(applied), egressIP, st.SNATs)
		}
	}
	t.Logf("%d passes applied during the churn, every one translating to %v", len(applied), egressIP)

	// And the segment still finds the egress IP at the node.
	c, err := arptest.Open(clientNS, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	macs, err := c.Ask(egressIP, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := arptest.Distinct(macs), []string{netnstest.MAC(t, nodeNS, "eth0")}; !slices.Equal(got, want) {
		t.Errorf("ARP for %v answered by %v, want %v", egressIP, got, want)
	}
}

func nsHandle(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func addVeth(t *testing.T, h *netlink.Handle, name string, i int) {
	t.Helper()
	if err := addVethErr(h, name, i); err != nil {
		t.Fatal(err)
	}
}

// addVethErr adds an up veth pair name/name+"p" with 10.99.<i>.1/24 on
// name, as a pod's would be.
func addVethErr(h *netlink.Handle, name string, i int) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 99, byte(i), 1), Mask: net.CIDRMask(24, 32)}}
	if err := h.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("address on %s: %w", name, err)
	}
	return nil
}
