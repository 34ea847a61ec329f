// Command cni measures how long a container runtime waits for the Plexus CNI
// plugin: the latency of CNI ADD and DEL, per pod, on a node that fills up to
// -pods pods and is then emptied. The runtime is libcni, as in containerd and
// CRI-O; the network is a conflist of loopback + plexus-cni, the plugin talks
// to a plexus-cni-node (its own process) that serves the node's CiliumNode
// from a real API server. Beside it, as the peer to compare with, the
// reference plugins ptp + host-local in a conflist of the same shape: the
// same veth-per-pod work with node-local files instead of an agent.
//
// Each run starts a fresh kube-apiserver and etcd, the agent, and for every
// plugin a fresh node network namespace; pod namespaces are made before each
// ADD (not timed) and removed after the DELs. Needs root. Usage (see make
// bench-cni):
//
//	go run ./test/bench/cni -pods 200 -runs 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/nodeplugins/cni/client"
	"github.com/plexus-net/plexus/test/bench/benchutil"
	"github.com/plexus-net/plexus/test/netnstest"
)

const nodeName = "bench-node"

// setup is what every run shares: the binaries and where they are.
type setup struct {
	pluginDirs []string // CNI_PATH: bin/ (plexus-cni) and the reference plugins
	agentBin   string
	pods       int
	warmup     int
}

// plugin is one network under test.
type plugin struct {
	name   string
	subnet netip.Prefix // where its pod addresses come from
	// conf is its network configuration list; dir is the run's scratch
	// directory, socket the agent's.
	conf func(dir, socket string) string
	// released checks that the DELs gave every address back.
	released func(ctx context.Context, dir, socket string, keys []client.Key) error
}

var plugins = map[string]plugin{
	"plexus": {
		name:   "loopback + plexus-cni",
		subnet: netip.MustParsePrefix("10.0.0.0/23"), // the CiliumNode's pod CIDR
		conf: func(_, socket string) string {
			return fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "bench-plexus", "plugins": [
				{"type": "loopback"},
				{"type": "plexus-cni", "socket": %q}]}`, socket)
		},
		released: func(ctx context.Context, _, socket string, keys []client.Key) error {
			c := client.New(socket, 5*time.Second)
			for _, k := range keys {
				if _, err := c.Check(ctx, k); !client.IsNotFound(err) {
					return fmt.Errorf("the agent still holds %s after DEL (%w)", k.ContainerID, err)
				}
			}
			return nil
		},
	},
	"ptp": {
		name:   "loopback + ptp + host-local",
		subnet: netip.MustParsePrefix("10.1.0.0/23"),
		conf: func(dir, _ string) string {
			return fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "bench-ptp", "plugins": [
				{"type": "loopback"},
				{"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/23"}]], "dataDir": %q}}]}`,
				filepath.Join(dir, "host-local"))
		},
		released: func(_ context.Context, dir, _ string, _ []client.Key) error {
			// host-local keeps one file per address, named after it.
			files, err := os.ReadDir(filepath.Join(dir, "host-local", "bench-ptp"))
			if err != nil {
				return err
			}
			for _, f := range files {
				if strings.HasPrefix(f.Name(), "10.") {
					return fmt.Errorf("host-local still holds %s after DEL", f.Name())
				}
			}
			return nil
		},
	},
}

// result is one plugin's latencies in one run.
type result struct {
	plugin   string
	run      int
	add, del []time.Duration
}

func main() {
	pods := flag.Int("pods", 200, "pods per run: all are added, then all deleted")
	runs := flag.Int("runs", 3, "runs, each on a fresh API server, agent and node namespace; the median is reported")
	warmup := flag.Int("warmup", 1, "pods added and deleted before the measured ones (not counted), so that the first exec's page faults are not a sample")
	names := flag.String("plugins", "ptp,plexus", "networks to measure: ptp (reference plugins) and plexus; the order rotates per run")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(*pods, *runs, *warmup, strings.Split(*names, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(pods, runs, warmup int, names []string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, links, routes)")
	}
	if pods < 1 || runs < 1 || warmup < 0 {
		return errors.New("-pods and -runs must be at least 1, -warmup at least 0")
	}
	for _, n := range names {
		if _, ok := plugins[n]; !ok {
			return fmt.Errorf("unknown plugin %q: use ptp or plexus", n)
		}
	}
	// Ctrl-C stops the runs and still cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := build(ctx)
	if err != nil {
		return err
	}
	s.pods, s.warmup = pods, warmup
	loadBefore := loadAvg()
	var all []result
	for i := range runs {
		k := i % len(names)
		order := slices.Concat(names[k:], names[:k])
		rs, err := runOnce(ctx, s, i+1, order)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		all = append(all, rs...)
	}
	report(all, names, runs, pods, loadBefore, loadAvg())
	return nil
}

// build builds plexus-cni and plexus-cni-node into bin/ and the reference
// plugins into bin/cni-plugins-<version>/.
func build(ctx context.Context) (*setup, error) {
	bin, err := filepath.Abs("bin")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"plexus-cni", "plexus-cni-node"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, name), "./nodeplugins/cni/cmd/"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %w\n%s", name, err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "bash", "hack/build-cniplugins.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("building the reference CNI plugins: %w", err)
	}
	return &setup{pluginDirs: []string{bin, strings.TrimSpace(string(out))}, agentBin: filepath.Join(bin, "plexus-cni-node")}, nil
}

