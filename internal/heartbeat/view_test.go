package heartbeat

import (
	"slices"
	"testing"
	"time"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	timing = Timing{DeadAfter: 400 * time.Millisecond, RejoinAfter: time.Second, SelfDelay: 100 * time.Millisecond}
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// hearEvery feeds datagrams from peer every 100 ms in [from, to), from a
// peer that does not count itself alive yet (it has just started).
func hearEvery(v *View, peer string, inc uint64, from, to int) {
	for ms := from; ms < to; ms += 100 {
		v.Heard(peer, inc, false, at(ms))
	}
}

// hearReady is hearEvery from a peer that counts itself alive.
func hearReady(v *View, peer string, inc uint64, from, to int) {
	for ms := from; ms < to; ms += 100 {
		v.Heard(peer, inc, true, at(ms))
	}
}

func wantAlive(t *testing.T, v *View, ms int, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := v.Alive(at(ms)); !slices.Equal(got, want) {
		t.Errorf("at %d ms: alive %v, want %v", ms, got, want)
	}
}

func TestViewSelfCountsOnlyAfterRejoinAfterPlusSelfDelay(t *testing.T) {
	v := NewView("a", timing, t0)
	wantAlive(t, v, 0)
	wantAlive(t, v, 1099)
	wantAlive(t, v, 1100, "a")
	if got := v.NextChange(at(0)); !got.Equal(at(1100)) {
		t.Errorf("next change %v, want at 1100 ms", got)
	}
}

func TestViewPeerJoinsAfterRejoinAfterAndDiesAfterDeadAfter(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour)) // a runs since long
	v.SetPeers([]string{"a", "b"}, at(0))
	hearEvery(v, "b", 1, 0, 1000)
	wantAlive(t, v, 999, "a") // heard for 999 ms: not yet
	if got := v.NextChange(at(900)); !got.Equal(at(1000)) {
		t.Errorf("next change %v, want the rejoin at 1000 ms", got)
	}
	v.Heard("b", 1, false, at(1000))
	wantAlive(t, v, 1000, "a", "b")
	// Silent from 1000 ms: alive until 1399, dead at 1400.
	wantAlive(t, v, 1399, "a", "b")
	if got := v.NextChange(at(1000)); !got.Equal(at(1400)) {
		t.Errorf("next change %v, want the death at 1400 ms", got)
	}
	wantAlive(t, v, 1400, "a")
}

func TestViewOneLostDatagramDoesNotKill(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour))
	v.SetPeers([]string{"b"}, at(0))
	hearEvery(v, "b", 1, 0, 1100)
	// 1100 and 1200 lost, 1300 arrives: a gap of 300 ms < DeadAfter.
	v.Heard("b", 1, false, at(1300))
	wantAlive(t, v, 1350, "a", "b")
}

func TestViewRejoinHysteresis(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour))
	v.SetPeers([]string{"b"}, at(0))
	hearEvery(v, "b", 1, 0, 2000)
	wantAlive(t, v, 2000, "a", "b")
	// b flaps: silent 1900..2400 (dead at 2300), heard again from 2400.
	wantAlive(t, v, 2300, "a")
	hearEvery(v, "b", 1, 2400, 3400)
	wantAlive(t, v, 3399, "a") // heard again for 999 ms: still out
	v.Heard("b", 1, false, at(3400))
	wantAlive(t, v, 3400, "a", "b")
}

func TestViewRestartedPeerRejoinsEvenWithoutAGap(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour))
	v.SetPeers([]string{"b"}, at(0))
	hearEvery(v, "b", 1, 0, 1500)
	wantAlive(t, v, 1500, "a", "b")
	// b restarts within DeadAfter: its new incarnation counts itself alive
	// only after RejoinAfter, so the others must not count it either.
	hearEvery(v, "b", 2, 1500, 2500)
	wantAlive(t, v, 2499, "a")
	// A delayed datagram of the old incarnation changes nothing.
	if v.Heard("b", 1, false, at(2450)) {
		t.Error("a datagram of an old incarnation was accepted")
	}
	v.Heard("b", 2, false, at(2500))
	wantAlive(t, v, 2500, "a", "b")
}

