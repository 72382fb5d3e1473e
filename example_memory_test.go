package leadership_test

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
)

// releasedLock is an in-memory lock as its last holder left it: released
// once its work had returned, so that the first candidate takes it at once
// (a lock nobody ever held is created and held a lease duration first).
func releasedLock() *leadershiptest.Lock {
	lock := leadershiptest.NewLock()
	lock.Put(leadership.Record{LeaseDuration: time.Second, Released: 1})
	return lock
}

// campaign runs an elector for id on lock until ctx is done, and sends each
// term it wins on terms; lead returns when the term ends.
func campaign(ctx context.Context, lock leadership.Lock, id string, terms chan<- leadership.Term) *leadership.Elector {
	e, err := leadership.New(lock, leadership.Config{Identity: id})
	if err != nil {
		panic(err) // a fixed, valid Config: unreachable
	}
	go func() {
		_ = e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
			terms <- t
			<-ctx.Done()
			return nil
		})
	}()
	return e
}

// Two replicas on one lock: the first leads; when it resigns, the lock is
// released after its work has returned and the other takes over at once,
// with a higher fencing token. The lock here is leadershiptest's in-memory
// one; in production it is kubelease's, on a Kubernetes Lease.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lock := releasedLock()
	aTerms, bTerms := make(chan leadership.Term, 1), make(chan leadership.Term, 1)
	a := campaign(ctx, lock, "replica-a", aTerms)
	first := <-aTerms
	fmt.Println(first.Identity, "leads")

	campaign(ctx, lock, "replica-b", bTerms)
	if err := a.Resign(ctx); err != nil {
		fmt.Println("resign:", err)
		return
	}
	second := <-bTerms
	fmt.Println(second.Identity, "leads after the handover")
	fmt.Println("token increased:", second.Token > first.Token)
	// Output:
	// replica-a leads
	// replica-b leads after the handover
	// token increased: true
}

// Observe reports who leads, to every replica, without a request per call.
func ExampleElector_Observe_inMemory() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lock := releasedLock()
	terms := make(chan leadership.Term, 1)
	campaign(ctx, lock, "replica-a", terms)
	<-terms

	b := campaign(ctx, lock, "replica-b", make(chan leadership.Term, 1))
	for l := range b.Observe(ctx) {
		if l.Identity != "" {
			fmt.Printf("replica-b sees %s leading (self: %v)\n", l.Identity, l.Self)
			break
		}
	}
	// Output:
	// replica-b sees replica-a leading (self: false)
}

// Values kept with the lock survive a failover: the next leader reads what
// the last one proclaimed.
func ExampleElector_Proclaim_inMemory() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lock := releasedLock()
	aTerms, bTerms := make(chan leadership.Term, 1), make(chan leadership.Term, 1)
	a := campaign(ctx, lock, "replica-a", aTerms)
	t := <-aTerms
	if err := a.Proclaim(ctx, t, map[string]string{"sweep-last-run": "2026-12-02T03:00:00Z"}); err != nil {
		fmt.Println("proclaim:", err)
		return
	}
	campaign(ctx, lock, "replica-b", bTerms)
	if err := a.Resign(ctx); err != nil {
		fmt.Println("resign:", err)
		return
	}
	next := <-bTerms
	fmt.Println(next.Identity, "reads sweep-last-run =", next.Values["sweep-last-run"])
	// Output:
	// replica-b reads sweep-last-run = 2026-12-02T03:00:00Z
}

// Two sets of hooks on one elector, as `leadership run` feeds its metrics
// and its Kubernetes Events: each moment reaches both, in order.
func ExampleJoinHooks() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acquired := make(chan struct{})
	audit := leadership.Hooks{OnAcquire: func(t leadership.Term, previous string, _ time.Duration) {
		fmt.Printf("audit: %s acquired the lock (previous holder %q)\n", t.Identity, previous)
	}}
	metrics := leadership.Hooks{OnAcquire: func(leadership.Term, string, time.Duration) {
		fmt.Println("metrics: terms_total+1")
		close(acquired)
	}}
	e, err := leadership.New(releasedLock(), leadership.Config{Identity: "replica-a", Hooks: leadership.JoinHooks(audit, metrics)})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() {
		_ = e.Run(ctx, func(ctx context.Context, _ leadership.Term) error { <-ctx.Done(); return nil })
	}()
	<-acquired
	// Output:
	// audit: replica-a acquired the lock (previous holder "")
	// metrics: terms_total+1
}

// skewedClock runs rate times as fast as the time package's clock, as on a
// host whose oscillator is off: a leadership.Clock is two methods.
type skewedClock struct {
	start time.Time // with its monotonic reading, so Now's are monotonic too
	rate  float64
}

func (c skewedClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.rate))
}

func (c skewedClock) NewTimer(d time.Duration) leadership.Timer {
	return skewedTimer{time.NewTimer(c.base(d)), c}
}

// base is d on this clock in the time package's, rounded up: a timer must
// not fire early on this clock.
func (c skewedClock) base(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(float64(d) / c.rate))
}

type skewedTimer struct {
	t *time.Timer
	c skewedClock
}

func (t skewedTimer) C() <-chan time.Time        { return t.t.C }
func (t skewedTimer) Stop() bool                 { return t.t.Stop() }
func (t skewedTimer) Reset(d time.Duration) bool { return t.t.Reset(t.c.base(d)) }

// A test runs an elector on a clock of its own, here one that runs 1%
// fast, to see that MaxClockDrift (by default 1%) absorbs it.
func ExampleNewWithClock() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := skewedClock{start: time.Now(), rate: 1.01}
	e, err := leadership.NewWithClock(releasedLock(), leadership.Config{Identity: "replica-a"}, clk)
	if err != nil {
		fmt.Println(err)
		return
	}
	terms := make(chan leadership.Term, 1)
	go func() {
		_ = e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
			terms <- t
			<-ctx.Done()
			return nil
		})
	}()
	fmt.Println((<-terms).Identity, "leads on a clock 1% fast")
	// Output: replica-a leads on a clock 1% fast
}