// runOnce starts a control plane and the agent of a node whose CiliumNode
// holds 10.0.0.0/23 (as the IPAM controller would have given it), then
// measures each plugin in turn.
func runOnce(ctx context.Context, s *setup, n int, order []string) ([]result, error) {
	cp, err := benchutil.Start()
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	dir, err := os.MkdirTemp("", "pcnib") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "agent.sock")

	cn := &ciliumv2.CiliumNode{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	cn.Spec.IPAM.PodCIDRs = []string{plugins["plexus"].subnet.String()}
	if err := cp.Client.Create(ctx, cn); err != nil {
		return nil, err
	}
	// The bench's pods are no Pod objects: a grace longer than any run keeps
	// the agent's garbage collector from releasing them mid-run.
	stopAgent, err := cp.StartBinary(s.agentBin, "--node-name="+nodeName, "--socket="+socket,
		"--state-dir="+filepath.Join(dir, "state"), "--ipam-mode=cluster-pool", "--gc-grace=1h", "--zap-log-level=error")
	if err != nil {
		return nil, err
	}
	defer stopAgent()
	if err := waitAgent(ctx, socket); err != nil {
		return nil, err
	}

	var out []result
	for _, name := range order {
		p := plugins[name]
		add, del, err := measure(ctx, s, p, dir, socket)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		r := result{plugin: name, run: n, add: add, del: del}
		fmt.Fprintf(os.Stderr, "run %d %-28s ADD p50 %s p99 %s   DEL p50 %s p99 %s\n", n, p.name,
			ms(benchutil.Percentile(add, 0.5)), ms(benchutil.Percentile(add, 0.99)),
			ms(benchutil.Percentile(del, 0.5)), ms(benchutil.Percentile(del, 0.99)))
		out = append(out, r)
	}
	return out, nil
}

