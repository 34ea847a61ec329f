package passes

import "time"

// Deciding may use a fifth of a core over time (the API server and the
// node keep the rest), and up to pacerBurst of deciding at once after a
// quiet spell, so that the few passes one change needs (write the per-node
// objects, then report what the nodes did) run back to back.
const (
	pacerShare = 5
	pacerBurst = time.Second
)

// Pacer spaces passes with a budget of deciding time: it fills at a fifth
// of wall time up to pacerBurst, each pass spends its cost, and a pass waits
// while the budget is spent, however large the cluster. Passes also start
// at least MinInterval apart. An event after a quiet spell is handled at
// once.
type Pacer struct {
	MinInterval time.Duration

	last    time.Time // the last pass's start
	updated time.Time // when budget was last filled
	budget  time.Duration
}

// Start reports how long to wait before a pass may run; zero means run now,
// and the pass is then recorded as started at now.
func (p *Pacer) Start(now time.Time) time.Duration {
	if p.updated.IsZero() {
		p.budget, p.updated = pacerBurst, now
	}
	p.budget = min(pacerBurst, p.budget+now.Sub(p.updated)/pacerShare)
	p.updated = now
	wait := max(p.last.Add(p.MinInterval).Sub(now), -p.budget*pacerShare)
	if !p.last.IsZero() && wait > 0 {
		return wait
	}
	p.last = now
	return 0
}

// Cost records how long the pass's reading and deciding took (its writes
// excluded: they wait on the API server, not on this process's CPU).
func (p *Pacer) Cost(d time.Duration) { p.budget -= d }
