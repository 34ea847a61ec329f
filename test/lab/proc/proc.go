// Package proc starts the lab's long-running processes detached from the
// command that started them (own session, output to a log file) and stops
// them again by process group. A process is identified by its pid and its
// start time, so a pid reused by an unrelated process is never signalled.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec is how to start one process.
type Spec struct {
	Path  string   `json:"path"`
	Args  []string `json:"args,omitempty"`
	Env   []string `json:"env,omitempty"`   // added to the environment of the caller
	Netns string   `json:"netns,omitempty"` // run inside this named network namespace (see Command)
	Log   string   `json:"log"`             // stdout and stderr, appended
	Dir   string   `json:"dir,omitempty"`
}

// NetnsPath is where `ip netns` keeps the named namespace.
func NetnsPath(name string) string { return "/run/netns/" + name }

// Handle identifies a started process.
type Handle struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"` // clock ticks since boot, /proc/<pid>/stat field 22
}

// Command returns the exec.Cmd for spec: inside its netns when it has one.
// It enters only the network namespace (nsenter --net), not a mount
// namespace as `ip netns exec` does: namespaces the process creates with
// `ip netns add` then stay visible on the host, and /sys/fs/bpf stays the
// host's bpffs. nsenter execs the program, so the pid is the program's own.
func (s Spec) Command() *exec.Cmd {
	path, args := s.Path, s.Args
	if s.Netns != "" {
		args = append([]string{"--net=" + NetnsPath(s.Netns), "--", path}, args...)
		path = "nsenter"
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	return cmd
}

// Start starts spec in a new session (so it survives the caller and can be
// stopped as a group) with output to spec.Log. The caller does not wait for
// it: it is reaped by init once the caller exits.
func Start(s Spec) (Handle, error) {
	log, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Handle{}, err
	}
	defer log.Close()
	cmd := s.Command()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Handle{}, fmt.Errorf("starting %s: %w", s.Path, err)
	}
	h := Handle{PID: cmd.Process.Pid}
	h.StartTime, _ = startTime(h.PID)
	// Reap it if it exits while the caller still runs, so Alive sees it gone.
	go func() { _ = cmd.Wait() }()
	return h, nil
}

// Alive reports whether the process still runs (and is the one started).
func (h Handle) Alive() bool {
	if h.PID <= 0 {
		return false
	}
	st, state, err := stat(h.PID)
	if err != nil || state == "Z" || state == "X" {
		return false
	}
	return h.StartTime == 0 || st == h.StartTime
}

// Stop sends SIGTERM to the process group, waits up to grace for the leader
// to exit, then sends SIGKILL to the group. Stopping a process that is gone
// is not an error.
func (h Handle) Stop(grace time.Duration) error {
	if !h.Alive() {
		return nil
	}
	_ = syscall.Kill(-h.PID, syscall.SIGTERM)
	_ = syscall.Kill(h.PID, syscall.SIGTERM) // in case it left its group
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !h.Alive() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-h.PID, syscall.SIGKILL)
	_ = syscall.Kill(h.PID, syscall.SIGKILL)
	for range 40 {
		if !h.Alive() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("process %d survived SIGKILL", h.PID)
}

// Kill sends SIGKILL to the process group at once, as a crash would end it
// (no chance to clean up or say goodbye), and waits until it is gone.
func (h Handle) Kill() error {
	if !h.Alive() {
		return nil
	}
	_ = syscall.Kill(-h.PID, syscall.SIGKILL)
	_ = syscall.Kill(h.PID, syscall.SIGKILL)
	for range 100 {
		if !h.Alive() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("process %d survived SIGKILL", h.PID)
}

// Signal sends sig to the process group.
func (h Handle) Signal(sig syscall.Signal) error {
	if !h.Alive() {
		return errors.New("not running")
	}
	return syscall.Kill(-h.PID, sig)
}

// Of returns the handle of a running pid (for adopting processes whose pid
// was recorded without a start time).
func Of(pid int) Handle {
	h := Handle{PID: pid}
	h.StartTime, _ = startTime(pid)
	return h
}

// FindByArg returns the pids of processes whose command line contains arg as
// a substring: the lab uses its state directory, which every process it
// starts is given, to find what a crashed run left behind.
func FindByArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), arg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func startTime(pid int) (uint64, error) {
	st, _, err := stat(pid)
	return st, err
}

// stat reads the start time and state of pid from /proc/<pid>/stat.
func stat(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	// The command name is in parentheses and may hold spaces: split after it.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", errors.New("malformed stat")
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, "", errors.New("malformed stat")
	}
	st, err := strconv.ParseUint(fields[19], 10, 64)
	return st, fields[0], err
}
