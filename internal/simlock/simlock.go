// Package simlock is an in-memory leadership.Lock for deterministic
// simulations: one Store holds the record with compare-and-swap on a version
// that strictly increases over every write, delete and re-create, and each
// simulated process talks to it through its own Conn, which injects the
// faults of a real network from a seed: latency on every request and
// response, lost requests, lost responses (the write was applied, the
// client never learns it: an ambiguous outcome), writes applied after the
// client gave up (only if their compare-and-swap precondition still holds
// when they land), watch streams that end or stall, and partitions that cut
// a process off in both directions. Operators act on the Store directly:
// deletions and hand edits.
//
// Every fault decision of a request is drawn from a PCG source seeded with
// the store's seed and the request's key (the connection and its request
// counter), so the same sequence of requests meets the same faults whatever
// else runs concurrently. The package is meant to run inside a
// testing/synctest bubble, where its sleeps take virtual time.
package simlock

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/leadership-dev/leadership"
)

// Faults sets what a Conn injects. The zero value injects nothing: requests
// are answered at once.
type Faults struct {
	// MinLatency and MaxLatency bound the latency of each leg of a request
	// (client to store, store to client) and of each watch event,
	// uniformly.
	MinLatency, MaxLatency time.Duration
	// SlowProb is the probability that a leg is slow instead: uniform in
	// [MaxLatency, SlowMax]. A slow request leg is how a write gets applied
	// after its sender gave up on it.
	SlowProb float64
	SlowMax  time.Duration
	// LossRequest is the probability that a request never reaches the
	// store; LossResponse that the store applied it but the answer never
	// arrives. Either way the client waits until its deadline.
	LossRequest, LossResponse float64
	// ClientTimeout is when a client gives up on a request whose context
	// has no earlier deadline, like an HTTP client's timeout. Zero: never.
	ClientTimeout time.Duration
	// WatchLifetime is the mean lifetime of a watch stream (exponentially
	// distributed), after which the server ends it. Zero: streams end only
	// when their client or a partition ends them.
	WatchLifetime time.Duration
}

// Entry is one step in a store's history, passed to the Store's trace
// function as it happens.
type Entry struct {
	At   time.Time
	Who  string // a Conn's name, or the operator's
	Op   string // get, create, update, delete, watch, event, edit:…, partition, heal, …
	Base uint64 // the version a compare-and-swap was based on
	Rec  leadership.Record
	Err  error
	Note string // late (applied after the client gave up), lost-request, lost-response, …
}

func (e Entry) String() string {
	s := fmt.Sprintf("%-8s %-14s", e.Who, e.Op)
	if e.Base != 0 {
		s += fmt.Sprintf(" base=%d", e.Base)
	}
	if e.Err != nil {
		s += " err=" + e.Err.Error()
	} else if e.Rec.Version != 0 {
		s += " " + FormatRecord(e.Rec)
	}
	if e.Note != "" {
		s += " [" + e.Note + "]"
	}
	return s
}

// FormatRecord renders the fields the protocol reads, compactly.
func FormatRecord(r leadership.Record) string {
	return fmt.Sprintf("v%d holder=%q dur=%v inst=%s tok=%d pref=%q renew=%s", r.Version, r.HolderIdentity,
		r.LeaseDuration, r.Instance, r.Token, r.PreferredHolder, r.RenewTime.Format("15:04:05.000"))
}

// Errors a Conn reports besides the leadership ones.
var (
	ErrUnreachable = errors.New("simlock: store unreachable (partitioned)")
	ErrTimeout     = errors.New("simlock: request timed out")
	ErrKilled      = errors.New("simlock: process killed")
)

// historyLen is how many recent events a Store keeps to replay to a watch
// that starts from an older version; older starts get the current state.
const historyLen = 64

// Store is the lock's authoritative state.
type Store struct {
	seed  uint64
	trace func(Entry)
	// inflight counts the goroutines that carry requests and watch
	// streams, so that a simulation can wait for the network to drain.
	inflight sync.WaitGroup

	mu       sync.Mutex
	faults   Faults
	rec      leadership.Record
	exists   bool
	rev      uint64
	recent   []leadership.Event
	watchers map[*watcher]struct{}
}

// NewStore returns an empty store whose faults are drawn from seed. trace,
// if not nil, receives every step; it is called with the store's lock held
// for steps that change or read the record, so it must not call the store.
func NewStore(seed uint64, trace func(Entry)) *Store {
	if trace == nil {
		trace = func(Entry) {}
	}
	return &Store{seed: seed, trace: trace, watchers: map[*watcher]struct{}{}}
}

// Wait returns once every request sent so far has landed or been lost and
// every watch stream has ended. In a synctest bubble, call it before the
// bubble's root goroutine returns: time stops advancing after that.
func (s *Store) Wait() { s.inflight.Wait() }

