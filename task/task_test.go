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
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/leadership-dev/leadership"
)

// The scheduling logic runs on a fake clock; eventually polls on the real
// clock for what the task goroutines do in response.

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
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

type harness struct {
	t      *testing.T
	fc     *testingclock.FakeClock
	g      *Group
	rem    atomic.Int64 // what Term.Remaining reports, as a Duration
	random func() float64
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, fc: testingclock.NewFakeClock(t0), done: make(chan struct{}), random: func() float64 { return 0 }}
	h.rem.Store(int64(time.Hour))
	return h
}

// lead starts g.Lead for a term with the given values on the fake clock.
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
	h.g = g
	g.clock = h.fc
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

// step waits until n timers are pending (the tasks are idle, waiting on the
// clock), then moves the clock.
func (h *harness) step(n int, d time.Duration) {
	h.t.Helper()
	eventually(h.t, fmt.Sprintf("%d timers pending", n), func() bool { return h.fc.Waiters() == n })
	h.fc.Step(d)
}

// runLog records the fake time of each run of a periodic task.
type runLog struct {
	mu   sync.Mutex
	at   []time.Time
	busy atomic.Int32
	max  atomic.Int32
}

func (r *runLog) record(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, now)
}

func (r *runLog) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.at)
}

func (r *runLog) count() int { return len(r.times()) }

// waitRuns waits for n runs and checks that run i happened at t0+at[i].
func (r *runLog) waitRuns(t *testing.T, at ...time.Duration) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d runs", len(at)), func() bool { return r.count() >= len(at) })
	got := r.times()
	if len(got) != len(at) {
		t.Fatalf("got %d runs, want %d", len(got), len(at))
	}
	for i, d := range at {
		if !got[i].Equal(t0.Add(d)) {
			t.Fatalf("run %d at t0+%v, want t0+%v", i, got[i].Sub(t0), d)
		}
	}
}

func periodic(h *harness, r *runLog, p Periodic) Periodic {
	if p.Name == "" {
		p.Name = "renew"
	}
	if p.Interval == 0 {
		p.Interval = 10 * time.Second
	}
	if p.Run == nil {
		p.Run = func(context.Context, leadership.Term) error {
			r.record(h.fc.Now())
			return nil
		}
	}
	return p
}

func TestPeriodicRunsAtAcquisitionThenEveryInterval(t *testing.T) {
	h := newHarness(t)
	var r runLog
	pr := &fakeProclaimer{}
	h.lead(Config{Proclaimer: pr}, nil, periodic(h, &r, Periodic{Persist: true}))
	r.waitRuns(t, 0)
	eventually(t, "the first run kept with the lock", func() bool { return len(pr.values()) == 1 })
	if got, want := pr.values()[0][LastRunKey("renew")], t0.Format(time.RFC3339Nano); got != want {
		t.Fatalf("kept last run %q, want %q", got, want)
	}
	h.step(1, 9*time.Second)
	if r.count() != 1 {
		t.Fatal("ran before the interval passed")
	}
	h.step(1, time.Second)
	r.waitRuns(t, 0, 10*time.Second)
	h.step(1, 10*time.Second)
	r.waitRuns(t, 0, 10*time.Second, 20*time.Second)
	eventually(t, "three runs kept", func() bool { return len(pr.values()) == 3 })
	if got, want := pr.values()[2][LastRunKey("renew")], t0.Add(20*time.Second).Format(time.RFC3339Nano); got != want {
		t.Fatalf("kept last run %q, want %q", got, want)
	}
}

func TestPeriodicFirstRunFollowsPersistedLastRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		last  string
		first time.Duration // when the first run is due, from t0
	}{
		{"not yet due", t0.Add(-4 * time.Second).Format(time.RFC3339Nano), 6 * time.Second},
		{"just due", t0.Add(-10 * time.Second).Format(time.RFC3339Nano), 0},
		{"overdue", t0.Add(-time.Hour).Format(time.RFC3339Nano), 0},
		{"from a clock ahead of ours", t0.Add(time.Hour).Format(time.RFC3339Nano), 10 * time.Second},
		{"unreadable", "yesterday", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var r runLog
			h.lead(Config{Proclaimer: &fakeProclaimer{}}, map[string]string{LastRunKey("renew"): tc.last},
				periodic(h, &r, Periodic{Persist: true}))
			if tc.first > 0 {
				h.step(1, tc.first-time.Millisecond)
				if r.count() != 0 {
					t.Fatal("ran before it was due")
				}
				h.step(1, time.Millisecond)
			}
			r.waitRuns(t, tc.first)
		})
	}
}

