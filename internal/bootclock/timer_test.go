package bootclock

import (
	"testing"
	"time"
)

func TestTimerFiresAtDeadline(t *testing.T) {
	tm, err := NewTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Stop()
	start := Now()
	if err := tm.Set(start + 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("boot-clock timer did not fire")
	}
	if got := Now() - start; got < 50*time.Millisecond {
		t.Fatalf("fired after %v, before its deadline", got)
	}
}

func TestTimerRearmAndPastDeadline(t *testing.T) {
	tm, err := NewTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Stop()
	defer tm.Stop() // Stop is idempotent
	// A far deadline moved into the past fires at once: that is the case of
	// a resume that carried the boot clock past the term's end.
	if err := tm.Set(Now() + time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := tm.Set(Now() - time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("a deadline in the past did not fire")
	}
}
