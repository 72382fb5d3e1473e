package simlock

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadership-dev/leadership"
)

// Conn is one process's connection to a Store; it implements
// leadership.Lock.
type Conn struct {
	s    *Store
	name string
	key  uint64
	// n counts the requests of each kind sent, the per-request part of
	// the fault key. One counter per kind: an elector's goroutines send
	// different kinds (its observer reads and watches while its campaign
	// writes), so two requests sent at one virtual instant by two of its
	// goroutines draw the same faults whichever the scheduler runs first.
	n [numKinds]atomic.Uint64

	mu          sync.Mutex
	partitioned bool
	killed      bool
	healed      chan struct{} // closed when the current partition heals
	watchers    map[*watcher]struct{}
}

var _ leadership.Lock = (*Conn)(nil)

// Connect returns a connection named name (for the history); key must be
// unique per connection of the store, as it selects the connection's
// stream of fault decisions.
func (s *Store) Connect(name string, key uint64) *Conn {
	c := &Conn{s: s, name: name, key: key, healed: make(chan struct{}), watchers: map[*watcher]struct{}{}}
	close(c.healed)
	return c
}

func (c *Conn) String() string { return "simlock " + c.name }

// Request kinds, for the fault key.
const (
	kindGet = iota
	kindCreate
	kindUpdate
	kindWatch
	kindPartition
	numKinds
)

// rng returns the fault source of the next request of a kind.
func (c *Conn) rng(kind int) *rand.Rand {
	k := c.n[kind].Add(1)
	return rand.New(rand.NewPCG(c.s.seed, mix(c.key<<32^uint64(kind)<<26^k)))
}

// mix is splitmix64's finaliser: neighbouring keys get unrelated streams.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func leg(f Faults, r *rand.Rand) time.Duration {
	if f.SlowProb > 0 && r.Float64() < f.SlowProb && f.SlowMax > f.MaxLatency {
		return f.MaxLatency + time.Duration(r.Int64N(int64(f.SlowMax-f.MaxLatency)))
	}
	if f.MaxLatency > f.MinLatency {
		return f.MinLatency + time.Duration(r.Int64N(int64(f.MaxLatency-f.MinLatency)))
	}
	return f.MinLatency
}

// Partition cuts the connection off in both directions (true) or heals it
// (false). Watch streams open at the cut either end at once, or stall and
// then end or resume with the events held back when it heals, as a TCP
// connection would; requests in flight are lost.
func (c *Conn) Partition(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partitioned == on || c.killed {
		return
	}
	c.partitioned = on
	r := c.rng(kindPartition)
	if on {
		c.healed = make(chan struct{})
		for w := range c.watchers {
			switch r.IntN(3) {
			case 0:
				w.cancel()
			case 1:
				w.closeOnHeal = true
			}
		}
	} else {
		close(c.healed)
		for w := range c.watchers {
			if w.closeOnHeal {
				w.cancel()
			}
		}
	}
}

// Kill ends the process's connection for good: its watches end, new
// requests fail at once, and answers to requests in flight are lost; the
// requests themselves may still land, as they were already on the wire.
func (c *Conn) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killed = true
	if c.partitioned {
		c.partitioned = false
		close(c.healed)
	}
	for w := range c.watchers {
		w.cancel()
	}
}

func (c *Conn) state() (partitioned, killed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.partitioned, c.killed
}

type result struct {
	rec leadership.Record
	err error
}

// call sends one request. apply runs at the store, with its lock held, when
// the request arrives, and returns the answer and the history entry.
func (c *Conn) call(ctx context.Context, kind int, op string, base uint64, apply func() (leadership.Record, error)) (leadership.Record, error) {
	r := c.rng(kind)
	f := c.s.currentFaults()
	// Draw every decision up front, in a fixed order, so that one request
	// key always meets the same faults.
	dReq, dResp := leg(f, r), leg(f, r)
	lossReq := r.Float64() < f.LossRequest
	lossResp := r.Float64() < f.LossResponse
	refuse := r.IntN(2) == 0

	partitioned, killed := c.state()
	if killed {
		return leadership.Record{}, ErrKilled
	}
	if partitioned && refuse {
		// A connection refused or reset: the client learns within a round
		// trip to the nearest router.
		t := time.NewTimer(dReq)
		defer t.Stop()
		select {
		case <-t.C:
			return leadership.Record{}, fmt.Errorf("simlock: %s: %w", op, ErrUnreachable)
		case <-ctx.Done():
			return leadership.Record{}, ctx.Err()
		}
	}
	var gaveUp atomic.Bool
	done := make(chan result, 1)
	c.s.inflight.Go(func() {
		time.Sleep(dReq)
		if p, _ := c.state(); p || lossReq {
			note := "lost-request"
			if p {
				note = "partitioned"
			}
			c.s.trace(Entry{At: time.Now(), Who: c.name, Op: op, Base: base, Err: ErrTimeout, Note: note})
			return
		}
		c.s.mu.Lock()
		rec, err := apply()
		e := Entry{At: time.Now(), Who: c.name, Op: op, Base: base, Rec: rec, Err: err}
		if gaveUp.Load() {
			e.Note = "late: client gave up"
		} else if lossResp {
			e.Note = "response will be lost"
		}
		if op != "get" || err != nil || e.Note != "" {
			c.s.trace(e)
		}
		c.s.mu.Unlock()
		time.Sleep(dResp)
		if p, k := c.state(); p || k || lossResp {
			return
		}
		done <- result{rec, err}
	})
	// The client gives up after its timeout, or a microsecond before the
	// context's deadline: a caller's timer that expires at that same
	// deadline (the elector's end of validity) then always fires second,
	// which keeps replays of a seed from depending on how the scheduler
	// orders two goroutines woken at one virtual instant.
	limit := f.ClientTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl) - time.Microsecond; limit <= 0 || d < limit {
			limit = max(d, 0)
		}
	}
	var timeout <-chan time.Time
	if limit > 0 || f.ClientTimeout > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case res := <-done:
		return res.rec, res.err
	case <-ctx.Done():
		gaveUp.Store(true)
		return leadership.Record{}, ctx.Err()
	case <-timeout:
		gaveUp.Store(true)
		return leadership.Record{}, fmt.Errorf("simlock: %s: %w", op, ErrTimeout)
	}
}

