package leadership

import (
	"math/rand"
	"time"

	"k8s.io/utils/clock"
)

// NewWithClock is New on a clock of the caller's: every reading and timer
// of the elector, the boot clock of the suspend check included, comes from
// clk. It is for tests and fault injection (a clock that runs fast or slow,
// a simulated one); production code uses New, whose clocks are the process's
// monotonic clock and CLOCK_BOOTTIME.
func NewWithClock(lock Lock, cfg Config, clk clock.WithTicker) (*Elector, error) {
	start := clk.Now()
	boot := func() time.Duration { return clk.Since(start) }
	e, err := newElector(lock, cfg, clk, boot)
	if err != nil {
		return nil, err
	}
	e.newBootTimer = func() (bootTimer, error) { return newClockBootTimer(clk, boot), nil }
	return e, nil
}

// clockBootTimer is a boot-clock timer on an elector clock.
type clockBootTimer struct {
	clk  clock.WithTicker
	boot func() time.Duration
	c    chan struct{}
	t    clock.Timer
	stop chan struct{}
}

func newClockBootTimer(clk clock.WithTicker, boot func() time.Duration) *clockBootTimer {
	return &clockBootTimer{clk: clk, boot: boot, c: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (b *clockBootTimer) Set(deadline time.Duration) error {
	if b.t != nil {
		b.t.Stop()
	}
	t := b.clk.NewTimer(max(0, deadline-b.boot()))
	b.t = t
	go func() {
		select {
		case <-t.C():
			select {
			case b.c <- struct{}{}:
			default:
			}
		case <-b.stop:
		}
	}()
	return nil
}

func (b *clockBootTimer) C() <-chan struct{} { return b.c }

func (b *clockBootTimer) Stop() {
	if b.t != nil {
		b.t.Stop()
	}
	close(b.stop)
}

// bootTimer fires when the boot clock reaches a deadline.
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