// SetFaults replaces the faults injected from now on.
func (s *Store) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

func (s *Store) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Current returns the record and whether it exists.
func (s *Store) Current() (leadership.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec, s.exists
}

// Delete deletes the record as who (an operator), if it exists.
func (s *Store) Delete(who string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exists {
		return false
	}
	s.rev++
	s.exists = false
	s.trace(Entry{At: time.Now(), Who: who, Op: "delete", Rec: leadership.Record{Version: s.rev}})
	s.emit(leadership.Event{Type: leadership.Deleted, Record: leadership.Record{Version: s.rev}})
	return true
}

// Edit applies a read-modify-write by who (an operator) atomically: edit
// gets a copy of the current record and returns false to leave it alone.
// Every applied edit gets a new version, even one that changes nothing
// (like a label change on a Lease, which this Record does not model).
func (s *Store) Edit(who, what string, edit func(r *leadership.Record) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exists {
		return false
	}
	r := s.rec
	if !edit(&r) {
		return false
	}
	out := s.put(r)
	s.trace(Entry{At: time.Now(), Who: who, Op: "edit:" + what, Rec: out})
	return true
}

// Snapshot is a backup of a Store's state.
type Snapshot struct {
	rec    leadership.Record
	exists bool
	rev    uint64
}

// Version is the store's revision when the snapshot was taken.
func (b Snapshot) Version() uint64 { return b.rev }

// Backup takes a snapshot of the store, as an etcd backup would.
func (s *Store) Backup() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{rec: s.rec, exists: s.exists, rev: s.rev}
}

// Restore puts the store back to a snapshot, as restoring etcd from a
// backup without --bump-revision does: versions go back and will be reused
// by later writes, which breaks the Lock contract (versions strictly
// increase) and with it compare-and-swap across the restore. Every watch
// stream ends.
func (s *Store) Restore(who string, b Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec, s.exists, s.rev = b.rec, b.exists, b.rev
	s.recent = nil
	for w := range s.watchers {
		w.cancel()
	}
	e := Entry{At: time.Now(), Who: who, Op: "restore", Note: fmt.Sprintf("back to v%d", b.rev)}
	if b.exists {
		e.Rec = b.rec
	}
	s.trace(e)
}

func (s *Store) put(r leadership.Record) leadership.Record {
	s.rev++
	r.Version = s.rev
	s.rec, s.exists = r, true
	s.emit(leadership.Event{Type: leadership.Put, Record: r})
	return r
}

// emit records ev for replay and queues it to every watcher. Called with mu.
func (s *Store) emit(ev leadership.Event) {
	if len(s.recent) == historyLen {
		copy(s.recent, s.recent[1:])
		s.recent = s.recent[:historyLen-1]
	}
	s.recent = append(s.recent, ev)
	now := time.Now()
	for w := range s.watchers {
		w.push(ev, now)
	}
}

func (s *Store) get() (leadership.Record, error) {
	if !s.exists {
		return leadership.Record{}, fmt.Errorf("simlock: get: %w", leadership.ErrNotFound)
	}
	return s.rec, nil
}

func (s *Store) create(r leadership.Record) (leadership.Record, error) {
	if s.exists {
		return leadership.Record{}, fmt.Errorf("simlock: create: %w", leadership.ErrConflict)
	}
	return s.put(r), nil
}

func (s *Store) update(r leadership.Record) (leadership.Record, error) {
	switch {
	case !s.exists:
		return leadership.Record{}, fmt.Errorf("simlock: update: %w", leadership.ErrNotFound)
	case r.Version != s.rec.Version:
		return leadership.Record{}, fmt.Errorf("simlock: update: %w (based on v%d, current v%d)", leadership.ErrConflict, r.Version, s.rec.Version)
	}
	return s.put(r), nil
}

// initial is what a watch from version from starts with: the events since,
// or the current state when they are no longer kept. Called with mu.
func (s *Store) initial(from uint64) []leadership.Event {
	if from == 0 {
		if s.exists {
			return []leadership.Event{{Type: leadership.Put, Record: s.rec}}
		}
		return nil
	}
	if from >= s.rev {
		return nil
	}
	if len(s.recent) > 0 && s.recent[0].Record.Version <= from+1 {
		var out []leadership.Event
		for _, ev := range s.recent {
			if ev.Record.Version > from {
				out = append(out, ev)
			}
		}
		return out
	}
	if s.exists {
		return []leadership.Event{{Type: leadership.Put, Record: s.rec}}
	}
	return []leadership.Event{{Type: leadership.Deleted, Record: leadership.Record{Version: s.rev}}}
}
