package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
)

// Every test that involves time runs in a testing/synctest bubble, where the
// time package is virtual: the clock moves only when every goroutine of the
// test is blocked, and then straight to the next timer. So a test states
// exactly when each run happened (at 10 s: not at 9.999 s, not at 10.001 s,
// and nothing in between), advance returns once whatever was due has run,
// and a goroutine that a term leaves behind fails the test (synctest reports
// the bubble as deadlocked).

// start is where the clock of every bubble begins (see testing/synctest).
var start = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// now is how far the bubble's clock is past start.
func now() time.Duration { return time.Since(start) }

// advance moves the bubble's clock to start+d and returns once every
// goroutine of the bubble is blocked again: whatever was due by then ran.
func advance(t *testing.T, d time.Duration) {
	t.Helper()
	if n := now(); n > d {
		t.Fatalf("advance to %v: the clock is already at %v", d, n)
	}
	time.Sleep(d - now())
	synctest.Wait()
}

type fakeProclaimer struct {
	mu    sync.Mutex
	calls []map[string]string
	err   error
}

func (f *fakeProclaimer) Proclaim(_ context.Context, _ leadership.Term, v map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, v)
	return f.err
}

func (f *fakeProclaimer) values() []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// wantLastRuns checks that the last runs proclaimed so far are exactly
// these times after start.
func (f *fakeProclaimer) wantLastRuns(t *testing.T, name string, at ...time.Duration) {
	t.Helper()
	var got, want []string
	for _, v := range f.values() {
		got = append(got, v[LastRunKey(name)])
	}
	for _, d := range at {
		want = append(want, start.Add(d).Format(time.RFC3339Nano))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("kept last runs %q, want %q", got, want)
	}
}

type harness struct {
	t      *testing.T
	rem    atomic.Int64 // what Term.Remaining reports, as a Duration
	random func() float64
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	if !time.Now().Equal(start) {
		t.Fatal("the harness needs a fresh testing/synctest bubble: run the test inside synctest.Test")
	}
	h := &harness{t: t, done: make(chan struct{}), random: func() float64 { return 0 }}
	h.rem.Store(int64(time.Hour))
	return h
}

// lead starts g.Lead for a term with the given values and returns once the
// tasks are idle, waiting for their next timer or event.
func (h *harness) lead(cfg Config, values map[string]string, tasks ...Task) *harness {
	t := h.t
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := NewGroup(cfg, tasks...)
	if err != nil {
		t.Fatal(err)
	}
	g.remaining = func(leadership.Term) time.Duration { return time.Duration(h.rem.Load()) }
	g.random = h.random
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		if err := g.Lead(ctx, leadership.Term{Identity: "me", Token: 42, Values: values}); err != nil {
			t.Errorf("Lead returned %v", err)
		}
	}()
	t.Cleanup(h.stop)
	synctest.Wait()
	return h
}

// stop ends the term and waits for Lead to return.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("Lead did not return after the term ended")
	}
}

// runLog records when each run of a periodic task began, as time since
// start.
type runLog struct {
	mu   sync.Mutex
	runs []time.Duration
	busy atomic.Int32
	max  atomic.Int32
}

func (r *runLog) record() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, now())
}

func (r *runLog) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// want checks that the runs so far began at exactly these times after
// start, and that there were no others.
func (r *runLog) want(t *testing.T, at ...time.Duration) {
	t.Helper()
	r.mu.Lock()
	got := slices.Clone(r.runs)
	r.mu.Unlock()
	if !slices.Equal(got, at) {
		t.Fatalf("ran at %v, want at %v", got, at)
	}
}

func periodic(r *runLog, p Periodic) Periodic {
	if p.Name == "" {
		p.Name = "renew"
	}
	if p.Interval == 0 {
		p.Interval = 10 * time.Second
	}
	if p.Run == nil {
		p.Run = func(context.Context, leadership.Term) error {
			r.record()
			return nil
		}
	}
	return p
}

func TestPeriodicRunsAtAcquisitionThenEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		pr := &fakeProclaimer{}
		h.lead(Config{Proclaimer: pr}, nil, periodic(&r, Periodic{Persist: true}))
		r.want(t, 0)
		pr.wantLastRuns(t, "renew", 0)
		advance(t, 10*time.Second-time.Nanosecond)
		r.want(t, 0) // not before the interval passed
		advance(t, 25*time.Second)
		r.want(t, 0, 10*time.Second, 20*time.Second)
		pr.wantLastRuns(t, "renew", 0, 10*time.Second, 20*time.Second)
	})
}

