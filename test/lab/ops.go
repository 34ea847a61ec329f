package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// Open loads the state of a running lab.
func Open(stateRoot, name string) (*State, Layout, error) {
	l := LayoutFor(stateRoot, name, 0)
	s, err := loadState(l.StateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, l, fmt.Errorf("%w: lab %s is not up (no %s)", errNoLab, name, l.StateFile())
	}
	if err != nil {
		return nil, l, err
	}
	l.Segment = s.Segment
	return s, l, nil
}

// Status prints the lab's processes, nodes and where to look.
func Status(stateRoot, name string, out io.Writer) error {
	s, l, err := Open(stateRoot, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "lab %s: CNI %s, datapath %s, routing %s, IPAM mode %s, API server %s\n", s.Name, s.CNI, s.Datapath, s.RoutingMode, s.IPAMMode, l.APIServerURL(s))
	fmt.Fprintf(out, "kubeconfig: %s\nlogs: %s\n\n", l.Kubeconfig(), l.LogDir())
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tPID\tSTATE\tLOG")
	for _, p := range s.Processes {
		state := "running"
		if !p.Handle.Alive() {
			state = "STOPPED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.ID(), p.Handle.PID, state, p.Spec.Log)
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETNS\tIP")
	for _, n := range s.Nodes {
		ns := n.Name
		if !netnsExists(ns) {
			ns += " (MISSING)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, ns, strings.Join(n.IPs(), ","))
	}
	return tw.Flush()
}

// NodeDelete removes one node: its processes and pods (CNI DEL), its
// namespace and bridge port, its Node object and its Pod objects; the rest
// keeps running.
func NodeDelete(ctx context.Context, stateRoot, name, node string, out io.Writer) error {
	s, l, err := Open(stateRoot, name)
	if err != nil {
		return err
	}
	n, err := s.node(node)
	if err != nil {
		return err
	}
	stopNode(ctx, s, n, out)
	killPIDs(pidsInNetns([]string{n.Name}))
	if netnsExists(n.Name) {
		if err := ip("netns", "del", n.Name); err != nil {
			return err
		}
	}
	host := l.HostVeth(n.Index)
	if linkExists(host) {
		_ = ip("link", "del", host)
	}
	if s.Datapath == "standin" {
		removeStandinRoutesTo(s, n)
	}
	cs, err := adminClient(l)
	if err != nil {
		return err
	}
	if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Node %s: %w", n.Name, err)
	}
	// Its pods are gone with it: delete their objects now rather than wait
	// for the pod garbage collector, so controllers replace them at once.
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, p := range pods.Items {
		if err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting pod %s/%s of node %s: %w", p.Namespace, p.Name, n.Name, err)
		}
	}
	s.Nodes = slices.DeleteFunc(s.Nodes, func(x Node) bool { return x.Name == n.Name })
	s.Processes = slices.DeleteFunc(s.Processes, func(p Process) bool { return p.Node == n.Name })
	s.Netns = slices.DeleteFunc(s.Netns, func(x string) bool { return x == n.Name })
	s.Links = slices.DeleteFunc(s.Links, func(x string) bool { return x == host })
	if err := s.save(); err != nil {
		return err
	}
	_ = unmountUnder(l.NodeDir(n.Name))
	_ = os.RemoveAll(l.NodeDir(n.Name))
	fmt.Fprintf(out, "== node %s deleted\n", n.Name)
	return nil
}

// Restart stops one process (node "" for the control plane) and starts it
// again with the same command line; everything else keeps running.
func Restart(stateRoot, name, node, component string, out io.Writer) error {
	s, i, err := openProcess(stateRoot, name, node, component)
	if err != nil {
		return err
	}
	p := s.Processes[i]
	if err := p.Handle.Stop(10 * time.Second); err != nil {
		return err
	}
	return startAgain(s, i, "restarted", out)
}

// RestartWithFlag restarts one process as Restart does, with --flag=value
// in place of the flag's earlier value (or added): a setting changed the
// way a Helm upgrade changes a container's arguments. The change stays in
// the lab's state for later restarts.
func RestartWithFlag(stateRoot, name, node, component, flag, value string, out io.Writer) error {
	s, i, err := openProcess(stateRoot, name, node, component)
	if err != nil {
		return err
	}
	p := &s.Processes[i]
	if err := p.Handle.Stop(10 * time.Second); err != nil {
		return err
	}
	arg, prefix := "--"+flag+"="+value, "--"+flag+"="
	args := slices.DeleteFunc(slices.Clone(p.Spec.Args), func(a string) bool { return strings.HasPrefix(a, prefix) })
	p.Spec.Args = append(args, arg)
	return startAgain(s, i, "restarted with "+arg, out)
}

// KillComponent ends one process with SIGKILL, as a crash would: it gets no
// chance to clean up or hand over. It stays in the state, stopped, until
// StartComponent (or Restart) starts it again.
func KillComponent(stateRoot, name, node, component string, out io.Writer) error {
	s, i, err := openProcess(stateRoot, name, node, component)
	if err != nil {
		return err
	}
	if err := s.Processes[i].Handle.Kill(); err != nil {
		return err
	}
	fmt.Fprintf(out, "== %s killed\n", s.Processes[i].ID())
	return nil
}

// StartComponent starts a stopped process again with its recorded command
// line; one that runs is left alone.
func StartComponent(stateRoot, name, node, component string, out io.Writer) error {
	s, i, err := openProcess(stateRoot, name, node, component)
	if err != nil {
		return err
	}
	if s.Processes[i].Handle.Alive() {
		return nil
	}
	return startAgain(s, i, "started", out)
}

// SetNodeLink cuts node's link to the lab segment (up false: its bridge
// port goes down, so its eth0 loses carrier) or restores it; the node's
// processes keep running. This is a node that drops off the network, as
// when its cable or switch port fails.
func SetNodeLink(stateRoot, name, node string, up bool, out io.Writer) error {
	s, l, err := Open(stateRoot, name)
	if err != nil {
		return err
	}
	n, err := s.node(node)
	if err != nil {
		return err
	}
	state := map[bool]string{true: "up", false: "down"}[up]
	if err := ip("link", "set", l.HostVeth(n.Index), state); err != nil {
		return err
	}
	fmt.Fprintf(out, "== %s link %s\n", node, state)
	return nil
}

// openProcess loads the lab's state and finds a process in it.
func openProcess(stateRoot, name, node, component string) (*State, int, error) {
	s, _, err := Open(stateRoot, name)
	if err != nil {
		return nil, -1, err
	}
	i := s.findProcess(node, component)
	if i < 0 {
		var ids []string
		for _, p := range s.Processes {
			ids = append(ids, p.ID())
		}
		return nil, -1, fmt.Errorf("no process %s/%s in lab %s (processes: %v)", node, component, name, ids)
	}
	return s, i, nil
}

// startAgain starts process i with its recorded spec and saves its handle.
func startAgain(s *State, i int, verb string, out io.Writer) error {
	h, err := proc.Start(s.Processes[i].Spec)
	if err != nil {
		return err
	}
	s.Processes[i].Handle = h
	if err := s.save(); err != nil {
		return err
	}
	fmt.Fprintf(out, "== %s %s (pid %d)\n", s.Processes[i].ID(), verb, h.PID)
	return nil
}

// PodLogs returns the log file of a container of pod namespace/name, where
// the pod runner writes the container's output in the CRI log format (see
// crilog), without the API server (`kubectl logs` reads the same file
// through the pod runner's log API). container may be empty for the first
// one found.
func PodLogs(stateRoot, name, namespace, pod, container string) (string, error) {
	s, l, err := Open(stateRoot, name)
	if err != nil {
		return "", err
	}
	for _, n := range s.Nodes {
		recs, _ := filepath.Glob(filepath.Join(l.NodeDir(n.Name), "podrunner", "pods", "*", "pod.json"))
		for _, path := range recs {
			var rec struct{ Namespace, Name string }
			b, err := os.ReadFile(path)
			if err != nil || json.Unmarshal(b, &rec) != nil || rec.Namespace != namespace || rec.Name != pod {
				continue
			}
			logs, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.log"))
			for _, lf := range logs {
				if strings.HasSuffix(lf, ".previous.log") {
					continue // a restarted container's run before
				}
				if container == "" || filepath.Base(lf) == container+".log" {
					return lf, nil
				}
			}
			return "", fmt.Errorf("pod %s/%s has no log for container %q yet", namespace, pod, container)
		}
	}
	return "", fmt.Errorf("pod %s/%s is not running on any node of lab %s", namespace, pod, name)
}
