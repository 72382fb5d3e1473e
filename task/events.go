package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/leadership-dev/leadership"
)

// Events is an event-driven task: Handle reconciles one key at a time, for
// keys delivered by Watch while this replica leads, and for every key that
// Sweep returns at the start of each term. The sweep is what makes the
// task complete: changes made while nobody led (or while a watch was
// broken) produce no event for this term, but a sweep sees their result.
//
// Handle must be idempotent and level-based: it is given a key, not an
// event, and it makes the world agree with what the key's current state
// asks for. A key may be handled more than once (the watch and the sweep
// both deliver it; a failed key is retried); keys that arrive while the same
// key is waiting are merged. One key is handled at a time.
type Events[K comparable] struct {
	// Name identifies the task in logs: lower-case letters, digits, '-' and
	// '.', at most 54 characters.
	Name string
	// Watch starts watching for changes and returns once the watch is
	// established, with a channel of the keys that changed. It is called at
	// the start of every term, before the first sweep, so that a change made
	// during the sweep is not lost. The channel should stay open until ctx
	// is done; if it closes earlier, the watch is taken as broken, and
	// Watch is called again and followed by another sweep. An error is
	// retried with backoff. nil means no watch: only sweeps.
	Watch func(ctx context.Context) (<-chan K, error)
	// Sweep returns every key that may need handling: the objects that
	// exist and the state kept for objects that may be gone. Required.
	Sweep func(ctx context.Context, t leadership.Term) ([]K, error)
	// Handle reconciles one key. t.Token is the fencing token to hand to the
	// stores it writes. A failed key is retried after Retry, doubling each
	// time up to 64×Retry, until it succeeds or the term ends. Required.
	Handle func(ctx context.Context, t leadership.Term, key K) error
	// SweepInterval adds a sweep this often, as a safety net for events
	// that a watch can miss. 0 means only at the start of a term and after
	// a broken watch.
	SweepInterval time.Duration
	// Timeout bounds each call of Sweep and Handle; 0 means no bound but the
	// term. The call's context deadline is also capped by what is left of
	// the term.
	Timeout time.Duration
	// Retry is the first wait before a failed key, sweep or watch is tried
	// again. 0 means one second.
	Retry time.Duration
}

func (e Events[K]) taskName() string { return e.Name }

func (e Events[K]) check(Config) error {
	if err := checkName("event-driven", e.Name); err != nil {
		return err
	}
	bad := func(field string, v any, rule string) error {
		return fmt.Errorf("task: event-driven task %q: %s %v: %s", e.Name, field, v, rule)
	}
	switch {
	case e.Sweep == nil:
		return bad("Sweep", nil, "is required: without a sweep at every acquisition, changes made while nobody led would be lost")
	case e.Handle == nil:
		return bad("Handle", nil, "is required")
	case e.SweepInterval < 0:
		return bad("SweepInterval", e.SweepInterval, "must not be negative (0 means only at acquisition)")
	case e.Timeout < 0:
		return bad("Timeout", e.Timeout, "must not be negative (0 means no bound but the term)")
	case e.Retry < 0:
		return bad("Retry", e.Retry, "must not be negative (0 means 1s)")
	}
	return nil
}

func (e Events[K]) retry() time.Duration {
	if e.Retry == 0 {
		return time.Second
	}
	return e.Retry
}

// backoff is the wait before attempt n+1 after n consecutive failures:
// Retry, doubling up to 64×Retry.
func (e Events[K]) backoff(n int) time.Duration {
	return e.retry() * time.Duration(1<<min(n-1, 6))
}

func (e Events[K]) run(ctx context.Context, g *Group, t leadership.Term) {
	log := g.log.With("task", e.Name, "token", t.Token)
	q := newQueue[K]()
	defer q.stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	if e.Watch == nil {
		q.requestSweep()
	} else {
		wg.Go(func() { e.watch(ctx, q, log) })
	}
	failures := map[K]int{}
	sweepFailures := 0
	for {
		if q.takeSweep() {
			began := time.Now()
			var keys []K
			err := g.call(ctx, t, e.Timeout, func(ctx context.Context) error {
				var err error
				keys, err = e.Sweep(ctx, t)
				return err
			})
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errTermOver) {
				q.sweepAfter(termOverPause)
				continue
			}
			if err != nil {
				sweepFailures++
				d := e.backoff(sweepFailures)
				log.Warn("sweep failed; retrying", "error", err, "in", d)
				q.sweepAfter(d)
				continue
			}
			sweepFailures = 0
			log.Debug("swept", "keys", len(keys), "took", time.Since(began))
			q.add(keys...)
			if e.SweepInterval > 0 {
				q.sweepAfter(max(0, time.Until(began.Add(e.SweepInterval))))
			}
			continue
		}
		if k, ok := q.pop(); ok {
			err := g.call(ctx, t, e.Timeout, func(ctx context.Context) error { return e.Handle(ctx, t, k) })
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errTermOver) {
				q.addAfter(termOverPause, k)
				continue
			}
			if err != nil {
				failures[k]++
				d := e.backoff(failures[k])
				log.Warn("handling a key failed; retrying", "key", k, "error", err, "in", d)
				q.addAfter(d, k)
			} else {
				delete(failures, k)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-q.signal:
		}
	}
}

