package passes

import "time"

// Pacer spaces passes. A pass may start MinInterval after the previous one
// started, or four times the previous pass's cost, whichever is later, so that
// deciding takes at most a fifth of a core however large the cluster and the
// API server keeps the rest. An event after a quiet spell is handled at once.
type Pacer struct {
	MinInterval time.Duration

	last     time.Time
	lastCost time.Duration
}

// Start reports how long to wait before a pass may run; zero means run now,
// and the pass is then recorded as started at now.
func (p *Pacer) Start(now time.Time) time.Duration {
	if wait := p.last.Add(max(p.MinInterval, 4*p.lastCost)).Sub(now); wait > 0 {
		return wait
	}
	p.last = now
	return 0
}

// Cost records how long the pass's reading and deciding took (its writes
// excluded: they wait on the API server, not on this process's CPU).
func (p *Pacer) Cost(d time.Duration) { p.lastCost = d }
