// Package netnstest gives kernel tests their own network namespaces: named,
// removed in t.Cleanup, never with a route out of the machine. Tests that use
// it need root and skip with the reason otherwise.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// RequireRoot skips t unless the test runs as root (network namespaces, links
// and routes need CAP_NET_ADMIN). CI runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root); run `sudo make test` to include it")
	}
}

// Name returns a short name unique to this run with the given prefix, usable
// for a namespace or (at most 15 bytes) a link.
func Name(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	n := prefix + hex.EncodeToString(b)
	if len(n) > 15 {
		n = n[len(n)-15:]
	}
	return n
}

// New creates a named network namespace with lo up and removes it when the
// test ends. The namespace is visible to `ip netns` as /run/netns/<name>.
func New(t testing.TB, prefix string) string {
	t.Helper()
	RequireRoot(t)
	name, err := Add(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Delete(name) })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Add creates a named network namespace outside of a test (benchmarks,
// tools) with lo down, as a container runtime's new sandbox has it. The
// caller removes it with Delete.
func Add(prefix string) (string, error) {
	name := Name(prefix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	return name, nil
}

// Delete removes a named network namespace, and with it every link in it.
func Delete(name string) error {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, out)
	}
	return nil
}

// Run runs a command (typically ip or bridge) and fails t with its output if
// it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Do runs f on a locked OS thread switched into namespace ns, and switches
// back afterwards. Netlink handles and sockets opened in f belong to ns.
func Do(ns string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer func() { _ = netns.Set(orig) }()
	return f()
}

// Exec runs a command inside ns (ip netns exec) and returns its combined
// output and error; tests use it for ping and curl-like probes.
func Exec(ns string, name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	return string(out), err
}

// ReadFrom connects from namespace ns to TCP address addr (host:port) and
// returns everything the server sends before it closes the connection: the
// way kernel tests ask a test server what it saw (e.g. the source address).
func ReadFrom(ns, addr string) (string, error) {
	var got string
	err := Do(ns, func() error {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

// Serve listens on TCP address addr (":80") in namespace ns and handles
// every connection with handle, which the connection is closed after,
// until the test ends.
func Serve(t testing.TB, ns, addr string, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := Do(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
}

// AnswerRemoteHost is a Serve handler that answers with the address the
// connection came from: how tests see what a NAT made of the source.
func AnswerRemoteHost(c net.Conn) {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	_, _ = io.WriteString(c, host)
}
