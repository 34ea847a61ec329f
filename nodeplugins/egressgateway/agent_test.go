package egressgateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/nodeplugins/egressgateway/kernel"
)

// recorder is a Datapath that records what it is asked to do.
type recorder struct {
	mu      sync.Mutex
	applied []kernel.State
}

func (r *recorder) Apply(s kernel.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, s)
	return nil
}

func (r *recorder) Clear() error { return nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.applied)
}

// A (re)started plugin touches the kernel only once it knows its spec:
// applying an empty state first would drop the steering and translation
// the previous process left, and new connections would leave with other
// source addresses meanwhile.
func TestNothingAppliedBeforeTheSpec(t *testing.T) {
	dp := &recorder{}
	a, err := New(Config{Announcer: l2announce.Config{NodeName: "n1"}, Datapath: dp, Rescan: 20 * time.Millisecond, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(200 * time.Millisecond) // several rescans
	if n := dp.count(); n != 0 {
		t.Fatalf("%d applies before any spec", n)
	}
	if a.Report().Generation != 0 {
		t.Fatalf("a report before any spec: %+v", a.Report())
	}
	a.SetDesired(Desired{Generation: 1, Spec: nodesv1alpha1.EgressSpec{Steering: []nodesv1alpha1.EgressSteering{{
		EgressTraffic: traffic("p"), EgressIP: "198.18.0.240",
	}}}})
	deadline := time.Now().Add(5 * time.Second)
	for dp.count() == 0 || a.Report().Generation != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("spec not applied: %d applies, report %+v", dp.count(), a.Report())
		}
		time.Sleep(10 * time.Millisecond)
	}
	dp.mu.Lock()
	last := dp.applied[len(dp.applied)-1]
	dp.mu.Unlock()
	if len(last.Steers) != 1 || last.Steers[0].Via.String() != "198.18.0.240" {
		t.Fatalf("applied %+v", last)
	}
}