func TestPeriodicFirstRunFollowsPersistedLastRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		last  time.Duration // the last run kept with the lock, from start
		raw   string        // if set, kept instead of last
		first time.Duration // when the first run is due, from start
	}{
		{"not yet due", -4 * time.Second, "", 6 * time.Second},
		{"just due", -10 * time.Second, "", 0},
		{"overdue", -time.Hour, "", 0},
		{"from a clock ahead of ours", time.Hour, "", 10 * time.Second},
		{"unreadable", 0, "yesterday", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				last := tc.raw
				if last == "" {
					last = start.Add(tc.last).Format(time.RFC3339Nano)
				}
				h := newHarness(t)
				var r runLog
				h.lead(Config{Proclaimer: &fakeProclaimer{}}, map[string]string{LastRunKey("renew"): last},
					periodic(&r, Periodic{Persist: true}))
				if tc.first > 0 {
					advance(t, tc.first-time.Nanosecond)
					r.want(t) // not before it was due
				}
				advance(t, tc.first+10*time.Second)
				r.want(t, tc.first, tc.first+10*time.Second)
			})
		})
	}
}

func TestPeriodicWithoutPersistIgnoresLastRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		h.lead(Config{}, map[string]string{LastRunKey("renew"): start.Format(time.RFC3339Nano)}, periodic(&r, Periodic{}))
		r.want(t, 0)
	})
}

func TestPeriodicFailureRetriesAndIsNotKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		pr := &fakeProclaimer{}
		fail := atomic.Bool{}
		fail.Store(true)
		h.lead(Config{Proclaimer: pr}, nil, periodic(&r, Periodic{Persist: true, Retry: 2 * time.Second, Run: func(context.Context, leadership.Term) error {
			r.record()
			if fail.Load() {
				return errors.New("database unreachable")
			}
			return nil
		}}))
		r.want(t, 0)
		advance(t, 2*time.Second)
		r.want(t, 0, 2*time.Second)
		fail.Store(false)
		advance(t, 4*time.Second)
		r.want(t, 0, 2*time.Second, 4*time.Second)
		pr.wantLastRuns(t, "renew", 4*time.Second) // only the successful run
		advance(t, 20*time.Second)                 // back to the interval after a success
		r.want(t, 0, 2*time.Second, 4*time.Second, 14*time.Second)
	})
}

// A run longer than the interval is followed at once by the next, never
// overlapped by it.
func TestPeriodicNeverOverlapsItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		release := make(chan struct{})
		h.lead(Config{}, nil, periodic(&r, Periodic{Run: func(ctx context.Context, _ leadership.Term) error {
			if n := r.busy.Add(1); n > r.max.Load() {
				r.max.Store(n)
			}
			defer r.busy.Add(-1)
			r.record()
			if r.count() == 1 {
				<-release
			}
			return nil
		}}))
		advance(t, 25*time.Second) // the first run is still busy
		r.want(t, 0)
		close(release)
		synctest.Wait()
		r.want(t, 0, 25*time.Second)
		advance(t, 35*time.Second)
		r.want(t, 0, 25*time.Second, 35*time.Second)
		if m := r.max.Load(); m != 1 {
			t.Fatalf("%d runs at once", m)
		}
	})
}

func TestPeriodicJitterLengthensInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		h.random = func() float64 { return 0.5 }
		h.lead(Config{}, nil, periodic(&r, Periodic{Jitter: 0.2}))
		advance(t, 11*time.Second-time.Nanosecond)
		r.want(t, 0) // jitter lengthened the interval
		advance(t, 11*time.Second)
		r.want(t, 0, 11*time.Second)
	})
}

// The run's deadline is Timeout capped by what is left of the term.
func TestPeriodicDeadlineCappedByTerm(t *testing.T) {
	for _, tc := range []struct {
		name      string
		timeout   time.Duration
		remaining time.Duration
		want      time.Duration
	}{
		{"term shorter", time.Hour, 3 * time.Second, 3 * time.Second},
		{"timeout shorter", 2 * time.Second, time.Hour, 2 * time.Second},
		{"interval by default", 0, time.Hour, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := make(chan time.Duration, 1)
				h := newHarness(t)
				var r runLog
				h.rem.Store(int64(tc.remaining))
				h.lead(Config{}, nil, periodic(&r, Periodic{Timeout: tc.timeout, Run: func(ctx context.Context, _ leadership.Term) error {
					d, ok := ctx.Deadline()
					if !ok {
						got <- -1
						return nil
					}
					got <- time.Until(d)
					return nil
				}}))
				if d := <-got; d != tc.want {
					t.Fatalf("deadline in %v, want %v", d, tc.want)
				}
			})
		})
	}
}

