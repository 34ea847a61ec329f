// Package benchutil holds what the scale benchmarks share: a fresh control
// plane per run, a controller binary run as its own process with its CPU time
// and peak RSS read from /proc, and medians.
package benchutil

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexus-net/plexus/test/testenv"
	"k8s.io/apimachinery/pkg/runtime"
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

// Median of ds (the upper one for an even count).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
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
