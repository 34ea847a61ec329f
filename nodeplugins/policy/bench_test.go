package policy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/nodeplugins/policy/datapath"
	"github.com/plexus-net/plexus/test/netnstest"
	"github.com/plexus-net/plexus/test/policytest"
)

// BenchmarkEnforcerMemory measures what the node plugin's enforcer holds
// for a cluster of 100,000 endpoints (pod addresses in 2,000 identities):
// the Go heap it keeps after programming them (the addresses, the maps'
// contents as last written, the rules) and the kernel memory of the
// ipcache map, and the time of that first full program. The informer
// cache of the IdentityAddresses objects comes on top (about the size of
// the addresses as strings).
func BenchmarkEnforcerMemory(b *testing.B) {
	netnstest.RequireRoot(b)
	const endpoints, identities = 100_000, 2_000
	for range b.N {
		maps, err := datapath.Open(policytest.BPFFSFor(b))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		// Built here, so the heap counts it: the plugin holds this map.
		addrs := make(map[netip.Addr]uint32, endpoints)
		for i := range endpoints {
			addrs[netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})] = uint32(100_000 + i%identities)
		}

		e := NewEnforcer(maps, RouteVeth, nil, logr.Discard())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		start := time.Now()
		e.SetAddresses(addrs)
		e.SetPods(nil)
		e.SetSpec(&nodesv1alpha1.NodePolicySpec{}, 1)
		for e.Report().Generation != 1 {
			select {
			case <-e.Reports():
			case <-time.After(time.Minute):
				b.Fatalf("not programmed: %+v", e.Report())
			}
		}
		took := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		kernel, err := mapMemory(maps.IPCache().FD())
		if err != nil {
			b.Fatal(err)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(kernel)/(1<<20), "ipcache-kernel-MiB")
		b.ReportMetric(took.Seconds()*1000, "first-program-ms")
		runtime.KeepAlive(e)
		runtime.KeepAlive(addrs)
		_ = maps.Unpin()
		_ = maps.Close()
	}
}

// mapMemory is the kernel memory a map accounts for (fdinfo's memlock).
func mapMemory(fd int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no memlock in fdinfo %d", fd)
}