// Validity can run out for a moment while a renewal sent in time lands; the
// elector then extends the term, and the task must go on.
func TestPeriodicRunsWhenValidityComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		h.rem.Store(0)
		h.lead(Config{}, nil, periodic(&r, Periodic{}))
		advance(t, 2*termOverPause)
		r.want(t) // not with no validity left
		h.rem.Store(int64(time.Hour))
		advance(t, 3*termOverPause) // the run was put off again until now
		r.want(t, 3*termOverPause)
	})
}

func TestEventsHandleWhenValidityComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		h := newHarness(t)
		h.rem.Store(0)
		h.lead(Config{}, nil, events(l, w, func() []string { return []string{"k"} }, func(string) error { return nil }, Events[string]{}))
		advance(t, termOverPause)
		l.want(t, "watch@0s") // no sweep with no validity left
		h.rem.Store(int64(time.Hour))
		advance(t, time.Minute) // the sweep was put off again until 200ms
		l.want(t, "watch@0s", "sweep@200ms", "handle k@200ms")
	})
}

func TestPeriodicNotStartedWithoutValidity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		h.rem.Store(0)
		h.lead(Config{}, nil, periodic(&r, Periodic{}))
		h.stop()
		r.want(t) // not with no validity left
	})
}

// The term ends: the running call sees its context cancelled, and Lead
// returns only after it returned.
func TestLeadReturnsAfterTasksStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const windDown = 20 * time.Millisecond
		h := newHarness(t)
		var r runLog
		var returned atomic.Bool
		h.lead(Config{}, nil, periodic(&r, Periodic{Run: func(ctx context.Context, _ leadership.Term) error {
			r.record()
			<-ctx.Done()
			time.Sleep(windDown) // slow to wind down: Lead must wait
			returned.Store(true)
			return ctx.Err()
		}}))
		r.want(t, 0)
		ended := time.Now()
		h.stop()
		if !returned.Load() {
			t.Fatal("Lead returned before the task did")
		}
		if d := time.Since(ended); d != windDown {
			t.Fatalf("Lead returned %v after the term ended, want %v (when the task returned)", d, windDown)
		}
	})
}

func TestPeriodicStopsWhenProclaimSaysNotLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		pr := &fakeProclaimer{err: fmt.Errorf("%w: the term ended", leadership.ErrNotLeader)}
		h.lead(Config{Proclaimer: pr}, nil, periodic(&r, Periodic{Persist: true}))
		pr.wantLastRuns(t, "renew", 0)
		advance(t, time.Hour)
		r.want(t, 0) // no run after the term was lost
		h.stop()
	})
}

func TestPeriodicGoesOnWhenProclaimFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		var r runLog
		pr := &fakeProclaimer{err: errors.New("API server unreachable")}
		h.lead(Config{Proclaimer: pr}, nil, periodic(&r, Periodic{Persist: true}))
		advance(t, 10*time.Second)
		r.want(t, 0, 10*time.Second)
		pr.wantLastRuns(t, "renew", 0, 10*time.Second)
	})
}

// keyLog records what an event-driven task did, in order, each entry as
// "op@time since start".
type keyLog struct {
	mu   sync.Mutex
	ops  []string
	busy atomic.Int32
	max  atomic.Int32
}

func newKeyLog() *keyLog { return &keyLog{} }

func (k *keyLog) add(op string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, fmt.Sprintf("%s@%v", op, now()))
}

func (k *keyLog) all() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

// want checks that the task did exactly this so far, in this order, at
// these times.
func (k *keyLog) want(t *testing.T, ops ...string) {
	t.Helper()
	if got := k.all(); !slices.Equal(got, ops) {
		t.Fatalf("did\n\t%v\nwant\n\t%v", got, ops)
	}
}

// testWatch is the watch of the task that events builds, fed by the test
// with send; the test ends a watch with breakWatch.
type testWatch struct {
	mu    sync.Mutex
	ch    chan string
	fails int // how many Watch calls fail before one succeeds
}