func TestPeriodicWithoutPersistIgnoresLastRun(t *testing.T) {
	h := newHarness(t)
	var r runLog
	h.lead(Config{}, map[string]string{LastRunKey("renew"): t0.Format(time.RFC3339Nano)}, periodic(h, &r, Periodic{}))
	r.waitRuns(t, 0)
}

func TestPeriodicFailureRetriesAndIsNotKept(t *testing.T) {
	h := newHarness(t)
	var r runLog
	pr := &fakeProclaimer{}
	fail := atomic.Bool{}
	fail.Store(true)
	h.lead(Config{Proclaimer: pr}, nil, periodic(h, &r, Periodic{Persist: true, Retry: 2 * time.Second, Run: func(context.Context, leadership.Term) error {
		r.record(h.fc.Now())
		if fail.Load() {
			return errors.New("database unreachable")
		}
		return nil
	}}))
	r.waitRuns(t, 0)
	h.step(1, 2*time.Second)
	r.waitRuns(t, 0, 2*time.Second)
	fail.Store(false)
	h.step(1, 2*time.Second)
	r.waitRuns(t, 0, 2*time.Second, 4*time.Second)
	eventually(t, "the successful run kept", func() bool { return len(pr.values()) == 1 })
	if got, want := pr.values()[0][LastRunKey("renew")], t0.Add(4*time.Second).Format(time.RFC3339Nano); got != want {
		t.Fatalf("kept %q, want %q (only the successful run)", got, want)
	}
	h.step(1, 10*time.Second) // back to the interval after a success
	r.waitRuns(t, 0, 2*time.Second, 4*time.Second, 14*time.Second)
}

// A run longer than the interval is followed at once by the next, never
// overlapped by it.
func TestPeriodicNeverOverlapsItself(t *testing.T) {
	h := newHarness(t)
	var r runLog
	release := make(chan struct{})
	h.lead(Config{}, nil, periodic(h, &r, Periodic{Run: func(ctx context.Context, _ leadership.Term) error {
		if n := r.busy.Add(1); n > r.max.Load() {
			r.max.Store(n)
		}
		defer r.busy.Add(-1)
		r.record(h.fc.Now())
		if r.count() == 1 {
			<-release
		}
		return nil
	}}))
	r.waitRuns(t, 0)
	h.fc.Step(25 * time.Second) // the first run is still busy
	close(release)
	r.waitRuns(t, 0, 25*time.Second)
	h.step(1, 10*time.Second)
	r.waitRuns(t, 0, 25*time.Second, 35*time.Second)
	if m := r.max.Load(); m != 1 {
		t.Fatalf("%d runs at once", m)
	}
}

func TestPeriodicJitterLengthensInterval(t *testing.T) {
	h := newHarness(t)
	var r runLog
	h.random = func() float64 { return 0.5 }
	h.lead(Config{}, nil, periodic(h, &r, Periodic{Jitter: 0.2}))
	r.waitRuns(t, 0)
	h.step(1, 11*time.Second-time.Millisecond)
	if r.count() != 1 {
		t.Fatal("jitter did not lengthen the interval")
	}
	h.step(1, time.Millisecond)
	r.waitRuns(t, 0, 11*time.Second)
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
			got := make(chan time.Duration, 1)
			h := newHarness(t)
			var r runLog
			h.rem.Store(int64(tc.remaining))
			h.lead(Config{}, nil, periodic(h, &r, Periodic{Timeout: tc.timeout, Run: func(ctx context.Context, _ leadership.Term) error {
				d, ok := ctx.Deadline()
				if !ok {
					got <- -1
					return nil
				}
				got <- time.Until(d)
				return nil
			}}))
			d := <-got
			if d > tc.want || d < tc.want-time.Second {
				t.Fatalf("deadline in %v, want about %v", d, tc.want)
			}
		})
	}
}

// Validity can run out for a moment while a renewal sent in time lands; the
// elector then extends the term, and the task must go on.
func TestPeriodicRunsWhenValidityComesBack(t *testing.T) {
	h := newHarness(t)
	var r runLog
	h.rem.Store(0)
	h.lead(Config{}, nil, periodic(h, &r, Periodic{}))
	h.step(1, termOverPause)
	h.step(1, termOverPause)
	eventually(t, "the run put off again", func() bool { return h.fc.Waiters() == 1 })
	if r.count() != 0 {
		t.Fatal("ran with no validity left")
	}
	h.rem.Store(int64(time.Hour))
	h.step(1, termOverPause)
	r.waitRuns(t, 3*termOverPause)
}

