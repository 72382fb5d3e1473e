package leadership_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
)

func TestNewWithClockRefusesANilClock(t *testing.T) {
	_, err := leadership.NewWithClock(leadershiptest.NewLock(), leadership.Config{Identity: "a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "nil Clock") {
		t.Fatalf("NewWithClock(nil clock): %v; want an error saying the clock is nil", err)
	}
}

// An elector on a clock of the caller's keeps a constant number of
// goroutines through a long term: each renewal re-arms the boot-clock
// timer, which must not leave the previous timer's goroutine behind.
func TestNewWithClockRenewalsLeaveNoGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := newLock()
		e, err := leadership.NewWithClock(lock, leadership.Config{Identity: "a", Logger: quietLogger()}, leadershiptest.Clock{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- e.Run(ctx, func(ctx context.Context, _ leadership.Term) error { <-ctx.Done(); return nil })
		}()
		sleep(5 * time.Second) // the first renewal
		before := runtime.NumGoroutine()
		sleep(100 * 5 * time.Second) // a hundred more
		if r := record(lock); !r.RenewTime.Equal(time.Now()) {
			t.Errorf("no renewal now: %+v", r)
		}
		// NumGoroutine counts the whole process's, so a goroutine of the
		// runtime or the test framework may come or go meanwhile; a leak
		// per renewal adds a hundred.
		if after := runtime.NumGoroutine(); after > before+5 {
			t.Errorf("%d goroutines after a hundred renewals, %d before: each renewal leaves one behind", after, before)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