// waitAgent polls the agent's status on its socket until it is ready (it has
// read its CiliumNode and holds the CIDR), for at most a minute.
func waitAgent(ctx context.Context, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := client.New(socket, time.Second)
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Ready {
			return nil
		}
		if err == nil {
			err = errors.New(st.Reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent is not ready after a minute: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// measure fills a fresh node namespace with pods through p's network, one
// ADD at a time, then deletes them all in the same order, and returns the
// latency of each call. It checks that every ADD gave a distinct address of
// p's subnet and that the DELs left no link and no address behind.
func measure(ctx context.Context, s *setup, p plugin, dir, socket string) (adds, dels []time.Duration, err error) {
	node, err := netnstest.Add("pcnibn")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = netnstest.Delete(node) }()
	if out, err := exec.Command("ip", "-n", node, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("lo up: %w: %s", err, out)
	}
	scratch, err := os.MkdirTemp(dir, "net")
	if err != nil {
		return nil, nil, err
	}
	list, err := libcni.NetworkConfFromBytes([]byte(p.conf(scratch, socket)))
	if err != nil {
		return nil, nil, err
	}
	cni := libcni.NewCNIConfigWithCacheDir(s.pluginDirs, filepath.Join(scratch, "cache"), nil)

	var sandboxes []string
	defer func() {
		for _, ns := range sandboxes {
			_ = netnstest.Delete(ns)
		}
	}()
	newPod := func(i int) (*libcni.RuntimeConf, error) {
		ns, err := netnstest.Add("pcnibp")
		if err != nil {
			return nil, err
		}
		sandboxes = append(sandboxes, ns)
		return &libcni.RuntimeConf{
			ContainerID: fmt.Sprintf("bench-%s-%04d", ns, i),
			NetNS:       "/run/netns/" + ns,
			IfName:      "eth0",
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "bench"},
				{"K8S_POD_NAME", fmt.Sprintf("pod-%04d", i)}, {"K8S_POD_UID", fmt.Sprintf("uid-%s-%04d", ns, i)}},
		}, nil
	}
	// timed runs f from the node namespace, as the runtime on a node would.
	timed := func(f func() error) (time.Duration, error) {
		var d time.Duration
		err := netnstest.Do(node, func() error {
			start := time.Now()
			err := f()
			d = time.Since(start)
			return err
		})
		return d, err
	}
	add := func(rt *libcni.RuntimeConf) (time.Duration, netip.Addr, error) {
		var res *current.Result
		d, err := timed(func() error {
			r, err := cni.AddNetworkList(ctx, list, rt)
			if err == nil {
				res, err = current.NewResultFromResult(r)
			}
			return err
		})
		if err != nil {
			return 0, netip.Addr{}, fmt.Errorf("ADD %s: %w", rt.ContainerID, err)
		}
		if len(res.IPs) != 1 {
			return 0, netip.Addr{}, fmt.Errorf("ADD %s returned %d addresses, want 1", rt.ContainerID, len(res.IPs))
		}
		addr, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
		return d, addr, nil
	}
	del := func(rt *libcni.RuntimeConf) (time.Duration, error) {
		d, err := timed(func() error { return cni.DelNetworkList(ctx, list, rt) })
		if err != nil {
			return 0, fmt.Errorf("DEL %s: %w", rt.ContainerID, err)
		}
		return d, nil
	}

	for i := range s.warmup {
		rt, err := newPod(-1 - i)
		if err != nil {
			return nil, nil, err
		}
		if _, _, err := add(rt); err != nil {
			return nil, nil, err
		}
		if _, err := del(rt); err != nil {
			return nil, nil, err
		}
	}
	var pods []*libcni.RuntimeConf
	seen := map[netip.Addr]bool{}
	for i := range s.pods {
		rt, err := newPod(i)
		if err != nil {
			return nil, nil, err
		}
		d, addr, err := add(rt)
		if err != nil {
			return nil, nil, err
		}
		if !p.subnet.Contains(addr) || seen[addr] {
			return nil, nil, fmt.Errorf("ADD %s gave %v: outside %v or given twice", rt.ContainerID, addr, p.subnet)
		}
		seen[addr] = true
		pods = append(pods, rt)
		adds = append(adds, d)
	}
	var keys []client.Key
	for _, rt := range pods {
		d, err := del(rt)
		if err != nil {
			return nil, nil, err
		}
		dels = append(dels, d)
		keys = append(keys, client.Key{ContainerID: rt.ContainerID, IfName: rt.IfName})
	}

	links, err := exec.Command("ip", "-n", node, "-o", "link", "show").Output()
	if err != nil {
		return nil, nil, err
	}
	if n := strings.Count(strings.TrimSpace(string(links)), "\n") + 1; n != 1 {
		return nil, nil, fmt.Errorf("%d links left in the node namespace after DEL, want only lo:\n%s", n, links)
	}
	if err := p.released(ctx, scratch, socket, keys); err != nil {
		return nil, nil, err
	}
	return adds, dels, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func report(all []result, names []string, runs, pods int, loadBefore, loadAfter string) {
	fmt.Printf("\nMachine: %d CPUs (%s/%s), kernel %s, %s; load average (1/5/15 min) %s before, %s after; %d pods per run, median of %d runs.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, kernel(), runtime.Version(), loadBefore, loadAfter, pods, runs)
	fmt.Println("| network | run | ADD p50 | ADD p99 | DEL p50 | DEL p99 |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	type stat func(result) time.Duration
	stats := []stat{
		func(r result) time.Duration { return benchutil.Percentile(r.add, 0.5) },
		func(r result) time.Duration { return benchutil.Percentile(r.add, 0.99) },
		func(r result) time.Duration { return benchutil.Percentile(r.del, 0.5) },
		func(r result) time.Duration { return benchutil.Percentile(r.del, 0.99) },
	}
	row := func(name, run string, f func(stat) time.Duration) {
		cells := make([]string, len(stats))
		for i, s := range stats {
			cells[i] = ms(f(s))
		}
		fmt.Printf("| %s | %s | %s |\n", name, run, strings.Join(cells, " | "))
	}
	for _, name := range names {
		var rs []result
		for _, r := range all {
			if r.plugin == name {
				rs = append(rs, r)
			}
		}
		for _, r := range rs {
			row(plugins[name].name, fmt.Sprint(r.run), func(s stat) time.Duration { return s(r) })
		}
		row(plugins[name].name, "**median**", func(s stat) time.Duration {
			ds := make([]time.Duration, len(rs))
			for i, r := range rs {
				ds[i] = s(r)
			}
			return benchutil.Median(ds)
		})
	}
}