func TestEventsHandleWhenValidityComesBack(t *testing.T) {
	var l keyLog
	w := &testWatch{}
	h := newHarness(t)
	h.rem.Store(0)
	h.lead(Config{}, nil, events(&l, w, func() []string { return []string{"k"} }, func(string) error { return nil }, Events[string]{}))
	l.wait(t, "watch", 1)
	h.step(1, termOverPause) // the sweep is put off
	eventually(t, "the sweep put off again", func() bool { return h.fc.Waiters() == 1 })
	if l.has("sweep", 1) {
		t.Fatal("swept with no validity left")
	}
	h.rem.Store(int64(time.Hour))
	h.step(1, termOverPause)
	l.wait(t, "handle k", 1)
}

func TestPeriodicNotStartedWithoutValidity(t *testing.T) {
	h := newHarness(t)
	var r runLog
	h.rem.Store(0)
	h.lead(Config{}, nil, periodic(h, &r, Periodic{}))
	h.stop()
	if r.count() != 0 {
		t.Fatal("ran with no validity left")
	}
}

// The term ends: the running call sees its context cancelled, and Lead
// returns only after it returned.
func TestLeadReturnsAfterTasksStop(t *testing.T) {
	h := newHarness(t)
	var r runLog
	started := make(chan struct{})
	var returned atomic.Bool
	h.lead(Config{}, nil, periodic(h, &r, Periodic{Run: func(ctx context.Context, _ leadership.Term) error {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // slow to wind down: Lead must wait
		returned.Store(true)
		return ctx.Err()
	}}))
	<-started
	h.stop()
	if !returned.Load() {
		t.Fatal("Lead returned before the task did")
	}
}

func TestPeriodicStopsWhenProclaimSaysNotLeader(t *testing.T) {
	h := newHarness(t)
	var r runLog
	pr := &fakeProclaimer{err: fmt.Errorf("%w: the term ended", leadership.ErrNotLeader)}
	h.lead(Config{Proclaimer: pr}, nil, periodic(h, &r, Periodic{Persist: true}))
	r.waitRuns(t, 0)
	eventually(t, "the proclaim", func() bool { return len(pr.values()) == 1 })
	eventually(t, "no timer pending", func() bool { return h.fc.Waiters() == 0 })
	h.fc.Step(time.Hour)
	h.stop()
	if r.count() != 1 {
		t.Fatalf("ran %d times after the term was lost", r.count())
	}
}

func TestPeriodicGoesOnWhenProclaimFails(t *testing.T) {
	h := newHarness(t)
	var r runLog
	pr := &fakeProclaimer{err: errors.New("API server unreachable")}
	h.lead(Config{Proclaimer: pr}, nil, periodic(h, &r, Periodic{Persist: true}))
	r.waitRuns(t, 0)
	h.step(1, 10*time.Second)
	r.waitRuns(t, 0, 10*time.Second)
}

// keyLog records what an event-driven task did, in order.
type keyLog struct {
	mu   sync.Mutex
	ops  []string
	busy atomic.Int32
	max  atomic.Int32
}

func (k *keyLog) add(op string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, op)
}

func (k *keyLog) all() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

func (k *keyLog) has(op string, n int) bool {
	c := 0
	for _, o := range k.all() {
		if o == op {
			c++
		}
	}
	return c >= n
}

func (k *keyLog) wait(t *testing.T, op string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d× %s (so far %v)", n, op, k.all()), func() bool { return k.has(op, n) })
}

// events builds an event-driven task whose watch is fed by the test through
// the returned function; a watch ends when the test closes the channel.
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
	var l keyLog
	w := &testWatch{}
	h := newHarness(t).lead(Config{}, nil, events(&l, w, func() []string { return []string{"a", "b", "a"} }, func(string) error { return nil }, Events[string]{}))
	l.wait(t, "handle b", 1)
	if got := l.all()[:2]; !slices.Equal(got, []string{"watch", "sweep"}) {
		t.Fatalf("began with %v, want the watch established before the sweep", got)
	}
	if l.has("handle a", 2) {
		t.Fatal("a key listed twice by one sweep was handled twice")
	}
	w.send("c")
	l.wait(t, "handle c", 1)
	if m := l.max.Load(); m != 1 {
		t.Fatalf("%d keys handled at once", m)
	}
	h.stop()
}

