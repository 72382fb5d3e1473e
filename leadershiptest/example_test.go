package leadershiptest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
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
