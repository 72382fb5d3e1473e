// Package simclock provides a clock that runs at a fixed rate relative to the
// time package's clock, for simulations that give each process its own
// clock-rate drift. Inside a testing/synctest bubble the time package's
// clock is virtual, so a Drifting clock there is virtual and drifting.
package simclock

import (
	"math"
	"time"

	"github.com/leadership-dev/leadership"
)

// Drifting is a leadership.Clock whose time passes Rate times as fast as the
// time package's. Its timers fire when their duration has passed on this
// clock, never earlier.
type Drifting struct {
	rate   float64
	origin time.Time // carries a monotonic reading, so Sub between Now values is monotonic
}

var _ leadership.Clock = (*Drifting)(nil)

// New returns a clock running at rate (1 = no drift; 1.01 = 1% fast). A rate
// that is not positive and finite is replaced by 1.
func New(rate float64) *Drifting {
	if !(rate > 0) || math.IsInf(rate, 0) {
		rate = 1
	}
	return &Drifting{rate: rate, origin: time.Now()}
}

// Rate returns the clock's rate.
func (c *Drifting) Rate() float64 { return c.rate }

// Elapsed is the time passed on this clock since it was created. It stands
// in for a boot clock: the simulation does not model suspend.
func (c *Drifting) Elapsed() time.Duration { return c.local(time.Since(c.origin)) }

func (c *Drifting) local(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.rate)
}

// real converts a duration on this clock to one on the time package's clock,
// rounded up so that a timer never fires early on this clock.
func (c *Drifting) real(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(math.Ceil(float64(d) / c.rate))
}

func (c *Drifting) Now() time.Time                  { return c.origin.Add(c.Elapsed()) }
func (c *Drifting) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *Drifting) Sleep(d time.Duration)           { time.Sleep(c.real(d)) }

func (c *Drifting) NewTimer(d time.Duration) leadership.Timer {
	return &timer{c: c, t: time.NewTimer(c.real(d))}
}

type timer struct {
	c *Drifting
	t *time.Timer
}

func (t *timer) C() <-chan time.Time        { return t.t.C }
func (t *timer) Stop() bool                 { return t.t.Stop() }
func (t *timer) Reset(d time.Duration) bool { return t.t.Reset(t.c.real(d)) }
