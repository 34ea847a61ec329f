package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// The lab's second router: BIRD 2 (Debian's bird2) in its own namespace on
// the segment, another make of BGP speaker and another AS, peering with
// every node. It installs nothing and announces nothing: it is a second
// upstream whose view tests compare with FRR's (iBGP with one, eBGP with
// the other; per-peer settings; a peer that is not FRR).

// BirdASN is the second router's autonomous system number.
const BirdASN = 65100

const birdBinary = "/usr/sbin/bird"

// BirdNetns is the second router's network namespace.
func (l Layout) BirdNetns() string { return l.Name + "-bird" }

// BirdVeth is the host-side (bridge port) end of its eth0.
func (l Layout) BirdVeth() string { return l.Name + "bd" }

// BirdIP is its address on the segment.
func (l Layout) BirdIP() netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(l.Segment), 253})
}

// BirdDir holds its configuration, control socket and per-neighbor
// settings.
func (l Layout) BirdDir() string { return filepath.Join(l.Dir, "bird") }

// BirdSocket is the control socket: birdc -s <BirdSocket>.
func (l Layout) BirdSocket() string { return filepath.Join(l.BirdDir(), "bird.ctl") }

// BirdAvailable reports whether bird and birdc are installed.
func BirdAvailable() error {
	for _, p := range []string{birdBinary, "/usr/sbin/birdc"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("BIRD is not installed (missing %s)", p)
		}
	}
	return nil
}

// setupBird builds the second router's namespace on the segment and
// starts BIRD, recorded as process "bird" of node BirdNetns().
func setupBird(ctx context.Context, l Layout, s *State) error {
	ns := l.BirdNetns()
	s.Bird = ns
	if err := onSegment(l, s, ns, l.BirdVeth(), l.BirdIP().String(), ""); err != nil {
		return err
	}
	if err := os.MkdirAll(l.BirdDir(), 0o755); err != nil {
		return err
	}
	if err := writeBirdConfig(l, s.Nodes); err != nil {
		return err
	}
	spec := proc.Spec{Path: birdBinary, Args: []string{"-f", "-c", filepath.Join(l.BirdDir(), "bird.conf"), "-s", l.BirdSocket(),
		"-P", filepath.Join(l.BirdDir(), "bird.pid")}, Netns: ns, Log: filepath.Join(l.LogDir(), ns+"-bird.log"), Dir: l.BirdDir()}
	h, err := proc.Start(spec)
	if err != nil {
		return err
	}
	p := Process{Name: "bird", Node: ns, Spec: spec, Handle: h}
	if i := s.findProcess(ns, "bird"); i >= 0 {
		s.Processes[i] = p
	} else {
		s.Processes = append(s.Processes, p)
	}
	if err := s.save(); err != nil {
		return err
	}
	return waitFor(ctx, 20*time.Second, "BIRD (log "+spec.Log+")", func() error {
		if !h.Alive() {
			return errors.New("bird exited")
		}
		_, err := Birdc(l, "show", "status")
		return err
	})
}

// birdNeighborLines are the per-neighbor settings ConfigureBirdNeighbor
// stored, by neighbor address.
func birdNeighborLines(l Layout) map[string][]string {
	out := map[string][]string{}
	files, _ := filepath.Glob(filepath.Join(l.BirdDir(), "neighbor-*.conf"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		a := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "neighbor-"), ".conf")
		out[a] = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	return out
}

func writeBirdConfig(l Layout, nodes []Node) error {
	conf := birdConfig(l, nodes, birdNeighborLines(l))
	return os.WriteFile(filepath.Join(l.BirdDir(), "bird.conf"), []byte(conf), 0o644)
}

// birdConfig is BIRD's configuration: AS BirdASN, every node a neighbor of
// any other AS (`external`), reconnecting every second (also after an
// error), importing all, exporting nothing. extra holds per-neighbor statements; one starting
// with "neighbor " replaces the default neighbor line.
func birdConfig(l Layout, nodes []Node, extra map[string][]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `router id %s;
log stderr { info, remote, warning, error, auth, fatal, bug };
protocol device { scan time 10; }
template bgp lab_nodes {
	local %s as %d;
	# Retry at once: a node's speaker restarts, or starts listening, in a test.
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 10;
	ipv4 { import all; export none; };
}
`, l.BirdIP(), l.BirdIP(), BirdASN)
	for _, n := range nodes {
		lines := extra[n.IP]
		neighbor := fmt.Sprintf("neighbor %s external;", n.IP)
		if i := slices.IndexFunc(lines, func(s string) bool { return strings.HasPrefix(s, "neighbor ") }); i >= 0 {
			neighbor = lines[i]
			lines = slices.Delete(slices.Clone(lines), i, i+1)
		}
		fmt.Fprintf(&b, "protocol bgp %s from lab_nodes {\n\tdescription %q;\n\t%s\n", birdProtocol(n), n.Name, neighbor)
		for _, line := range lines {
			fmt.Fprintf(&b, "\t%s\n", line)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// birdProtocol is the name of the BGP protocol for node n: n<index>.
func birdProtocol(n Node) string { return fmt.Sprintf("n%d", n.Index) }

// Birdc runs a birdc command on the lab's second router.
func Birdc(l Layout, args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", l.BirdSocket()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ConfigureBirdNeighbor replaces the extra statements of the second
// router's session with neighbor (a node address) and reconfigures BIRD,
// e.g. `neighbor 198.18.0.11 internal;` (iBGP), `password "s3cret";`,
// `neighbor 198.18.0.11 port 1790 external;`. No lines restore the
// default. Unlike FRR's run-time changes these are kept in BirdDir.
func ConfigureBirdNeighbor(l Layout, neighbor netip.Addr, lines ...string) error {
	s, err := loadState(l.StateFile())
	if err != nil {
		return err
	}
	if s.Bird == "" {
		return errors.New("the lab runs no BIRD")
	}
	extra := birdNeighborLines(l)
	extra[neighbor.String()] = lines
	// Check the new configuration before it replaces the running one.
	dir := l.BirdDir()
	next := filepath.Join(dir, "bird.conf.next")
	if err := os.WriteFile(next, []byte(birdConfig(l, s.Nodes, extra)), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(birdBinary, "-p", "-c", next).CombinedOutput(); err != nil {
		_ = os.Remove(next)
		return fmt.Errorf("BIRD rejects %q: %s", lines, strings.TrimSpace(string(out)))
	}
	f := filepath.Join(dir, "neighbor-"+neighbor.String()+".conf")
	if len(lines) == 0 {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	} else if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(next, filepath.Join(dir, "bird.conf")); err != nil {
		return err
	}
	out, err := Birdc(l, "configure")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		return fmt.Errorf("BIRD refused the configuration: %s", strings.TrimSpace(out))
	}
	return nil
}
