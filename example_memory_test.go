package leadership_test

import (
	"context"
	"fmt"
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
