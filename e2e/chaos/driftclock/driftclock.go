// Package driftclock is a clock that runs at a constant rate relative to
// another: Now advances rate seconds per second of the base clock, and a
// timer of d fires after d/rate of base time. With the real clock as base,
// it is a host whose oscillator is off by (rate−1), which is what an
// elector's MaxClockDrift must absorb. It implements k8s.io/utils/clock's
// WithTickerAndDelayedExecution, so it goes wherever a clock.WithTicker or
// clock.Clock does (a fake base clock steps it in tests); Elector gives the
// same clock as a leadership.Clock, for leadership.NewWithClock.
package driftclock

import (
	"fmt"
	"math"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/leadership-dev/leadership"
)

// MaxRateDeviation bounds |rate−1|: beyond 50 % a clock is broken, not
// drifting, and scaled durations lose meaning.
const MaxRateDeviation = 0.5

// Clock runs at Rate relative to its base clock.
type Clock struct {
	base  clock.WithTickerAndDelayedExecution
	rate  float64
	start time.Time // base time at creation, also the clock's own origin
}

var _ clock.WithTickerAndDelayedExecution = (*Clock)(nil)

// New returns a clock running at rate relative to base, which starts equal
// to base.Now(). rate must be within 1±MaxRateDeviation.
func New(base clock.WithTickerAndDelayedExecution, rate float64) (*Clock, error) {
	if math.IsNaN(rate) || math.Abs(rate-1) > MaxRateDeviation {
		return nil, fmt.Errorf("driftclock: rate %v: want a rate within 1±%v (e.g. 1.01 runs 1 %% fast)", rate, MaxRateDeviation)
	}
	return &Clock{base: base, rate: rate, start: base.Now()}, nil
}

// Rate is the clock's rate relative to its base.
func (c *Clock) Rate() float64 { return c.rate }

// Now is the clock's origin plus rate × base time elapsed. The result keeps
// a monotonic reading (the base's, scaled), so Sub and Since between its
// values use it.
func (c *Clock) Now() time.Time {
	return c.start.Add(c.scale(c.base.Since(c.start)))
}

// Elector returns this clock as a leadership.Clock: the elector's clock
// interface is its own, two methods on the standard library, and Go's
// interfaces are not covariant, so a clock.Timer result needs this view.
func (c *Clock) Elector() leadership.Clock { return electorView{c} }

type electorView struct{ c *Clock }

func (v electorView) Now() time.Time                            { return v.c.Now() }
func (v electorView) NewTimer(d time.Duration) leadership.Timer { return v.c.NewTimer(d) }

// Since is Now().Sub(t).
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// scale turns base time into this clock's time.
func (c *Clock) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.rate)
}

// unscale turns a duration on this clock into base time: d/rate, rounded
// up so that a timer never fires before its time on this clock.
func (c *Clock) unscale(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(math.Ceil(float64(d) / c.rate))
}

// After is NewTimer(d).C().
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// Sleep sleeps d on this clock.
func (c *Clock) Sleep(d time.Duration) { <-c.After(d) }

// Tick is NewTicker(d).C(); the ticker cannot be stopped, as with time.Tick.
func (c *Clock) Tick(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	return c.NewTicker(d).C()
}

// NewTimer returns a timer that fires once d has passed on this clock,
// delivering this clock's time. Like Go's timers since 1.23, no value sent
// before a Stop or Reset is received after it.
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	t.arm(d, t.fire)
	return t
}

// AfterFunc calls f on its own goroutine once d has passed on this clock.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := &timer{c: c}
	t.arm(d, func(uint64) { f() })
	return t
}

// NewTicker returns a ticker that ticks every d on this clock, dropping
// ticks for a slow receiver as time.Ticker does.
func (c *Clock) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("driftclock: non-positive interval for NewTicker") // as time.NewTicker
	}
	t := &ticker{timer: timer{c: c, ch: make(chan time.Time, 1)}, every: d}
	t.arm(d, t.tick)
	return t
}

// timer is a base-clock AfterFunc of the unscaled duration. gen tells the
// callback of a stopped or reset timer that it is stale. Callbacks run on
// a goroutine of their own: a fake base clock calls them with its lock
// held, and they read the base clock.
type timer struct {
	c  *Clock
	ch chan time.Time

	mu   sync.Mutex
	gen  uint64
	base clock.Timer
}

// arm schedules f(gen) after d on this clock. Called with mu not held.
func (t *timer) arm(d time.Duration, f func(gen uint64)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	gen := t.gen
	t.base = t.c.base.AfterFunc(t.c.unscale(d), func() { go f(gen) })
}

func (t *timer) fire(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.gen {
		return
	}
	select {
	case t.ch <- t.c.Now():
	default:
	}
}

func (t *timer) C() <-chan time.Time { return t.ch }

// Stop prevents the timer from firing; it reports whether it was pending.
func (t *timer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.drain()
	return t.base.Stop()
}

// Reset makes the timer fire after d; it reports whether it was pending.
func (t *timer) Reset(d time.Duration) bool {
	t.mu.Lock()
	t.gen++
	t.drain()
	active := t.base.Stop()
	t.mu.Unlock()
	t.arm(d, t.fire)
	return active
}

// drain empties the channel of a value sent before a Stop or Reset.
// Called with mu held.
func (t *timer) drain() {
	if t.ch == nil {
		return
	}
	select {
	case <-t.ch:
	default:
	}
}

type ticker struct {
	timer
	every time.Duration
}

// tick sends and schedules the next tick under the same generation, so
// that a Stop in between ends the ticker for good.
func (t *ticker) tick(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.gen {
		return
	}
	select {
	case t.ch <- t.c.Now():
	default: // a slow receiver misses ticks
	}
	t.base = t.c.base.AfterFunc(t.c.unscale(t.every), func() { go t.tick(gen) })
}

func (t *ticker) C() <-chan time.Time { return t.ch }

func (t *ticker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.base.Stop()
}
