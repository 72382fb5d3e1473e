package leadership

import (
	"errors"
	"math/rand"
	"time"
)

// Clock is the time an elector reads and waits on: every reading, every
// timer, and (through NewWithClock) its boot clock. It is deliberately
// small, the two things the elector does with time, so that a test or a
// fault injector (a clock that runs fast or slow, a simulated one) is a
// few lines over the time package. A clock's readings must be monotonic:
// Now values carry a monotonic reading, or come from a clock that never
// steps back. The elector reads Now with its own lock held (an observation
// is stamped in the same step that records it), so a Clock must not call
// back into the elector.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once d has passed on this clock.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer, with time.Timer's semantics (Go 1.23
// and later: no value sent before a Stop or Reset is received after it).
// It is an interface, not a *time.Timer, because a clock that runs at
// another rate must scale the duration of every Reset, too.
type Timer interface {
	// C delivers the time once the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was
	// pending.
	Stop() bool
	// Reset makes the timer fire after d; it reports whether it was
	// pending.
	Reset(d time.Duration) bool
}

// NewWithClock is New on a clock of the caller's: every reading and timer
// of the elector, the boot clock of the suspend check included, comes from
// clk (the boot clock is the time passed on clk since NewWithClock). It is
// for tests and fault injection; production code uses New, whose clocks
// are the process's monotonic clock and CLOCK_BOOTTIME. A test in a
// testing/synctest bubble needs it too, with a clock on the time package
// (leadershiptest.Clock): New's boot-clock timer waits on a timerfd, which
// the bubble does not see, so the bubble's time would never move on.
func NewWithClock(lock Lock, cfg Config, clk Clock) (*Elector, error) {
	if clk == nil {
		return nil, errors.New("leadership: NewWithClock with a nil Clock: pass one (leadershiptest.Clock is the time package's), or call New")
	}
	start := clk.Now()
	boot := func() time.Duration { return clk.Now().Sub(start) }
	e, err := newElector(lock, cfg, clk, boot)
	if err != nil {
		return nil, err
	}
	e.newBootTimer = func() (bootTimer, error) { return newClockBootTimer(clk, boot), nil }
	return e, nil
}

// electorClock is the elector's view of a Clock: Since saves the callers
// a Now().Sub.
type electorClock struct{ Clock }

func (c electorClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// realClock is the time package's clock, New's.
type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// clockBootTimer is a boot-clock timer on an elector clock, for a boot
// clock that is the time passed on that clock (NewWithClock).
type clockBootTimer struct {
	clk  Clock
	boot func() time.Duration
	c    chan struct{}
	// t and cancel are the armed timer and what ends its goroutine. Set
	// and Stop are called from the term's watchdog goroutine alone (as
	// bootTimer's are), which owns them: no lock.
	t      Timer
	cancel chan struct{}
}

func newClockBootTimer(clk Clock, boot func() time.Duration) *clockBootTimer {
	return &clockBootTimer{clk: clk, boot: boot, c: make(chan struct{}, 1)}
}

// Set arms the timer for deadline, replacing the previous one: one
// goroutine at a time waits on the clock's timer, so that the renewals of
// a long term do not leave a goroutine each behind.
func (b *clockBootTimer) Set(deadline time.Duration) error {
	b.disarm()
	t, cancel := b.clk.NewTimer(max(0, deadline-b.boot())), make(chan struct{})
	b.t, b.cancel = t, cancel
	go func() {
		select {
		case <-t.C():
			select {
			case b.c <- struct{}{}:
			default:
			}
		case <-cancel:
		}
	}()
	return nil
}

func (b *clockBootTimer) C() <-chan struct{} { return b.c }

func (b *clockBootTimer) Stop() { b.disarm() }

// disarm stops the armed timer and its goroutine.
func (b *clockBootTimer) disarm() {
	if b.t != nil {
		b.t.Stop()
		close(b.cancel)
		b.t, b.cancel = nil, nil
	}
}

// bootTimer fires when the boot clock reaches a deadline. One goroutine
// (the term's watchdog) calls Set and Stop.
type bootTimer interface {
	Set(deadline time.Duration) error
	C() <-chan struct{}
	Stop()
}

// jitter returns d plus up to a fifth of it, at random, so that replicas
// that failed together do not retry in lockstep. It draws from math/rand's
// global source, which the simulation seeds to replay a scenario.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(0.2*rand.Float64()*float64(d))
}
