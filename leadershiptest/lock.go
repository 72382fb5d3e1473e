// Package leadershiptest helps test code that uses package leadership: an
// in-memory Lock with the faults a real store has (a cut connection, a write
// applied after its sender gave up, a deletion, a hand edit, a compacted
// history), TestLock, a conformance suite for Lock implementations, and
// Clock, which runs an elector in a testing/synctest bubble.
//
// The in-memory Lock behaves like kubelease on a real API server in every
// way the elector relies on: versions strictly increase across deletion and
// re-creation, Update is a compare-and-swap on the version, Watch replays the
// changes after a version, and a deletion is an event with a version of its
// own. It is for fast tests of code built on the elector; tests of a
// Kubernetes deployment belong on a real API server.
package leadershiptest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/leadership-dev/leadership"
)

// ErrCut is what a cut Conn answers, as a network failure would: neither
// ErrConflict nor ErrNotFound, so the caller cannot tell whether the store
// saw its request.
var ErrCut = errors.New("leadershiptest: connection cut")

// defaultHistory is how many changes Watch can replay before it answers
// ErrExpired, like etcd's compaction window (much smaller, so that tests
// can reach it).
const defaultHistory = 1000

// Lock is an in-memory leadership.Lock, and a leadership.PingAnswerer. The
// zero value is not usable; call NewLock. Its methods are safe for
// concurrent use. Faults: Delete, Edit, LateApply, Compact, and
// per-connection cuts through Conn.
type Lock struct {
	name string

	mu        sync.Mutex
	rec       leadership.Record
	exists    bool
	rev       uint64             // the store's revision: the last version given out
	history   []leadership.Event // changes, oldest first, at most defaultHistory
	compacted uint64             // Watch from a version below this is expired
	watchers  map[*watcher]struct{}
	lateApply int // the next lateApply updates apply but report a timeout
}

// NewLock returns a Lock on a lock that does not exist yet.
func NewLock() *Lock {
	return &Lock{name: "leadershiptest.Lock", watchers: map[*watcher]struct{}{}}
}

func (l *Lock) String() string { return l.name }