// watch keeps a watch open for the term and feeds its keys to q. Each time a
// watch is established it asks for a sweep, which covers whatever changed
// before the watch began.
func (e Events[K]) watch(ctx context.Context, q *queue[K], log *slog.Logger) {
	failures := 0
	swept := false
	for ctx.Err() == nil {
		ch, err := e.Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			d := e.backoff(failures)
			log.Warn("cannot watch; retrying", "error", err, "in", d)
			if !swept {
				// Sweep meanwhile, so the term is not idle; another
				// sweep follows once the watch is up.
				q.requestSweep()
				swept = true
			}
			sleep(ctx, d)
			continue
		}
		failures = 0
		q.requestSweep()
		swept = true
	drain:
		for {
			select {
			case <-ctx.Done():
				return
			case k, ok := <-ch:
				if !ok {
					break drain
				}
				q.add(k)
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Info("watch ended; watching again, then sweeping for what it may have missed")
		sleep(ctx, e.retry())
	}
}

// queue holds the keys waiting to be handled, in arrival order, each once,
// and whether a sweep is due. signal wakes the worker after a change.
type queue[K comparable] struct {
	signal chan struct{}

	mu      sync.Mutex
	order   []K
	pending map[K]bool
	sweep   bool
	timers  map[*time.Timer]bool // calls of afterLocked not yet run; nil once stopped
	next    *time.Timer          // the scheduled sweep
}

func newQueue[K comparable]() *queue[K] {
	return &queue[K]{signal: make(chan struct{}, 1), pending: map[K]bool{}, timers: map[*time.Timer]bool{}}
}

func (q *queue[K]) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *queue[K]) add(keys ...K) {
	q.mu.Lock()
	for _, k := range keys {
		if !q.pending[k] {
			q.pending[k] = true
			q.order = append(q.order, k)
		}
	}
	q.mu.Unlock()
	q.wake()
}

func (q *queue[K]) pop() (K, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var k K
	if len(q.order) == 0 {
		return k, false
	}
	k = q.order[0]
	q.order = q.order[1:]
	delete(q.pending, k)
	return k, true
}

func (q *queue[K]) requestSweep() {
	q.mu.Lock()
	q.sweep = true
	q.mu.Unlock()
	q.wake()
}

func (q *queue[K]) takeSweep() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sweep
	q.sweep = false
	return s
}

// afterLocked runs f after d, unless the queue is stopped or the timer
// taken out of q.timers first. q.mu must be held. The timer's function runs
// in a goroutine of its own, so it can take q.mu; it looks its timer up only
// once it holds q.mu, by which time t is assigned.
func (q *queue[K]) afterLocked(d time.Duration, f func()) *time.Timer {
	if q.timers == nil {
		return nil
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		due := q.timers[t]
		delete(q.timers, t)
		q.mu.Unlock()
		if due {
			f()
		}
	})
	q.timers[t] = true
	return t
}

func (q *queue[K]) addAfter(d time.Duration, k K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.afterLocked(d, func() { q.add(k) })
}

// sweepAfter schedules the next sweep, replacing the one scheduled before:
// there is one sweep schedule however many sweeps were requested.
func (q *queue[K]) sweepAfter(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.next != nil {
		// Stop may come too late, once the function is waiting for
		// q.mu; then it finds its timer gone and does nothing.
		delete(q.timers, q.next)
		q.next.Stop()
	}
	q.next = q.afterLocked(d, q.requestSweep)
}

// stop cancels the pending timers: the term is over.
func (q *queue[K]) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for t := range q.timers {
		t.Stop()
	}
	q.timers = nil
}
