package leadershiptest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
)

// A test gives each elector its own connection and cuts one, as a network
// partition would; the store itself stays up for the others.
func ExampleLock_Conn() {
	ctx := context.Background()
	lock := leadershiptest.NewLock()
	a, b := lock.Conn(), lock.Conn()
	if _, err := a.Create(ctx, leadership.Record{HolderIdentity: "a", LeaseDuration: time.Second}); err != nil {
		fmt.Println(err)
		return
	}
	a.Cut(true)
	_, err := a.Get(ctx)
	fmt.Println("a:", errors.Is(err, leadershiptest.ErrCut))
	r, err := b.Get(ctx)
	fmt.Println("b:", r.HolderIdentity, err)
	// Output:
	// a: true
	// b: a <nil>
}

// An operator's hand edit and deletion, as a test injects them.
func ExampleLock_Edit() {
	ctx := context.Background()
	lock := leadershiptest.NewLock()
	c, _ := lock.Create(ctx, leadership.Record{HolderIdentity: "a", LeaseDuration: 15 * time.Second})
	e, _ := lock.Edit(func(r *leadership.Record) { r.LeaseDuration = time.Second })
	fmt.Println(e.HolderIdentity, e.LeaseDuration, e.Version > c.Version)
	lock.Delete()
	_, err := lock.Get(ctx)
	fmt.Println(errors.Is(err, leadership.ErrNotFound))
	// Output:
	// a 1s true
	// true
}

// TestLock checks a Lock implementation from the test file of its package.
// Here the backend is the in-memory lock; a backend of your own returns a
// fresh lock per subtest and a way to delete its record.
func ExampleTestLock() {
	_ = func(t *testing.T) { // func TestMyLock(t *testing.T)
		leadershiptest.TestLock(t, func(t *testing.T) leadershiptest.Subject {
			lock := leadershiptest.NewLock() // mylock.New(db, "lock-"+t.Name())
			return leadershiptest.Subject{Lock: lock, Delete: func(context.Context) error { lock.Delete(); return nil }}
		})
	}
}

// A test of code built on the elector runs it in a synctest bubble, on
// Clock: time is virtual, and the test asserts on exact instants.
func ExampleClock() {
	_ = func(t *testing.T) { // func TestMyLeader(t *testing.T)
		synctest.Test(t, func(t *testing.T) {
			lock := leadershiptest.NewLock()
			e, err := leadership.NewWithClock(lock, leadership.Config{Identity: "a"}, leadershiptest.Clock{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				_ = e.Run(ctx, func(ctx context.Context, _ leadership.Term) error { <-ctx.Done(); return nil })
			}()
			// A lock nobody held is created, then held a lease duration
			// (15s) before its creator leads.
			time.Sleep(15 * time.Second)
			synctest.Wait()
			if !e.Leader().Self {
				t.Fatal("not leading 15s after creating the lock")
			}
		})
	}
}
