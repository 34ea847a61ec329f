package heartbeat

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// freePort returns a UDP port that is free on 127.0.0.1 now; the members
// bind it on other loopback addresses.
func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func waitLive(t *testing.T, m *Member, timeout time.Duration, want ...string) time.Duration {
	t.Helper()
	slices.Sort(want)
	start := time.Now()
	for {
		got := m.Live()
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: live %v, want %v after %v", m.cfg.Name, got, want, timeout)
		}
		select {
		case <-m.Changes():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestMembersOverUDP runs three members on 127.0.0.x: they find each other,
// notice a killed member after DeadAfter, take a restarted one back only
// after RejoinAfter, and a member that leaves at once.
func TestMembersOverUDP(t *testing.T) {
	port := freePort(t)
	var peers []Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, Peer{Name: fmt.Sprintf("n%d", i), Addr: netip.AddrFrom4([4]byte{127, 0, 0, byte(40 + i)})})
	}
	start := func(i int) *Member {
		m, err := Start(Config{Name: peers[i].Name, Address: peers[i].Addr, Port: port}, peers)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	m := []*Member{start(0), start(1), start(2)}
	for _, x := range m {
		waitLive(t, x, 3*time.Second, "n1", "n2", "n3")
	}
	if got := m[0].Live(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("live %v", got)
	}

	// Kill n3: the others see it dead after about DeadAfter.
	killed := time.Now()
	_ = m[2].Close()
	d := waitLive(t, m[0], 2*time.Second, "n1", "n2")
	waitLive(t, m[1], 2*time.Second, "n1", "n2")
	t.Logf("killed member seen dead after %v (DeadAfter %v)", time.Since(killed), DefaultDeadAfter)
	if since := time.Since(killed); since < DefaultDeadAfter-2*DefaultInterval {
		t.Errorf("killed member seen dead after %v (waited %v), before DeadAfter", since, d)
	}

	// Restart n3: it and the others count it only after RejoinAfter.
	restarted := time.Now()
	m[2] = start(2)
	time.Sleep(DefaultRejoinAfter / 2)
	for _, x := range m {
		if slices.Contains(x.Live(), "n3") {
			t.Errorf("%s counts n3 alive %v after its restart", x.cfg.Name, time.Since(restarted))
		}
	}
	for _, x := range m {
		waitLive(t, x, 3*time.Second, "n1", "n2", "n3")
	}
	t.Logf("restarted member counted alive by all after %v (RejoinAfter %v)", time.Since(restarted), DefaultRejoinAfter)

	// n2 leaves gracefully: the others see it dead well before DeadAfter.
	left := time.Now()
	if err := m[1].Leave(); err != nil {
		t.Fatal(err)
	}
	waitLive(t, m[0], time.Second, "n1", "n3")
	if since := time.Since(left); since >= DefaultDeadAfter {
		t.Errorf("a member that left was seen dead only after %v", since)
	}
	t.Logf("member that left seen dead after %v", time.Since(left))

	// SetPeers at runtime: n1 drops n3 from its peers.
	m[0].SetPeers(peers[:1])
	waitLive(t, m[0], time.Second, "n1")
}

func TestConfigValidation(t *testing.T) {
	base := Config{Name: "a", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, Interval: 100 * time.Millisecond, DeadAfter: 400 * time.Millisecond, RejoinAfter: time.Second}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"dead-after": func(c *Config) { c.DeadAfter = 200 * time.Millisecond },
		"interval":   func(c *Config) { c.Interval = 0 },
		"port":       func(c *Config) { c.Port = 70000 },
		"address":    func(c *Config) { c.Address = netip.Addr{} },
		"name":       func(c *Config) { c.Name = "" },
	} {
		c := base
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		} else if got := err.Error(); len(got) < len(name) || got[:len(name)] != name {
			t.Errorf("%s: error %q does not name it", name, got)
		}
	}
}