func TestEventsRetryFailedKeyWithBackoff(t *testing.T) {
	var l keyLog
	w := &testWatch{}
	var fails atomic.Int32
	fails.Store(2)
	h := newHarness(t).lead(Config{}, nil, events(&l, w, func() []string { return []string{"x"} }, func(string) error {
		if fails.Add(-1) >= 0 {
			return errors.New("database unreachable")
		}
		return nil
	}, Events[string]{Retry: time.Second}))
	l.wait(t, "handle x", 1)
	h.step(1, time.Second-time.Millisecond)
	if l.has("handle x", 2) {
		t.Fatal("retried too early")
	}
	h.step(1, time.Millisecond)
	l.wait(t, "handle x", 2)
	h.step(1, 2*time.Second-time.Millisecond) // the second failure doubles the wait
	if l.has("handle x", 3) {
		t.Fatal("backoff did not double")
	}
	h.step(1, time.Millisecond)
	l.wait(t, "handle x", 3)
	eventually(t, "no retry pending after the success", func() bool { return h.fc.Waiters() == 0 })
}

func TestEventsWatchFailureStillSweepsThenSweepsAgain(t *testing.T) {
	var l keyLog
	w := &testWatch{fails: 1}
	h := newHarness(t).lead(Config{}, nil, events(&l, w, func() []string { return []string{"a"} }, func(string) error { return nil }, Events[string]{Retry: time.Second}))
	l.wait(t, "sweep", 1)
	h.step(1, time.Second)
	l.wait(t, "watch", 1)
	l.wait(t, "sweep", 2)
	l.wait(t, "handle a", 2)
	if got := l.all(); got[0] != "watch-failed" {
		t.Fatalf("ops %v", got)
	}
}

func TestEventsBrokenWatchIsRenewedAndFollowedBySweep(t *testing.T) {
	var l keyLog
	w := &testWatch{}
	h := newHarness(t).lead(Config{}, nil, events(&l, w, func() []string { return nil }, func(string) error { return nil }, Events[string]{Retry: time.Second}))
	l.wait(t, "sweep", 1)
	w.breakWatch()
	h.step(1, time.Second)
	l.wait(t, "watch", 2)
	l.wait(t, "sweep", 2)
	w.send("after")
	l.wait(t, "handle after", 1)
}

func TestEventsSweepInterval(t *testing.T) {
	var l keyLog
	w := &testWatch{}
	h := newHarness(t).lead(Config{}, nil, events(&l, w, func() []string { return []string{"k"} }, func(string) error { return nil }, Events[string]{SweepInterval: time.Minute}))
	l.wait(t, "handle k", 1)
	h.step(1, time.Minute-time.Millisecond)
	if l.has("sweep", 2) {
		t.Fatal("swept early")
	}
	h.step(1, time.Millisecond)
	l.wait(t, "handle k", 2)
}

func TestEventsSweepFailureRetried(t *testing.T) {
	var l keyLog
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
	h := newHarness(t).lead(Config{}, nil, ev)
	l.wait(t, "sweep-failed", 1)
	h.step(1, time.Second)
	l.wait(t, "handle k", 1)
}

// Keys keep arriving while the term ends: nothing is handled after Lead
// returned, and the watch's context is done.
func TestEventsStopWithTerm(t *testing.T) {
	var l keyLog
	w := &testWatch{}
	var watchCtx context.Context
	ev := events(&l, w, func() []string { return nil }, func(string) error { return nil }, Events[string]{})
	inner := ev.Watch
	ev.Watch = func(ctx context.Context) (<-chan string, error) {
		watchCtx = ctx
		return inner(ctx)
	}
	h := newHarness(t).lead(Config{}, nil, ev)
	l.wait(t, "sweep", 1)
	h.stop()
	if watchCtx.Err() == nil {
		t.Fatal("the watch's context outlived the term")
	}
	before := len(l.all())
	select {
	case w.ch <- "late":
		t.Fatal("the watch channel is still read after the term")
	default:
	}
	if len(l.all()) != before {
		t.Fatal("work after the term ended")
	}
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
// schedule remains.
func TestEventsOneSweepSchedule(t *testing.T) {
	var l keyLog
	w := &testWatch{}
	h := newHarness(t).lead(Config{}, nil, events(&l, w, func() []string { return nil }, func(string) error { return nil },
		Events[string]{SweepInterval: time.Minute, Retry: time.Second}))
	l.wait(t, "sweep", 1)
	w.breakWatch()
	h.step(2, time.Second) // the sweep schedule and the watch's retry
	l.wait(t, "sweep", 2)
	h.step(1, time.Minute)
	l.wait(t, "sweep", 3)
	eventually(t, "the next sweep scheduled", func() bool { return h.fc.Waiters() == 1 })
	if l.has("sweep", 4) {
		t.Fatal("two sweep schedules")
	}
}
