package leadership

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The seams the external tests (package leadership_test) need, and nothing
// else: the boot clock, which inside a testing/synctest bubble would
// otherwise be the host's real CLOCK_BOOTTIME and timerfd, and a peek at
// what an elector observed, for tests that assert on it.

// NewSimElector gives the simulation (sim_test.go) the elector with the
// clocks it drives: a drifting clock, and a boot clock that a restarted
// process reads on from its predecessor's. The boot-clock timer runs on clk
// too: the simulation does not model suspend.
func NewSimElector(l Lock, cfg Config, clk Clock, boot func() time.Duration) (*Elector, error) {
	e, err := newElector(l, cfg, clk, boot)
	if err != nil {
		return nil, err
	}
	e.newBootTimer = func() (bootTimer, error) { return newClockBootTimer(clk, boot), nil }
	return e, nil
}

// TestBoot is a boot clock for tests in a synctest bubble: the time passed
// since NewTestBoot plus every Suspend, which moves it (and fires its
// timers past their deadline) while the monotonic clock stands still.
type TestBoot struct {
	start time.Time
	skew  atomic.Int64

	mu     sync.Mutex
	timers map[*testBootTimer]struct{}
}

// NewTestBoot returns a boot clock reading 0 now.
func NewTestBoot() *TestBoot {
	return &TestBoot{start: time.Now(), timers: map[*testBootTimer]struct{}{}}
}

// Now is the boot clock's reading.
func (b *TestBoot) Now() time.Duration {
	return time.Since(b.start) + time.Duration(b.skew.Load())
}

// Suspend simulates a suspend of d: the boot clock jumps, the monotonic
// clock does not, and boot-clock timers past their deadline fire.
func (b *TestBoot) Suspend(d time.Duration) {
	b.skew.Add(int64(d))
	b.mu.Lock()
	defer b.mu.Unlock()
	for t := range b.timers {
		t.check()
	}
}

// NewTestElector is New with the boot clock b (the monotonic clock is the
// time package's, virtual in a bubble).
func NewTestElector(l Lock, cfg Config, b *TestBoot) (*Elector, error) {
	e, err := newElector(l, cfg, realClock{}, b.Now)
	if err != nil {
		return nil, err
	}
	e.newBootTimer = func() (bootTimer, error) {
		t := &testBootTimer{b: b, c: make(chan struct{}, 1)}
		t.deadline.Store(math.MaxInt64)
		b.mu.Lock()
		b.timers[t] = struct{}{}
		b.mu.Unlock()
		return t, nil
	}
	return e, nil
}

// testBootTimer stands for bootclock.Timer. It fires when a Suspend
// carries the boot clock past its deadline (or when set to one already
// past), not when time passing reaches it: the monotonic timer does that,
// at the same instant, and a test of either mechanism must see it alone.
type testBootTimer struct {
	b        *TestBoot
	c        chan struct{}
	deadline atomic.Int64
}

func (t *testBootTimer) Set(deadline time.Duration) error {
	t.deadline.Store(int64(deadline))
	t.check()
	return nil
}

func (t *testBootTimer) check() {
	if t.b.Now() >= time.Duration(t.deadline.Load()) {
		select {
		case t.c <- struct{}{}:
		default:
		}
	}
}

func (t *testBootTimer) C() <-chan struct{} { return t.c }

func (t *testBootTimer) Stop() {
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	delete(t.b.timers, t)
}

// Observed is what an elector last observed of the lock.
type Observed struct {
	Known, Exists bool
	Record        Record
	// Version is the record's, or its deletion's.
	Version uint64
	// At is when this content was first seen; HeldUntil the moment before
	// which no candidate takes the lock over; HolderMax the longest lease
	// duration the holder announced in its term.
	At, HeldUntil time.Time
	HolderMax     time.Duration
}

// Observed returns what e last observed of the lock.
func (e *Elector) Observed() Observed {
	o := e.snapshot()
	return Observed{Known: o.known, Exists: o.exists, Record: o.rec, Version: o.version, At: o.at, HeldUntil: o.heldUntil, HolderMax: o.holderMax}
}

// CreatedByUs reports whether r is the record e created and holds before
// leading.
func (e *Elector) CreatedByUs(r Record) bool { return e.createdByUs(r) }

// Running reports whether e.Run is running.
func (e *Elector) Running() bool { return e.running.Load() }
