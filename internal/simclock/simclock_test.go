package simclock

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast, slow := New(1.5), New(0.5)
		t0f := fast.Now()
		time.Sleep(10 * time.Second)
		if d := fast.Since(t0f); d != 15*time.Second {
			t.Errorf("fast clock advanced %v in 10s, want 15s", d)
		}
		if d := slow.Elapsed(); d != 5*time.Second {
			t.Errorf("slow clock's Elapsed %v after 10s, want 5s", d)
		}
	})
}

func TestTimersNeverFireEarlyOnTheirClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, rate := range []float64{0.99, 1, 1.01, 3} {
			c := New(rate)
			start := c.Now()
			tm := c.NewTimer(time.Second)
			<-tm.C()
			if got := c.Since(start); got < time.Second || got > time.Second+time.Microsecond {
				t.Errorf("rate %v: timer of 1s fired after %v on its clock", rate, got)
			}
			start = c.Now()
			tm.Reset(2 * time.Second)
			<-tm.C()
			if got := c.Since(start); got < 2*time.Second {
				t.Errorf("rate %v: reset timer of 2s fired after %v", rate, got)
			}
			start = c.Now()
			c.Sleep(time.Second)
			if got := c.Since(start); got < time.Second {
				t.Errorf("rate %v: Sleep(1s) took %v", rate, got)
			}
		}
	})
}

func TestBadRateMeansNoDrift(t *testing.T) {
	for _, r := range []float64{0, -1} {
		if got := New(r).Rate(); got != 1 {
			t.Errorf("New(%v).Rate() = %v, want 1", r, got)
		}
	}
}