func (w *testWatch) send(k string) {
	w.mu.Lock()
	ch := w.ch
	w.mu.Unlock()
	ch <- k
}

func (w *testWatch) breakWatch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = nil
}

func events(l *keyLog, w *testWatch, sweep func() []string, handle func(string) error, ev Events[string]) Events[string] {
	ev.Name = "revoke"
	ev.Watch = func(ctx context.Context) (<-chan string, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.fails > 0 {
			w.fails--
			l.add("watch-failed")
			return nil, errors.New("forbidden")
		}
		w.ch = make(chan string)
		l.add("watch")
		return w.ch, nil
	}
	ev.Sweep = func(ctx context.Context, _ leadership.Term) ([]string, error) {
		l.add("sweep")
		return sweep(), nil
	}
	ev.Handle = func(ctx context.Context, t leadership.Term, k string) error {
		if n := l.busy.Add(1); n > l.max.Load() {
			l.max.Store(n)
		}
		defer l.busy.Add(-1)
		if t.Token != 42 {
			return fmt.Errorf("token %d", t.Token)
		}
		l.add("handle " + k)
		return handle(k)
	}
	return ev
}

func TestEventsSweepAfterWatchThenHandleEachKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		h := newHarness(t).lead(Config{}, nil, events(l, w, func() []string { return []string{"a", "b", "a"} }, func(string) error { return nil }, Events[string]{}))
		// The watch is established before the sweep; a key listed twice by
		// one sweep is handled once.
		l.want(t, "watch@0s", "sweep@0s", "handle a@0s", "handle b@0s")
		w.send("c")
		synctest.Wait()
		l.want(t, "watch@0s", "sweep@0s", "handle a@0s", "handle b@0s", "handle c@0s")
		if m := l.max.Load(); m != 1 {
			t.Fatalf("%d keys handled at once", m)
		}
		h.stop()
	})
}

func TestEventsRetryFailedKeyWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		var fails atomic.Int32
		fails.Store(2)
		newHarness(t).lead(Config{}, nil, events(l, w, func() []string { return []string{"x"} }, func(string) error {
			if fails.Add(-1) >= 0 {
				return errors.New("database unreachable")
			}
			return nil
		}, Events[string]{Retry: time.Second}))
		advance(t, time.Second-time.Nanosecond)
		l.want(t, "watch@0s", "sweep@0s", "handle x@0s") // not retried early
		// Retried after Retry, then after twice Retry; never again once it
		// succeeded.
		advance(t, time.Hour)
		l.want(t, "watch@0s", "sweep@0s", "handle x@0s", "handle x@1s", "handle x@3s")
	})
}

func TestEventsWatchFailureStillSweepsThenSweepsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{fails: 1}
		newHarness(t).lead(Config{}, nil, events(l, w, func() []string { return []string{"a"} }, func(string) error { return nil }, Events[string]{Retry: time.Second}))
		advance(t, time.Minute)
		l.want(t, "watch-failed@0s", "sweep@0s", "handle a@0s", "watch@1s", "sweep@1s", "handle a@1s")
	})
}

func TestEventsBrokenWatchIsRenewedAndFollowedBySweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		newHarness(t).lead(Config{}, nil, events(l, w, func() []string { return nil }, func(string) error { return nil }, Events[string]{Retry: time.Second}))
		w.breakWatch()
		advance(t, time.Minute)
		l.want(t, "watch@0s", "sweep@0s", "watch@1s", "sweep@1s")
		w.send("after")
		synctest.Wait()
		l.want(t, "watch@0s", "sweep@0s", "watch@1s", "sweep@1s", "handle after@1m0s")
	})
}

func TestEventsSweepInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		newHarness(t).lead(Config{}, nil, events(l, w, func() []string { return []string{"k"} }, func(string) error { return nil }, Events[string]{SweepInterval: time.Minute}))
		advance(t, time.Minute-time.Nanosecond)
		l.want(t, "watch@0s", "sweep@0s", "handle k@0s") // not swept early
		advance(t, 2*time.Minute)
		l.want(t, "watch@0s", "sweep@0s", "handle k@0s", "sweep@1m0s", "handle k@1m0s", "sweep@2m0s", "handle k@2m0s")
	})
}

func TestEventsSweepFailureRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		var n atomic.Int32
		ev := Events[string]{
			Name: "sweeper",
			Sweep: func(context.Context, leadership.Term) ([]string, error) {
				if n.Add(1) == 1 {
					l.add("sweep-failed")
					return nil, errors.New("list failed")
				}
				l.add("sweep")
				return []string{"k"}, nil
			},
			Handle: func(_ context.Context, _ leadership.Term, k string) error { l.add("handle " + k); return nil },
			Retry:  time.Second,
		}
		newHarness(t).lead(Config{}, nil, ev)
		advance(t, time.Minute)
		l.want(t, "sweep-failed@0s", "sweep@1s", "handle k@1s")
	})
}

// Keys keep arriving while the term ends: nothing is handled after Lead
// returned, and the watch's context is done.
func TestEventsStopWithTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		var watchCtx context.Context
		ev := events(l, w, func() []string { return nil }, func(string) error { return nil }, Events[string]{})
		inner := ev.Watch
		ev.Watch = func(ctx context.Context) (<-chan string, error) {
			watchCtx = ctx
			return inner(ctx)
		}
		h := newHarness(t).lead(Config{}, nil, ev)
		l.want(t, "watch@0s", "sweep@0s")
		h.stop()
		if watchCtx.Err() == nil {
			t.Fatal("the watch's context outlived the term")
		}
		select {
		case w.ch <- "late":
			t.Fatal("the watch channel is still read after the term")
		default:
		}
		synctest.Wait()
		l.want(t, "watch@0s", "sweep@0s") // no work after the term ended
	})
}

func TestNewGroupRejectsBadTasks(t *testing.T) {
	run := func(context.Context, leadership.Term) error { return nil }
	sweep := func(context.Context, leadership.Term) ([]int, error) { return nil, nil }
	handle := func(context.Context, leadership.Term, int) error { return nil }
	for _, tc := range []struct {
		cfg   Config
		tasks []Task
		want  string
	}{
		{Config{}, nil, "at least one task"},
		{Config{}, []Task{nil}, "task 0 is nil"},
		{Config{}, []Task{Periodic{Interval: time.Second, Run: run}}, "needs a Name"},
		{Config{}, []Task{Periodic{Name: "Renew", Interval: time.Second, Run: run}}, "lower-case"},
		{Config{}, []Task{Periodic{Name: strings.Repeat("a", 55), Interval: time.Second, Run: run}}, "at most 54"},
		{Config{}, []Task{Periodic{Name: "r", Run: run}}, "Interval 0s: must be positive"},
		{Config{}, []Task{Periodic{Name: "r", Interval: time.Second}}, "Run <nil>: is required"},
		{Config{}, []Task{Periodic{Name: "r", Interval: time.Second, Run: run, Jitter: 2}}, "Jitter 2"},
		{Config{}, []Task{Periodic{Name: "r", Interval: time.Second, Run: run, Timeout: -1}}, "Timeout"},
		{Config{}, []Task{Periodic{Name: "r", Interval: time.Second, Run: run, Retry: -1}}, "Retry"},
		{Config{}, []Task{Periodic{Name: "r", Interval: time.Second, Run: run, Persist: true}}, "needs Config.Proclaimer"},
		{Config{}, []Task{Periodic{Name: "r", Interval: time.Second, Run: run}, Events[int]{Name: "r", Sweep: sweep, Handle: handle}}, "two tasks are named \"r\""},
		{Config{}, []Task{Events[int]{Name: "e", Handle: handle}}, "Sweep <nil>: is required"},
		{Config{}, []Task{Events[int]{Name: "e", Sweep: sweep}}, "Handle <nil>: is required"},
		{Config{}, []Task{Events[int]{Name: "e", Sweep: sweep, Handle: handle, SweepInterval: -1}}, "SweepInterval"},
	} {
		_, err := NewGroup(tc.cfg, tc.tasks...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewGroup(%+v) = %v, want an error containing %q", tc.tasks, err, tc.want)
		}
	}
}

// However many sweeps a term makes (a broken watch adds one), one sweep
// schedule remains: the next sweep is an interval after the last.
func TestEventsOneSweepSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newKeyLog()
		w := &testWatch{}
		newHarness(t).lead(Config{}, nil, events(l, w, func() []string { return nil }, func(string) error { return nil },
			Events[string]{SweepInterval: time.Minute, Retry: time.Second}))
		w.breakWatch()
		advance(t, 3*time.Minute+30*time.Second)
		l.want(t, "watch@0s", "sweep@0s", "watch@1s", "sweep@1s", "sweep@1m1s", "sweep@2m1s", "sweep@3m1s")
	})
}