// Get returns the record, or an error wrapping leadership.ErrNotFound.
func (l *Lock) Get(ctx context.Context) (leadership.Record, error) {
	if err := ctx.Err(); err != nil {
		return leadership.Record{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exists {
		return leadership.Record{}, fmt.Errorf("%s: %w", l.name, leadership.ErrNotFound)
	}
	return cloneRecord(l.rec), nil
}

// Create stores r as a new record, or fails with leadership.ErrConflict if
// one exists.
func (l *Lock) Create(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	if err := ctx.Err(); err != nil {
		return leadership.Record{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exists {
		return leadership.Record{}, fmt.Errorf("%s: create: %w", l.name, leadership.ErrConflict)
	}
	r.Ping, r.Pong = "", "" // not part of the record: only probes write them
	return l.put(r), nil
}

// Update replaces the record if its version is still r.Version. As the
// Lock contract says, it keeps the stored probe (Record.Ping and Pong),
// whatever r holds: only AnswerPing and a hand edit change them.
func (l *Lock) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	if err := ctx.Err(); err != nil {
		return leadership.Record{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exists {
		return leadership.Record{}, fmt.Errorf("%s: update: %w", l.name, leadership.ErrNotFound)
	}
	if r.Version != l.rec.Version {
		return leadership.Record{}, fmt.Errorf("%s: update from version %d, stored %d: %w", l.name, r.Version, l.rec.Version, leadership.ErrConflict)
	}
	r.Ping, r.Pong = l.rec.Ping, l.rec.Pong
	out := l.put(r)
	if l.lateApply > 0 {
		l.lateApply--
		return leadership.Record{}, fmt.Errorf("%s: update applied, answer lost: %w", l.name, context.DeadlineExceeded)
	}
	return out, nil
}

// AnswerPing writes ping as the record's Pong, changing nothing else, if
// the record is still at version; like Update, otherwise.
func (l *Lock) AnswerPing(ctx context.Context, version uint64, ping string) (leadership.Record, error) {
	if err := ctx.Err(); err != nil {
		return leadership.Record{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exists {
		return leadership.Record{}, fmt.Errorf("%s: answer a probe: %w", l.name, leadership.ErrNotFound)
	}
	if version != l.rec.Version {
		return leadership.Record{}, fmt.Errorf("%s: answer a probe at version %d, stored %d: %w", l.name, version, l.rec.Version, leadership.ErrConflict)
	}
	r := cloneRecord(l.rec)
	r.Pong = ping
	return l.put(r), nil
}

// Watch streams the changes after fromVersion; from 0 it first sends the
// current record, if any, as a Put. A version older than the kept history
// yields one Failed event wrapping leadership.ErrExpired. The channel closes
// when ctx is done.
func (l *Lock) Watch(ctx context.Context, fromVersion uint64) (<-chan leadership.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := newWatcher()
	switch {
	case fromVersion == 0:
		if l.exists {
			w.push(leadership.Event{Type: leadership.Put, Record: cloneRecord(l.rec)})
		}
	case fromVersion < l.compacted:
		w.push(leadership.Event{Type: leadership.Failed, Err: fmt.Errorf("%s: watch from version %d, history starts at %d: %w", l.name, fromVersion, l.compacted, leadership.ErrExpired)})
		w.end()
		return w.run(ctx, func() {}), nil
	default:
		for _, ev := range l.history {
			if ev.Record.Version > fromVersion {
				w.push(cloneEvent(ev))
			}
		}
	}
	l.watchers[w] = struct{}{}
	return w.run(ctx, func() {
		l.mu.Lock()
		delete(l.watchers, w)
		l.mu.Unlock()
	}), nil
}

// Record returns the stored record and whether the lock exists, for a
// test's assertions.
func (l *Lock) Record() (leadership.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cloneRecord(l.rec), l.exists
}

// Put stores r whatever is stored (existing or not), as an operator's
// kubectl apply would, and returns it with its new version. Unlike Update,
// it stores r's probe (Ping, Pong) too, as `leadership handover` writes one.
func (l *Lock) Put(r leadership.Record) leadership.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.put(r)
}

// Edit changes the stored record by hand, as kubectl edit would: a new
// version with whatever edit does to it. It reports false if the lock does
// not exist.
func (l *Lock) Edit(edit func(*leadership.Record)) (leadership.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exists {
		return leadership.Record{}, false
	}
	r := cloneRecord(l.rec)
	edit(&r)
	return l.put(r), true
}

// Delete deletes the record, as kubectl delete would. Watchers see a
// Deleted event carrying the deletion's own version.
func (l *Lock) Delete() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exists {
		return
	}
	l.rev++
	l.exists = false
	l.rec = leadership.Record{}
	l.record(leadership.Event{Type: leadership.Deleted, Record: leadership.Record{Version: l.rev}})
}

// LateApply makes the next n updates apply but answer
// context.DeadlineExceeded, as writes that reached the store after their
// sender had given up on them.
func (l *Lock) LateApply(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lateApply = n
}

// Compact forgets the history: a Watch from any version before now fails
// with leadership.ErrExpired, as after an etcd compaction.
func (l *Lock) Compact() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.history = nil
	l.compacted = l.rev + 1
}

func (l *Lock) put(r leadership.Record) leadership.Record {
	l.rev++
	r = cloneRecord(r)
	r.Version = l.rev
	l.rec, l.exists = r, true
	l.record(leadership.Event{Type: leadership.Put, Record: cloneRecord(r)})
	return cloneRecord(r)
}

// record keeps ev in the history and hands it to every watcher; l.mu held.
func (l *Lock) record(ev leadership.Event) {
	l.history = append(l.history, ev)
	if len(l.history) > defaultHistory {
		drop := len(l.history) - defaultHistory
		l.compacted = l.history[drop-1].Record.Version + 1
		l.history = append([]leadership.Event(nil), l.history[drop:]...)
	}
	for w := range l.watchers {
		w.push(cloneEvent(ev))
	}
}

// watcher queues events without bound, so that a slow reader never blocks
// the store (which holds its mutex while it pushes), and one goroutine per
// watch delivers them in order.
type watcher struct {
	mu     sync.Mutex
	queue  []leadership.Event
	ended  bool // no more events after the queue
	notify chan struct{}
}

func newWatcher() *watcher { return &watcher{notify: make(chan struct{}, 1)} }

func (w *watcher) push(ev leadership.Event) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.wake()
}

func (w *watcher) end() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
	w.wake()
}

func (w *watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// run delivers the queue on a new channel until ctx is done (or the watcher
// ended and its queue is empty), then calls done and closes the channel.
func (w *watcher) run(ctx context.Context, done func()) <-chan leadership.Event {
	ch := make(chan leadership.Event)
	go func() {
		defer close(ch)
		defer done()
		for {
			w.mu.Lock()
			q, ended := w.queue, w.ended
			w.queue = nil
			w.mu.Unlock()
			for _, ev := range q {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
			if ended && len(q) == 0 {
				return
			}
			if len(q) > 0 {
				continue
			}
			select {
			case <-w.notify:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func cloneRecord(r leadership.Record) leadership.Record {
	if r.Values != nil {
		v := make(map[string]string, len(r.Values))
		for k, x := range r.Values {
			v[k] = x
		}
		r.Values = v
	}
	return r
}

func cloneEvent(ev leadership.Event) leadership.Event {
	ev.Record = cloneRecord(ev.Record)
	return ev
}
