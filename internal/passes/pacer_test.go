package passes

import (
	"testing"
	"time"
)

// The pacer lets a burst of passes through after a quiet spell, then holds
// deciding to a fifth of wall time, and keeps MinInterval between starts.
func TestPacerBudget(t *testing.T) {
	p := Pacer{MinInterval: 10 * time.Millisecond}
	now := time.Unix(1000, 0)
	// Quiet: three passes of 300 ms of deciding run back to back.
	for i := range 3 {
		if wait := p.Start(now); wait != 0 {
			t.Fatalf("pass %d after a quiet spell waits %v", i, wait)
		}
		p.Cost(300 * time.Millisecond)
		now = now.Add(20 * time.Millisecond)
	}
	// The fourth overdraws: it waits until the budget is back at zero.
	p.Start(now) // budget 1s - 900ms + 60ms/5 ≈ 112ms: runs
	p.Cost(300 * time.Millisecond)
	now = now.Add(20 * time.Millisecond)
	wait := p.Start(now)
	if wait < 900*time.Millisecond || wait > time.Second {
		t.Errorf("an overdrawn pacer waits %v, want about 5 × the 184ms overdraft", wait)
	}
	// Over a long busy stretch deciding stays near a fifth of the time.
	p = Pacer{}
	now = time.Unix(2000, 0)
	var spent, elapsed time.Duration
	for range 1000 {
		if w := p.Start(now); w > 0 {
			now = now.Add(w)
			elapsed += w
			continue
		}
		p.Cost(100 * time.Millisecond)
		spent += 100 * time.Millisecond
		now = now.Add(100 * time.Millisecond)
		elapsed += 100 * time.Millisecond
	}
	if share := float64(spent) / float64(elapsed); share > 0.25 {
		t.Errorf("busy deciding took %.2f of the time, want about 0.2", share)
	}
	// MinInterval holds even with budget to spare.
	p = Pacer{MinInterval: time.Second}
	now = time.Unix(3000, 0)
	p.Start(now)
	if w := p.Start(now.Add(100 * time.Millisecond)); w != 900*time.Millisecond {
		t.Errorf("a pass 100ms after the last waits %v, want 900ms (MinInterval)", w)
	}
}
