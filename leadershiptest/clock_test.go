package leadershiptest_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
)

// An elector on Clock runs in a bubble: it leads at once on a released
// lock and renews at exactly RenewInterval of virtual time, and Run returns
// when its context ends, leaving no goroutine behind.
func TestClockRunsAnElectorInABubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		lock := leadershiptest.NewLock()
		lock.Put(leadership.Record{LeaseDuration: time.Second, Released: 1})
		e, err := leadership.NewWithClock(lock, leadership.Config{Identity: "a"}, leadershiptest.Clock{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var began time.Time
		go func() {
			done <- e.Run(ctx, func(ctx context.Context, _ leadership.Term) error {
				began = time.Now()
				<-ctx.Done()
				return nil
			})
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		r, _ := lock.Record()
		if !began.Equal(start) || r.HolderIdentity != "a" || !r.RenewTime.Equal(start.Add(5*time.Second)) {
			t.Fatalf("began %v after the start, record %+v; want a term at once and a renewal at 5s", began.Sub(start), r)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
