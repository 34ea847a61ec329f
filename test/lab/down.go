package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// Down stops every process of lab name, runs CNI DEL for its pods, and
// deletes its namespaces, links and files: first what the state file lists,
// then anything else carrying the lab's name (a crashed run's leftovers).
// A lab that does not exist is not an error.
func Down(ctx context.Context, stateRoot, name string, out io.Writer) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("--name %q is not a lab name", name)
	}
	l := LayoutFor(stateRoot, name, 0)
	s, err := loadState(l.StateFile())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "== state file unreadable (%v): sweeping by name\n", err)
	}
	if s != nil {
		l.Segment = s.Segment
		fmt.Fprintf(out, "== stopping lab %s\n", name)
		for _, n := range s.Nodes {
			stopNode(ctx, s, n, out)
		}
		// Control plane last, in reverse start order.
		for i := len(s.Processes) - 1; i >= 0; i-- {
			if err := s.Processes[i].Handle.Stop(10 * time.Second); err != nil {
				fmt.Fprintf(out, "   %s: %v\n", s.Processes[i].ID(), err)
			}
		}
	}
	// Leftovers: processes inside the lab's namespaces, and processes whose
	// command line names the lab's state dir.
	killPIDs(pidsInNetns(labNetns(name, s)))
	killPIDs(proc.FindByArg(l.Dir + string(filepath.Separator)))
	errs := sweepNetwork(name, s)
	errs = append(errs, unmountUnder(l.Dir))
	if err := os.RemoveAll(l.Dir); err != nil {
		errs = append(errs, err)
	}
	if left := leftovers(name); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still present after down: %s", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// stopNode stops a node's pod runner, tears its pods down (CNI DEL, pod
// namespaces) while the network plugins still run, then stops the rest of
// its processes.
func stopNode(ctx context.Context, s *State, n Node, out io.Writer) {
	i := s.findProcess(n.Name, "podrunner")
	if i < 0 {
		return
	}
	pr := s.Processes[i]
	if err := pr.Handle.Stop(10 * time.Second); err != nil {
		fmt.Fprintf(out, "   %s: %v\n", pr.ID(), err)
	}
	if netnsExists(n.Name) {
		// The pod runner's own code does the teardown, inside the node's
		// namespace, with the flags it ran with.
		spec := pr.Spec
		spec.Args = append(slices.Clone(spec.Args), "--teardown")
		cmd := spec.Command()
		tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd = exec.CommandContext(tctx, cmd.Path, cmd.Args[1:]...)
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(out, "   %s pod teardown: %v: %s\n", n.Name, err, strings.TrimSpace(string(b)))
		}
	}
	for j := len(s.Processes) - 1; j >= 0; j-- {
		if p := s.Processes[j]; p.Node == n.Name {
			if err := p.Handle.Stop(10 * time.Second); err != nil {
				fmt.Fprintf(out, "   %s: %v\n", p.ID(), err)
			}
		}
	}
}

// labNetns lists the lab's namespaces: recorded ones and any with its prefix.
func labNetns(name string, s *State) []string {
	var names []string
	if s != nil {
		names = append(names, s.Netns...)
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), name+"-") && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	return names
}

// pidsInNetns returns the processes whose network namespace is one of the
// named ones (compared by nsfs inode).
func pidsInNetns(names []string) []int {
	inodes := map[uint64]bool{}
	for _, n := range names {
		var st syscall.Stat_t
		if err := syscall.Stat(proc.NetnsPath(n), &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+e.Name()+"/ns/net", &st); err == nil && inodes[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}

func killPIDs(pids []int) {
	var hs []proc.Handle
	for _, pid := range pids {
		hs = append(hs, proc.Of(pid))
	}
	for _, h := range hs {
		_ = syscall.Kill(h.PID, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, h := range hs {
		for h.Alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if h.Alive() {
			_ = syscall.Kill(h.PID, syscall.SIGKILL)
		}
	}
}

// leftovers names what of lab name still exists: namespaces, host links,
// processes in its state dir, the state dir.
func leftovers(name string) []string {
	var left []string
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), name+"-") {
				left = append(left, "netns "+e.Name())
			}
		}
	}
	if entries, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range entries {
			if isLabLink(name, e.Name()) {
				left = append(left, "link "+e.Name())
			}
		}
	}
	return left
}

// Leftovers is what a test asserts is empty after Down: namespaces, links
// and processes of lab name.
func Leftovers(stateRoot, name string) []string {
	left := leftovers(name)
	dir := filepath.Join(stateRoot, name)
	for _, pid := range proc.FindByArg(dir + string(filepath.Separator)) {
		if proc.Of(pid).Alive() {
			left = append(left, fmt.Sprintf("process %d", pid))
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "dir "+dir)
	}
	return left
}

// unmountUnder unmounts every mount below dir (the policy plugins' bpffs),
// deepest first, so the state dir can be removed.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(f[1], dir+string(filepath.Separator)) {
			points = append(points, f[1])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
