package driftclock

import (
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

func newFake(t *testing.T, rate float64) (*Clock, *testingclock.FakeClock) {
	t.Helper()
	base := testingclock.NewFakeClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	c, err := New(base, rate)
	if err != nil {
		t.Fatal(err)
	}
	return c, base
}

// receive waits for a value the clock sends from a goroutine of its own.
func receive(t *testing.T, ch <-chan time.Time, what string) time.Time {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing received", what)
		return time.Time{}
	}
}

// fired reports whether a value arrives; callbacks run on their own
// goroutine, so give them time to (wrongly) deliver.
func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	case <-time.After(50 * time.Millisecond):
		return false
	}
}

func TestNowScalesElapsedTime(t *testing.T) {
	for _, rate := range []float64{1.01, 0.99, 1} {
		c, base := newFake(t, rate)
		t0 := c.Now()
		base.Step(10 * time.Second)
		want := time.Duration(float64(10*time.Second) * rate)
		if got := c.Since(t0); got != want {
			t.Errorf("rate %v: 10s of base time read as %v, want %v", rate, got, want)
		}
		if got := c.Now().Sub(t0); got != want {
			t.Errorf("rate %v: Now-t0 = %v, want %v", rate, got, want)
		}
	}
}

func TestTimerFiresAfterScaledBaseTime(t *testing.T) {
	// A fast clock (rate 1.25) sees 1s pass after 800ms of base time.
	c, base := newFake(t, 1.25)
	start := c.Now()
	tm := c.NewTimer(time.Second)
	base.Step(799 * time.Millisecond)
	if fired(tm.C()) {
		t.Fatal("fired 1ms of base time early")
	}
	base.Step(time.Millisecond)
	if got := receive(t, tm.C(), "timer").Sub(start); got != time.Second {
		t.Fatalf("fired at %v on the clock, want 1s", got)
	}
	// A slow clock (0.8) needs 1.25s of base time.
	c, base = newFake(t, 0.8)
	tm = c.NewTimer(time.Second)
	base.Step(1249 * time.Millisecond)
	if fired(tm.C()) {
		t.Fatal("slow clock: fired early")
	}
	base.Step(time.Millisecond)
	receive(t, tm.C(), "slow timer")
}

func TestStopAndReset(t *testing.T) {
	c, base := newFake(t, 1.25)
	tm := c.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	base.Step(time.Hour)
	if fired(tm.C()) {
		t.Fatal("a stopped timer fired")
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported it pending")
	}
	base.Step(799 * time.Millisecond)
	if fired(tm.C()) {
		t.Fatal("reset timer fired early")
	}
	base.Step(time.Millisecond)
	receive(t, tm.C(), "reset timer")

	// A value delivered but not received before Reset is not received
	// after it (Go 1.23 timer semantics).
	tm = c.NewTimer(time.Second)
	base.Step(time.Second)
	for deadline := time.Now().Add(10 * time.Second); len(tm.C()) != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fired timer delivered nothing")
		}
	}
	tm.Reset(time.Second)
	if fired(tm.C()) {
		t.Fatal("a stale value was received after Reset")
	}
}

func TestTickerAndAfterFunc(t *testing.T) {
	c, base := newFake(t, 0.5) // slow: 100ms on the clock is 200ms of base
	tk := c.NewTicker(100 * time.Millisecond)
	for i := range 3 {
		base.Step(200 * time.Millisecond)
		receive(t, tk.C(), "tick")
		// The next tick is scheduled on the callback's goroutine: wait
		// until the base clock has it before stepping again.
		deadline := time.Now().Add(10 * time.Second)
		for !base.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatalf("tick %d: the next tick was never scheduled", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	tk.Stop()
	base.Step(time.Second)
	if fired(tk.C()) {
		t.Fatal("a stopped ticker ticked")
	}

	done := make(chan time.Time, 1)
	c.AfterFunc(time.Second, func() { done <- c.Now() })
	base.Step(1999 * time.Millisecond)
	if fired(done) {
		t.Fatal("AfterFunc ran early")
	}
	base.Step(time.Millisecond)
	receive(t, done, "AfterFunc")
}

func TestBadRate(t *testing.T) {
	for _, r := range []float64{0, 1.6, -1, 0.4} {
		if _, err := New(testingclock.NewFakeClock(time.Now()), r); err == nil || !strings.Contains(err.Error(), "want a rate within") {
			t.Errorf("rate %v: err %v", r, err)
		}
	}
}

// The elector's view is the same clock: its readings, and its timers fire
// after the scaled base time.
func TestElectorViewIsTheSameClock(t *testing.T) {
	c, base := newFake(t, 1.25)
	ec := c.Elector()
	t0 := ec.Now()
	tm := ec.NewTimer(time.Second)
	base.Step(799 * time.Millisecond)
	if fired(tm.C()) {
		t.Fatal("the elector view's timer fired before 1s on the clock")
	}
	base.Step(time.Millisecond)
	receive(t, tm.C(), "the elector view's timer after 1s on the clock")
	if got := ec.Now().Sub(t0); got != time.Second {
		t.Fatalf("the elector view read %v after 800ms of base time at rate 1.25, want 1s", got)
	}
	if !ec.Now().Equal(c.Now()) {
		t.Fatal("the elector view reads another time than the clock")
	}
}