func TestViewGoodbyeKillsAtOnce(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour))
	v.SetPeers([]string{"b"}, at(0))
	hearEvery(v, "b", 7, 0, 1500)
	wantAlive(t, v, 1450, "a", "b")
	v.Left("b", 7)
	wantAlive(t, v, 1450, "a")
	// Datagrams of the same incarnation sent before the goodbye, arriving
	// after it, do not revive b.
	if v.Heard("b", 7, false, at(1460)) {
		t.Error("a datagram after the goodbye was accepted")
	}
	// The next incarnation joins as usual.
	hearEvery(v, "b", 8, 2000, 3100)
	wantAlive(t, v, 3000, "a", "b")
}

func TestViewSetPeers(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour))
	v.SetPeers([]string{"b", "c"}, at(0))
	hearEvery(v, "b", 1, 0, 1100)
	hearEvery(v, "c", 1, 0, 1100)
	if v.Heard("d", 1, true, at(0)) {
		t.Error("a datagram from a stranger was accepted")
	}
	wantAlive(t, v, 1050, "a", "b", "c")
	// c leaves the group, d joins; b keeps its state (stays alive). d is
	// fresh: presumed alive, and alive at once when it says it is ready.
	v.SetPeers([]string{"b", "d"}, at(1050))
	wantAlive(t, v, 1050, "a", "b", "d")
	hearReady(v, "d", 1, 1100, 2200)
	hearEvery(v, "b", 1, 1100, 2200)
	wantAlive(t, v, 1150, "a", "b", "d")
	wantAlive(t, v, 2150, "a", "b", "d")
}

// A group formed from members that have run for long (a new policy): a new
// peer is presumed alive until DeadAfter, and alive at once when heard
// ready, so no member takes the group's work alone meanwhile. One that
// stays silent, says it is not ready (it has just started) or dies later
// rejoins with the hysteresis.
func TestViewFreshPeers(t *testing.T) {
	v := NewView("a", timing, t0.Add(-time.Hour))
	v.SetPeers([]string{"ready", "silent", "starting"}, at(0))
	wantAlive(t, v, 0, "a", "ready", "silent", "starting")
	hearReady(v, "ready", 1, 50, 3000)
	hearEvery(v, "starting", 1, 50, 3000)
	wantAlive(t, v, 100, "a", "ready", "silent")
	if got := v.NextChange(at(100)); !got.Equal(at(400)) {
		t.Errorf("next change %v, want the end of the presumption at 400 ms", got)
	}
	wantAlive(t, v, 400, "a", "ready")
	wantAlive(t, v, 1050, "a", "ready", "starting") // heard for 1 s
	// silent is heard at last, ready: it was dead, so it rejoins.
	hearReady(v, "silent", 1, 1100, 3000)
	wantAlive(t, v, 2050, "a", "ready", "starting")
	wantAlive(t, v, 2100, "a", "ready", "silent", "starting")
	// ready dies and comes back: no longer fresh, it rejoins.
	hearReady(v, "ready", 1, 3500, 5000)
	wantAlive(t, v, 3450, "a")
	wantAlive(t, v, 4450, "a")
	wantAlive(t, v, 4500, "a", "ready")
}

func TestWireFormat(t *testing.T) {
	in := message{name: "node-1", incarnation: 1 << 60, seq: 42, goodbye: true, ready: true}
	out, err := decode(encode(in))
	if err != nil || out != in {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", in, out, err)
	}
	for _, b := range [][]byte{nil, []byte("PXHB"), append(encode(in), 'x'), []byte("XXXX\x01\x00aaaaaaaabbbbbbbb\x01n")} {
		if _, err := decode(b); err == nil {
			t.Errorf("decode(%q) accepted", b)
		}
	}
}
