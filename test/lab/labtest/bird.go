package labtest

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/test/lab"
)

// Bird is the lab's second router: BIRD on the segment, another AS, which
// imports what the nodes send and sends them nothing.
type Bird struct {
	Netns  string
	IP     netip.Addr
	ASN    uint32
	Socket string // birdc -s <Socket>
}

// Bird describes the lab's second router; the test skips when the lab runs
// none (bird2 not installed and not installable).
func (l *Lab) Bird(t testing.TB) Bird {
	t.Helper()
	s, _, err := lab.Open(l.StateRoot, l.Options.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Bird == "" {
		t.Skip("the lab runs no BIRD (bird2 was not installed at lab up)")
	}
	return Bird{Netns: l.Layout.BirdNetns(), IP: l.Layout.BirdIP(), ASN: lab.BirdASN, Socket: l.Layout.BirdSocket()}
}

// Birdc runs a birdc command on the second router.
func (l *Lab) Birdc(args ...string) (string, error) { return lab.Birdc(l.Layout, args...) }

// ConfigureBirdNeighbor replaces the second router's extra statements for
// its session with neighbor, e.g. `neighbor 198.18.x.11 internal;` or
// `password "s3cret";`; none restores the default.
func (l *Lab) ConfigureBirdNeighbor(t testing.TB, neighbor netip.Addr, lines ...string) {
	t.Helper()
	if err := lab.ConfigureBirdNeighbor(l.Layout, neighbor, lines...); err != nil {
		t.Fatal(err)
	}
}

// BirdNeighbor is the second router's view of one session.
type BirdNeighbor struct {
	State          string // BGP state: Idle, Connect, Active, OpenSent, OpenConfirm, Established
	RemoteAS       uint32
	HoldTime       time.Duration // negotiated once Established
	Keepalive      time.Duration
	RoutesImported int
	LastError      string
}

// ParseBirdProtocols decodes `birdc show protocols all`: the BGP
// protocols, by neighbor address.
func ParseBirdProtocols(out string) (map[netip.Addr]BirdNeighbor, error) {
	res := map[netip.Addr]BirdNeighbor{}
	var cur *BirdNeighbor
	var addr netip.Addr
	flush := func() {
		if cur != nil && addr.IsValid() {
			res[addr] = *cur
		}
		cur, addr = nil, netip.Addr{}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			flush()
			if f := strings.Fields(line); len(f) > 1 && f[1] == "BGP" {
				cur = &BirdNeighbor{}
			}
			continue
		}
		if cur == nil {
			continue
		}
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "BGP state":
			cur.State = val
		case "Neighbor address":
			a, err := netip.ParseAddr(val)
			if err != nil {
				return nil, fmt.Errorf("BIRD neighbor address %q: %w", val, err)
			}
			addr = a
		case "Neighbor AS":
			n, _ := strconv.ParseUint(val, 10, 32)
			cur.RemoteAS = uint32(n)
		case "Hold timer":
			cur.HoldTime = birdTimer(val)
		case "Keepalive timer":
			cur.Keepalive = birdTimer(val)
		case "Routes":
			n, _ := strconv.Atoi(strings.Fields(val)[0])
			cur.RoutesImported += n
		case "Last error":
			cur.LastError = val
		}
	}
	flush()
	return res, sc.Err()
}

// birdTimer is the configured or negotiated part of "left/total".
func birdTimer(v string) time.Duration {
	_, total, _ := strings.Cut(v, "/")
	s, err := strconv.ParseFloat(total, 64)
	if err != nil {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// BirdNeighbors is the second router's sessions, by neighbor address.
func (l *Lab) BirdNeighbors() (map[netip.Addr]BirdNeighbor, error) {
	out, err := l.Birdc("show", "protocols", "all")
	if err != nil {
		return nil, err
	}
	return ParseBirdProtocols(out)
}

// ParseBirdRoutes decodes `birdc show route all`: per prefix the paths,
// with the same fields as the FRR router's. BIRD gives every path a local
// preference (its default 100 for eBGP): only an iBGP session's is the
// one the node sent.
func ParseBirdRoutes(out string) (map[netip.Prefix][]RouterPath, error) {
	res := map[netip.Prefix][]RouterPath{}
	var pfx netip.Prefix
	var cur *RouterPath
	flush := func() {
		if cur != nil {
			res[pfx] = append(res[pfx], *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table "):
		case line[0] != ' ' && line[0] != '\t': // "<prefix>  unicast [n1 ...] * (100) [AS65001i]"
			flush()
			f := strings.Fields(line)
			p, err := netip.ParsePrefix(f[0])
			if err != nil {
				return nil, fmt.Errorf("BIRD route %q: %w", line, err)
			}
			pfx = p
			cur = birdPathHeader(f[1:])
		case line[0] == ' ': // another path of the same prefix
			flush()
			cur = birdPathHeader(strings.Fields(line))
		case cur != nil: // "\tBGP.attr: value"
			key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				continue
			}
			val = strings.TrimSpace(val)
			switch key {
			case "BGP.as_path":
				for _, a := range strings.Fields(val) {
					if n, err := strconv.ParseUint(a, 10, 32); err == nil {
						cur.ASPath = append(cur.ASPath, uint32(n))
					}
				}
			case "BGP.next_hop":
				cur.NextHop, _ = netip.ParseAddr(strings.Fields(val)[0])
			case "BGP.local_pref":
				if n, err := strconv.ParseUint(val, 10, 32); err == nil {
					v := uint32(n)
					cur.LocalPref = &v
				}
			case "BGP.med":
				if n, err := strconv.ParseUint(val, 10, 32); err == nil {
					v := uint32(n)
					cur.MED = &v
				}
			case "BGP.origin":
				cur.Origin = val
			case "BGP.community":
				cur.Communities = birdTuples(val)
			case "BGP.large_community":
				cur.LargeCommunities = birdTuples(val)
			}
		}
	}
	flush()
	return res, sc.Err()
}

// birdPathHeader reads "unicast [n1 08:16:06.166] * (100) [AS65001i]": a
// star marks the best path.
func birdPathHeader(f []string) *RouterPath {
	p := &RouterPath{Valid: true, ASPath: []uint32{}}
	for _, w := range f {
		if w == "*" {
			p.Best = true
		}
	}
	return p
}

// birdTuples turns "(65000,100) (64512, 100, 50)" into "65000:100",
// "64512:100:50".
func birdTuples(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ")") {
		part = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(part), "("))
		if part == "" {
			continue
		}
		nums := strings.Split(part, ",")
		for i := range nums {
			nums[i] = strings.TrimSpace(nums[i])
		}
		out = append(out, strings.Join(nums, ":"))
	}
	return out
}

// BirdRoutes is the second router's paths for prefix (none: empty).
func (l *Lab) BirdRoutes(t testing.TB, prefix netip.Prefix) []RouterPath {
	t.Helper()
	out, err := l.Birdc("show", "route", prefix.String(), "all")
	if err != nil && strings.Contains(out, "Network not found") {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	rib, err := ParseBirdRoutes(out)
	if err != nil {
		t.Fatal(err)
	}
	return rib[prefix]
}