func (c *Conn) Get(ctx context.Context) (leadership.Record, error) {
	return c.call(ctx, kindGet, "get", 0, c.s.get)
}

func (c *Conn) Create(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	return c.call(ctx, kindCreate, "create", 0, func() (leadership.Record, error) { return c.s.create(r) })
}

func (c *Conn) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	return c.call(ctx, kindUpdate, "update", r.Version, func() (leadership.Record, error) { return c.s.update(r) })
}

type queued struct {
	ev leadership.Event
	at time.Time
}

type watcher struct {
	c      *Conn
	ch     chan leadership.Event
	cancel context.CancelFunc
	key    uint64
	// closeOnHeal: the stream stalled in a partition and ends when it heals.
	closeOnHeal bool // guarded by c.mu

	mu    sync.Mutex
	queue []queued
	wake  chan struct{}
}

func (w *watcher) push(ev leadership.Event, at time.Time) {
	w.mu.Lock()
	w.queue = append(w.queue, queued{ev, at})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) pop() (queued, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return queued{}, false
	}
	q := w.queue[0]
	w.queue = w.queue[1:]
	return q, true
}

func (c *Conn) Watch(ctx context.Context, from uint64) (<-chan leadership.Event, error) {
	r := c.rng(kindWatch)
	k := c.n[kindWatch].Load()
	f := c.s.currentFaults()
	d := leg(f, r) + leg(f, r)
	life := time.Duration(0)
	if f.WatchLifetime > 0 {
		life = time.Duration(r.ExpFloat64() * float64(f.WatchLifetime))
	}
	if _, killed := c.state(); killed {
		return nil, ErrKilled
	}
	// Opening the stream takes a round trip.
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	}
	if p, killed := c.state(); p || killed {
		return nil, fmt.Errorf("simlock: watch: %w", ErrUnreachable)
	}
	var wctx context.Context
	var cancel context.CancelFunc
	if life > 0 {
		wctx, cancel = context.WithTimeout(ctx, life)
	} else {
		wctx, cancel = context.WithCancel(ctx)
	}
	w := &watcher{c: c, ch: make(chan leadership.Event), cancel: cancel, key: k, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	c.s.mu.Lock()
	now := time.Now()
	for _, ev := range c.s.initial(from) {
		w.queue = append(w.queue, queued{ev, now})
	}
	c.s.watchers[w] = struct{}{}
	c.s.trace(Entry{At: now, Who: c.name, Op: "watch", Base: from, Note: fmt.Sprintf("%d initial events, lifetime %v", len(w.queue), life.Round(time.Millisecond))})
	c.s.mu.Unlock()
	c.s.inflight.Go(func() { w.run(wctx) })
	return w.ch, nil
}

// run delivers the stream's events in order, each after its latency.
func (w *watcher) run(ctx context.Context) {
	defer func() {
		w.cancel()
		w.c.s.mu.Lock()
		delete(w.c.s.watchers, w)
		w.c.s.mu.Unlock()
		w.c.mu.Lock()
		delete(w.c.watchers, w)
		w.c.mu.Unlock()
		close(w.ch)
	}()
	var due time.Time
	var n uint64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		q, ok := w.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		n++
		f := w.c.s.currentFaults()
		r := rand.New(rand.NewPCG(w.c.s.seed, mix(w.c.key<<32^w.key<<20^n^0x5a5a<<48)))
		// Events of one stream arrive in order and at least a microsecond
		// apart, so the client has handled one before the next arrives
		// whatever order the scheduler runs its goroutines in: a replay of a
		// seed then does not depend on that order.
		due = later(due.Add(time.Microsecond), q.at.Add(leg(f, r)))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		// A partitioned stream holds its events back until the partition
		// heals (or the stream ends).
		for {
			w.c.mu.Lock()
			p, healed := w.c.partitioned, w.c.healed
			w.c.mu.Unlock()
			if !p {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-healed:
			}
		}
		select {
		case <-ctx.Done():
			return
		case w.ch <- q.ev:
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
