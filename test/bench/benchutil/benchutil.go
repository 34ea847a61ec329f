// Package benchutil holds what the scale benchmarks share: a fresh control
// plane per run, a controller binary run as its own process with its CPU time
// and peak RSS read from /proc, and medians.
package benchutil

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plexus-net/plexus/test/testenv"
)

// ControlPlane is a fresh kube-apiserver and etcd with Plexus's CRDs.
type ControlPlane struct {
	*testenv.Env
}

// Start starts a control plane from KUBEBUILDER_ASSETS (make bench sets it).
func Start() (*ControlPlane, error) {
	e, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS must point at etcd and kube-apiserver (make bench sets it)")
	}
	return &ControlPlane{e}, nil
}

// Scheme is the scheme of the control plane's client.
func (cp *ControlPlane) Scheme() *runtime.Scheme { return cp.Client.Scheme() }

// Stop stops it.
func (cp *ControlPlane) Stop() { _ = cp.Env.Stop() }

// Usage is what a process used.
type Usage struct {
	PeakRSSKB int
	CPU       time.Duration
}

// StartBinary runs bin as a cluster admin with the given flags (after
// --kubeconfig); the returned func reads its usage, interrupts it and waits
// (killing it after half a minute).
func (cp *ControlPlane) StartBinary(bin string, args ...string) (stop func() Usage, err error) {
	p, err := cp.StartProcess(bin, args...)
	if err != nil {
		return nil, err
	}
	return p.Stop, nil
}

// StartController runs a controller binary the way every benchmark
// compares it with its ceiling: no leader election, no client-side rate
// limit, workers concurrent writes, errors-only logs, plus extra flags. It
// returns once the controller is ready (its caches synced), as a ceiling
// starts synced.
func (cp *ControlPlane) StartController(bin string, workers int, extra ...string) (stop func() Usage, err error) {
	probes, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	stop, err = cp.StartBinary(bin, append([]string{"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=" + probes,
		"--kube-api-qps=-1", fmt.Sprintf("--workers=%d", workers), "--zap-log-level=error"}, extra...)...)
	if err != nil {
		return nil, err
	}
	if err := WaitReady(probes); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// Informer is a synced informer of obj's kind on the control plane, running
// until ctx ends.
func (cp *ControlPlane) Informer(ctx context.Context, obj client.Object) (cache.Informer, error) {
	c, err := cache.New(cp.Config, cache.Options{Scheme: cp.Scheme()})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, obj)
	if err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("cache did not sync")
	}
	return inf, nil
}

// Process is a binary StartProcess runs.
type Process struct {
	cmd *exec.Cmd
	dir string
}

// StartProcess is StartBinary for callers that also read the usage while
// the process runs.
func (cp *ControlPlane) StartProcess(bin string, args ...string) (*Process, error) {
	kc, err := cp.AdminKubeconfig(filepath.Base(bin))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "plexus-bench")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", path}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Process{cmd: cmd, dir: dir}, nil
}

// Usage is what the process has used so far (peak RSS, CPU time).
func (p *Process) Usage() Usage {
	return Usage{PeakRSSKB: peakRSS(p.cmd.Process.Pid), CPU: cpuTime(p.cmd.Process.Pid)}
}

// RSSKB is the process's resident memory now.
func (p *Process) RSSKB() int { return procStatusKB(p.cmd.Process.Pid, "VmRSS:") }

// Stop reads the usage, interrupts the process and waits (killing it after
// half a minute).
func (p *Process) Stop() Usage {
	defer os.RemoveAll(p.dir)
	u := p.Usage()
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	return u
}

// cpuTime is the user and system time pid has used (clock ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func peakRSS(pid int) int { return procStatusKB(pid, "VmHWM:") }

// procStatusKB reads a kB field of /proc/<pid>/status (0 if unreadable).
func procStatusKB(pid int, field string) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb
		}
	}
	return 0
}

// Median of xs (the upper one for an even count).
func Median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// Percentile is the p-th percentile (0 < p ≤ 1) of ds by nearest rank: the
// smallest sample that at least a fraction p of the samples do not exceed.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	rank := int(math.Ceil(p * float64(len(ds))))
	return ds[min(max(rank, 1), len(ds))-1]
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitReady polls http://addr/readyz until it answers 200 (the controller's
// caches are synced), for at most a minute.
func WaitReady(addr string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("http://%s/readyz did not answer 200 within a minute", addr)
}

// Create runs create(i) for i in [0, n) with workers goroutines and returns
// when the last call returned, with the first error.
func Create(n, workers int, create func(i int) error) (time.Time, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := create(int(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Now(), <-errs
}

// Result is one run of a burst benchmark: a writer (the controller, or the
// ceiling that makes the same writes with nothing decided) serving a burst
// of Size objects.
type Result struct {
	Size int
	Mode string
	// Total is from the first create until everything was served; Tail from
	// the last create until then.
	Total, Tail time.Duration
	Usage       Usage
}

// String is the one-line progress report of a run.
func (r Result) String() string {
	return fmt.Sprintf("%-8s n=%-6d total %v, after last create %v, controller CPU %v, peak RSS %d MiB",
		r.Mode, r.Size, r.Total.Round(time.Millisecond), r.Tail.Round(time.Millisecond), r.Usage.CPU, r.Usage.PeakRSSKB/1024)
}

// Report prints the markdown table of docs/benchmarks.md: per size and mode
// (in the order given) the medians, the ratio to the mode "ceiling", and
// the controller's CPU and peak RSS. objects names what was created
// ("Nodes", "Pods"), served what "served" means ("all allocated").
func Report(all []Result, runs int, modes []string, objects, served string) {
	fmt.Printf("\nMachine: %d CPUs (%s/%s), %s; median of %d runs.\n\n", goruntime.NumCPU(), goruntime.GOOS, goruntime.GOARCH, goruntime.Version(), runs)
	fmt.Printf("| %s | writer | %s (median) | ratio to ceiling | after last create (median) | controller CPU (median) | controller peak RSS |\n", objects, served)
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|")
	type key struct {
		size int
		mode string
	}
	groups := map[key][]Result{}
	var sizes []int
	for _, r := range all {
		if !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
		groups[key{r.Size, r.Mode}] = append(groups[key{r.Size, r.Mode}], r)
	}
	med := func(rs []Result, f func(Result) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = f(r)
		}
		return Median(ds)
	}
	total := func(r Result) time.Duration { return r.Total }
	for _, n := range sizes {
		ceil := groups[key{n, "ceiling"}]
		for _, mode := range modes {
			rs := groups[key{n, mode}]
			if len(rs) == 0 {
				continue
			}
			ratio, cpu, rss := "–", "–", "–"
			if len(ceil) > 0 {
				ratio = fmt.Sprintf("%.2f", med(rs, total).Seconds()/med(ceil, total).Seconds())
			}
			if mode != "ceiling" {
				peak := 0
				for _, r := range rs {
					peak = max(peak, r.Usage.PeakRSSKB)
				}
				cpu = fmt.Sprintf("%.2f s", med(rs, func(r Result) time.Duration { return r.Usage.CPU }).Seconds())
				rss = fmt.Sprintf("%d MiB", peak/1024)
			}
			fmt.Printf("| %d | %s | %.2f s | %s | %.3f s | %s | %s |\n", n, mode, med(rs, total).Seconds(), ratio, med(rs, func(r Result) time.Duration { return r.Tail }).Seconds(), cpu, rss)
		}
	}
}
