package leadership_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
)

// The elector's tests run in testing/synctest bubbles: the elector's clock
// (the time package's) is virtual, time passes only when every goroutine
// of the bubble is blocked, and a test asserts on exact instants. sleep
// moves time on; synctest.Wait lets whatever the present instant triggers
// happen. A goroutine left behind fails the test.

// bubble runs f in a synctest bubble, with a harness whose clocks start
// there.
func bubble(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) { f(t, newHarness(t)) })
}

type harness struct {
	t     *testing.T
	start time.Time
	// boot is the electors' boot clock, which Suspend moves alone.
	boot *leadership.TestBoot
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, start: time.Now(), boot: leadership.NewTestBoot()}
}

// since is the virtual time passed since the harness began.
func (h *harness) since() time.Duration { return time.Since(h.start) }

// at is the instant d after the harness began.
func (h *harness) at(d time.Duration) time.Time { return h.start.Add(d) }

// sleep moves virtual time on by d and returns once everything due by then
// has happened.
func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (h *harness) elector(id string, l leadership.Lock, mod func(*leadership.Config)) *leadership.Elector {
	h.t.Helper()
	cfg := leadership.Config{Identity: id, LeaseDuration: 15 * time.Second, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	e, err := leadership.NewTestElector(l, cfg, h.boot)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

// newLock returns a lock as its last holder left it: released, after its
// work returned. An elector may take it at once.
func newLock() *leadershiptest.Lock {
	l := leadershiptest.NewLock()
	l.Put(leadership.Record{LeaseDuration: time.Second, Released: 1, Instance: "earlier"})
	return l
}

// record is the stored record; the zero Record if the lock does not exist.
func record(l *leadershiptest.Lock) leadership.Record {
	r, _ := l.Record()
	return r
}

// write is a change of the lock and the instant the lock saw it.
type write struct {
	at time.Time
	ev leadership.Event
}

// writes records every change of a lock from now on, with the instant it
// was made, until the test ends.
type writes struct {
	mu  sync.Mutex
	log []write
}

func watchWrites(t *testing.T, l *leadershiptest.Lock) *writes {
	t.Helper()
	r, _ := l.Record()
	ch, err := l.Watch(t.Context(), r.Version)
	if err != nil {
		t.Fatal(err)
	}
	w := &writes{}
	go func() {
		for ev := range ch {
			w.mu.Lock()
			w.log = append(w.log, write{at: time.Now(), ev: ev})
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writes) all() []write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]write(nil), w.log...)
}

// lead records the terms an elector runs, how and when each began and
// ended.
type lead struct {
	mu      sync.Mutex
	terms   []leadership.Term
	began   []time.Time
	causes  []error
	endedAt []time.Time
	hold    chan struct{} // keeps lead from returning after its context ends until closed
	active  atomic.Bool
	stop    chan struct{} // closing it makes the current lead return nil
}

func newLead() *lead { return &lead{hold: closedChan(), stop: make(chan struct{})} }

func closedChan() chan struct{} { c := make(chan struct{}); close(c); return c }

// holdLead keeps l's lead from returning after its context ends until
// release is called; the test's cleanup calls it too, so that a failed
// test ends its bubble instead of leaving lead blocked.
func holdLead(t *testing.T, l *lead) (release func()) {
	l.mu.Lock()
	l.hold = make(chan struct{})
	hold := l.hold
	l.mu.Unlock()
	release = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	return release
}

func (l *lead) fn(ctx context.Context, t leadership.Term) error {
	l.active.Store(true)
	l.mu.Lock()
	l.terms = append(l.terms, t)
	l.began = append(l.began, time.Now())
	stop := l.stop
	l.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-stop:
	}
	l.mu.Lock()
	l.causes = append(l.causes, context.Cause(ctx))
	l.endedAt = append(l.endedAt, time.Now())
	hold := l.hold
	l.mu.Unlock()
	<-hold
	l.active.Store(false)
	return nil
}

func (l *lead) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.terms) }
func (l *lead) ended() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.causes) }
func (l *lead) term(i int) leadership.Term {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.terms[i]
}
func (l *lead) beganAt(i int) time.Time { l.mu.Lock(); defer l.mu.Unlock(); return l.began[i] }
func (l *lead) endAt(i int) time.Time   { l.mu.Lock(); defer l.mu.Unlock(); return l.endedAt[i] }
func (l *lead) cause(i int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.causes[i]
}

// run starts e.Run and returns a function that stops it and waits; the
// test's cleanup calls it too.
func run(t *testing.T, e *leadership.Elector, l *lead) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, l.fn) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(time.Hour):
				t.Error("Run did not return within an hour of virtual time")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// elected runs e and returns once it leads, which on a released lock is at
// once.
func elected(t *testing.T, e *leadership.Elector) (*lead, func()) {
	t.Helper()
	l := newLead()
	stop := run(t, e, l)
	synctest.Wait()
	if l.count() != 1 {
		t.Fatalf("%d terms began; want the elector to lead at once", l.count())
	}
	return l, stop
}

// endedBy checks that l's one term has ended, by cause.
func endedBy(t *testing.T, l *lead, cause error) {
	t.Helper()
	if n := l.ended(); n != 1 || !errors.Is(l.cause(0), cause) {
		t.Fatalf("%d terms ended (the first by %v); want one, ended by %v", n, l.cause(0), cause)
	}
}

// happensAfter moves virtual time on by d and checks that cond becomes true
// exactly then: not a millisecond before, and at d.
func happensAfter(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	sleep(d - time.Millisecond)
	if cond() {
		t.Fatalf("%s came before %v had passed", what, d)
	}
	sleep(time.Millisecond)
	if !cond() {
		t.Fatalf("no %s once %v had passed", what, d)
	}
}

// following starts e, which must then follow leader: it observes leader's
// term and leads none of its own.
func following(t *testing.T, e *leadership.Elector, leader string) *lead {
	t.Helper()
	l := newLead()
	run(t, e, l)
	synctest.Wait()
	if got := e.Leader(); got.Identity != leader || l.count() != 0 {
		t.Fatalf("the new elector sees %+v and led %d terms; want it to follow %s", got, l.count(), leader)
	}
	return l
}

// validity is a term's validity with the default configuration and a
// 15s lease: LeaseDuration×(1−MaxClockDrift) − StopMargin.
const validity = 14750 * time.Millisecond

func TestElectsCreatesAndRenews(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		w := watchWrites(t, ml)
		e := h.elector("a", ml, nil)
		l, _ := elected(t, e)
		tm := l.term(0)
		rec := record(ml)
		if rec.HolderIdentity != "a" || rec.LeaseDuration != 15*time.Second || tm.Token != rec.Version {
			t.Fatalf("record %+v, term %+v", rec, tm)
		}
		if want := time.Duration(float64(15*time.Second)*0.99) - leadership.DefaultStopMargin; want != validity || tm.Remaining() != want {
			t.Fatalf("validity %v, want LeaseDuration×(1−drift) − StopMargin = %v", tm.Remaining(), want)
		}
		if got := e.Leader(); !got.Self || got.Identity != "a" || got.Token != tm.Token {
			t.Fatalf("Leader() = %+v", got)
		}
		// Renewals at exactly 5s, 10s and 15s (RenewInterval), each
		// extending validity from its send time and publishing the token.
		for i := 1; i <= 3; i++ {
			sleep(5 * time.Second)
			want := h.at(time.Duration(i) * 5 * time.Second)
			ws := w.all()
			if len(ws) != 1+i {
				t.Fatalf("after %v the lock saw %d writes, want the acquisition and %d renewals", h.since(), len(ws), i)
			}
			if last := ws[i]; !last.at.Equal(want) || !last.ev.Record.RenewTime.Equal(want) {
				t.Fatalf("renewal %d seen at %v with RenewTime %v, want both at %v", i, last.at.Sub(h.start), last.ev.Record.RenewTime.Sub(h.start), want.Sub(h.start))
			}
			if tm.Remaining() != validity {
				t.Fatalf("after renewal %d remaining %v, want %v from its send time", i, tm.Remaining(), validity)
			}
		}
		if r := record(ml); r.Token != tm.Token || !r.AcquireTime.Equal(h.start) {
			t.Fatalf("record after renewals %+v", r)
		}
		if err := e.Healthy(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestValidityEndsByTimerWhenRenewalsFail(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		c := ml.Conn()
		e := h.elector("a", c, nil)
		l, _ := elected(t, e)
		tm := l.term(0)
		c.Cut(true)
		// Renewals at 5s and retries every ~2s all fail. 1ms before the
		// end of validity, counted from the acquire's send time, the work
		// still runs; at the end it is cancelled.
		sleep(validity - time.Millisecond)
		if tm.Remaining() != time.Millisecond {
			t.Fatalf("remaining %v", tm.Remaining())
		}
		if l.ended() != 0 {
			t.Fatalf("term cancelled before its validity ended: %v", l.cause(0))
		}
		sleep(time.Millisecond)
		if l.ended() != 1 || !l.endAt(0).Equal(h.at(validity)) {
			t.Fatalf("%d terms ended; want the term cancelled at exactly %v", l.ended(), validity)
		}
		if !errors.Is(l.cause(0), leadership.ErrValidityExpired) {
			t.Fatalf("cause %v", l.cause(0))
		}
		// The lock still names "a": the API was unreachable, so no release.
		if r := record(ml); r.HolderIdentity != "a" {
			t.Fatalf("record %+v", r)
		}
		// The API comes back: "a" leads again with a new, larger token.
		c.Cut(false)
		sleep(15 * time.Second)
		if l.count() != 2 {
			t.Fatalf("%d terms 15s after the API came back; want re-elected", l.count())
		}
		if l.term(1).Token <= tm.Token {
			t.Fatalf("token did not increase: %d then %d", tm.Token, l.term(1).Token)
		}
	})
}

func TestRenewRetriesAfterFailure(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		c := ml.Conn()
		e := h.elector("a", c, nil)
		l, _ := elected(t, e)
		tm := l.term(0)
		c.Cut(true)
		sleep(5 * time.Second) // the renewal fails
		if err := e.Healthy(); err != nil || tm.Remaining() != validity-5*time.Second {
			t.Fatalf("after the failed renewal: healthy %v, remaining %v", err, tm.Remaining())
		}
		c.Cut(false)
		// The retry comes RetryPeriod (2s) plus up to 20% jitter after the
		// failed attempt, long before validity runs out.
		w := watchWrites(t, ml)
		sleep(2400 * time.Millisecond)
		ws := w.all()
		if len(ws) != 1 {
			t.Fatalf("%d writes in the retry period after the failure, want 1", len(ws))
		}
		if at := ws[0].at.Sub(h.start); at < 7*time.Second || at > 7400*time.Millisecond {
			t.Fatalf("the retry came at %v, want within [7s, 7.4s]", at)
		}
		if l.ended() != 0 {
			t.Fatal("term ended although a retry succeeded")
		}
	})
}

func TestReleaseOnlyAfterLeadReturned(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		e := h.elector("a", ml, nil)
		l := newLead()
		release := holdLead(t, l)
		stop := run(t, e, l)
		synctest.Wait()
		if l.count() != 1 {
			t.Fatal("not elected")
		}
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		synctest.Wait()
		if l.ended() != 1 {
			t.Fatal("lead did not see its context end")
		}
		sleep(time.Minute) // lead keeps running: nothing may release meanwhile
		if r := record(ml); r.HolderIdentity != "a" {
			t.Fatalf("released while lead was still running: %+v", r)
		}
		release()
		<-stopped
		r := record(ml)
		if r.HolderIdentity != "" || r.LeaseDuration != time.Second {
			t.Fatalf("not released after lead returned: %+v", r)
		}
		if !errors.Is(l.cause(0), context.Canceled) {
			t.Fatalf("cause %v", l.cause(0))
		}
	})
}

func TestNoReleaseWhenDisabled(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		e := h.elector("a", ml, func(c *leadership.Config) { c.KeepLockOnStop = true })
		_, stop := elected(t, e)
		stop()
		if r := record(ml); r.HolderIdentity != "a" {
			t.Fatalf("released although KeepLockOnStop: %+v", r)
		}
	})
}

func TestFollowerWaitsLeaseDurationFromItsObservation(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		ca, cb := ml.Conn(), ml.Conn()
		a, b := h.elector("a", ca, nil), h.elector("b", cb, nil)
		la, _ := elected(t, a)
		lb := following(t, b, "a")
		// a renews at 5s, then is cut off (a crash, as far as b can tell).
		sleep(5 * time.Second)
		renewSeen := h.at(5 * time.Second)
		if r := record(ml); !r.RenewTime.Equal(renewSeen) {
			t.Fatalf("a's renewal at %v, want 5s", r.RenewTime.Sub(h.start))
		}
		if o := b.Observed(); !o.Record.RenewTime.Equal(renewSeen) || !o.At.Equal(renewSeen) {
			t.Fatalf("b saw the renewal of %v at %v, want both at 5s", o.Record.RenewTime.Sub(h.start), o.At.Sub(h.start))
		}
		ca.Cut(true)
		// a's work stops when its validity, from the renewal's send time,
		// runs out; b may take over exactly LeaseDuration after it saw the
		// renewal, not before.
		sleep(validity)
		if la.ended() != 1 || !la.endAt(0).Equal(renewSeen.Add(validity)) {
			t.Fatalf("a's work did not stop at its validity (%d ended)", la.ended())
		}
		sleep(15*time.Second - validity - time.Millisecond)
		if lb.count() != 0 {
			t.Fatal("b took over before the lease duration elapsed since it saw the last renewal")
		}
		sleep(time.Millisecond)
		if lb.count() != 1 || !lb.beganAt(0).Equal(renewSeen.Add(15*time.Second)) {
			t.Fatalf("b did not take over exactly 15s after it saw the renewal (%d terms)", lb.count())
		}
		if !errors.Is(la.cause(0), leadership.ErrValidityExpired) {
			t.Fatalf("a's cause: %v", la.cause(0))
		}
		if lb.term(0).Token <= la.term(0).Token {
			t.Fatal("token did not increase")
		}
		if r := record(ml); r.LeaseTransitions != 2 { // from the released record to a, then to b
			t.Fatalf("transitions %d", r.LeaseTransitions)
		}
	})
}

func TestGracefulHandoverIsImmediate(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		a, b := h.elector("a", ml, nil), h.elector("b", ml, nil)
		la, stopA := elected(t, a)
		lb := following(t, b, "a")
		stopA()
		synctest.Wait() // no time passes: b acts on the release as soon as it sees it
		if lb.count() != 1 || !lb.beganAt(0).Equal(h.start) {
			t.Fatalf("b has %d terms; want it elected at once", lb.count())
		}
		if la.active.Load() {
			t.Fatal("a's work still active")
		}
	})
}

func TestLeadReturningStepsDownAndCampaignsAgain(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		var mu sync.Mutex
		var ends []error
		e := h.elector("a", ml, func(c *leadership.Config) {
			c.Hooks.OnTermEnd = func(_ leadership.Term, cause error) { mu.Lock(); ends = append(ends, cause); mu.Unlock() }
		})
		l, _ := elected(t, e)
		l.mu.Lock()
		close(l.stop)
		l.stop = make(chan struct{})
		l.mu.Unlock()
		synctest.Wait()
		if r := record(ml); r.HolderIdentity != "" || r.Released == 0 {
			t.Fatalf("not released: %+v", r)
		}
		// lead returned by itself, with a live context: the term's cause is
		// that it returned.
		mu.Lock()
		if len(ends) != 1 || !errors.Is(ends[0], leadership.ErrLeadReturned) {
			t.Fatalf("term ends reported %v, want one, ErrLeadReturned", ends)
		}
		mu.Unlock()
		// After RetryPeriod (2s, plus up to 20% jitter) it campaigns again
		// and wins.
		sleep(2400 * time.Millisecond)
		if l.count() != 2 {
			t.Fatalf("%d terms; want elected again", l.count())
		}
		if at := l.beganAt(1).Sub(h.start); at < 2*time.Second || at > 2400*time.Millisecond {
			t.Fatalf("the second term began at %v, want within [2s, 2.4s]", at)
		}
		if l.term(1).Token <= l.term(0).Token {
			t.Fatal("token did not increase")
		}
	})
}

func TestForeignWriteStopsWorkAtOnce(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		e := h.elector("a", ml, nil)
		l, _ := elected(t, e)
		ml.Edit(func(r *leadership.Record) { r.HolderIdentity = "intruder" })
		synctest.Wait()
		if l.ended() != 1 {
			t.Fatal("work did not stop")
		}
		if !errors.Is(l.cause(0), leadership.ErrLockLost) || l.term(0).Remaining() <= 0 {
			t.Fatalf("cause %v, remaining %v: must stop before validity ends", l.cause(0), l.term(0).Remaining())
		}
		if got := e.Leader(); got.Identity != "intruder" || got.Self {
			t.Fatalf("Leader() = %+v", got)
		}
		if r := record(ml); r.HolderIdentity != "intruder" {
			t.Fatal("loser wrote over the new holder")
		}
	})
}

func TestIdentityClash(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		e := h.elector("a", ml, nil)
		l, _ := elected(t, e)
		ml.Edit(func(r *leadership.Record) { r.Instance = "someone-else" })
		synctest.Wait()
		endedBy(t, l, leadership.ErrIdentityClash)
		// It must not take the clashing record back before it expires: the
		// other process may be working under it.
		happensAfter(t, 15*time.Second, "re-acquisition of the record another process wrote under our identity", func() bool { return l.count() == 2 })
	})
}

func TestLateAppliedRenewalIsAdopted(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		e := h.elector("a", ml, nil)
		l, _ := elected(t, e)
		tm := l.term(0)
		ml.LateApply(1)
		sleep(5 * time.Second) // the renewal lands but reports a timeout
		if r := record(ml); !r.RenewTime.Equal(h.at(5 * time.Second)) {
			t.Fatalf("the renewal did not land: %+v", r)
		}
		// Not counted as success: validity is still from the acquire.
		if got := tm.Remaining(); got != validity-5*time.Second {
			t.Fatalf("remaining %v: a renewal reported as failed must not extend validity", got)
		}
		// The retry, RetryPeriod plus jitter later, finds its own write and
		// renews over it.
		sleep(2400 * time.Millisecond)
		if got := tm.Remaining(); got <= validity-5*time.Second {
			t.Fatalf("remaining %v: not renewed over the late write", got)
		}
		if l.ended() != 0 {
			t.Fatalf("term ended: %v", l.cause(0))
		}
	})
}

func TestDeletedLockStopsWorkAndIsRecreated(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		a, b := h.elector("a", ml, nil), h.elector("b", ml, nil)
		la, _ := elected(t, a)
		lb := following(t, b, "a")
		ml.Delete()
		synctest.Wait()
		endedBy(t, la, leadership.ErrLockDeleted)
		// Nobody re-creates it before a's lease, counted from the last
		// write each of them saw, has run out: not even a, whose own record
		// it was, since that is what a stale view would also say.
		happensAfter(t, 15*time.Second, "re-creation of the deleted lock", func() bool { _, ok := ml.Record(); return ok })
		// The creator holds it a lease before leading.
		happensAfter(t, 15*time.Second, "lead on the re-created lock", func() bool { return la.count()+lb.count() == 2 })
		var second leadership.Term
		if la.count() == 2 {
			second = la.term(1)
		} else {
			second = lb.term(0)
		}
		if second.Token <= la.term(0).Token {
			t.Fatalf("token after delete: %d then %d", la.term(0).Token, second.Token)
		}
	})
}

// A lock that does not exist is created at once, but its creator leads only
// a lease duration later: a create is no compare-and-swap, and may land over
// a term it never saw (created, and deleted by an operator, while the create
// was in flight), or after a holder of a deletion it only read about.
func TestCreateIsHeldALease(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := leadershiptest.NewLock()
		e := h.elector("a", ml, nil)
		l := newLead()
		run(t, e, l)
		synctest.Wait()
		created, ok := ml.Record()
		if !ok || created.HolderIdentity != "a" {
			t.Fatalf("not created at once: %+v", created)
		}
		// The held create begins no term: nobody may read a token from it.
		if tok := created.TermToken(); tok != 0 {
			t.Fatalf("the held create shows token %d; want 0 until a term begins", tok)
		}
		if got := e.Leader(); got.Token != 0 || got.Self {
			t.Fatalf("during the hold Leader() = %+v; want token 0, not self", got)
		}
		happensAfter(t, 15*time.Second, "lead on the lock created", func() bool { return l.count() == 1 })
		if tok := l.term(0).Token; tok <= created.Version {
			t.Fatalf("token %d is not the version of a write after the create (%d)", tok, created.Version)
		}
	})
}

func TestSuspendEndsTerm(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		e := h.elector("a", newLock(), nil)
		l, _ := elected(t, e)
		// The machine sleeps for a minute: the boot clock moves, the
		// monotonic clock does not. The boot-clock timer ends the term on
		// resume, with no monotonic time passing at all.
		h.boot.Suspend(time.Minute)
		synctest.Wait()
		if l.ended() != 1 || !l.endAt(0).Equal(h.start) {
			t.Fatalf("%d terms ended; want the term ended on resume, no time passing", l.ended())
		}
		if !errors.Is(l.cause(0), leadership.ErrSuspended) {
			t.Fatalf("cause %v", l.cause(0))
		}
	})
}

func TestResign(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		e := h.elector("a", ml, nil)
		l, _ := elected(t, e)
		if err := e.Resign(t.Context()); err != nil {
			t.Fatal(err)
		}
		if r := record(ml); r.HolderIdentity != "" || !errors.Is(l.cause(0), leadership.ErrResigned) {
			t.Fatalf("record %+v cause %v", r, l.cause(0))
		}
	})
}

// ledByA starts electors a, b and c on ml, a first: it returns once a
// leads and b and c have observed it.
func ledByA(t *testing.T, h *harness, ml leadership.Lock) (a, b, c *leadership.Elector, la, lb, lc *lead) {
	t.Helper()
	a, b, c = h.elector("a", ml, nil), h.elector("b", ml, nil), h.elector("c", ml, nil)
	la, _ = elected(t, a)
	return a, b, c, la, following(t, b, "a"), following(t, c, "a")
}

func TestHandoverToPreferredHolder(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		_, _, _, la, lb, lc := ledByA(t, h, ml)
		ml.Edit(func(r *leadership.Record) { r.PreferredHolder = "c" }) // what `leadership handover --to c` writes
		synctest.Wait()
		if lc.count() != 1 {
			t.Fatal("c not elected at once")
		}
		if lb.count() != 0 || !errors.Is(la.cause(0), leadership.ErrHandover) {
			t.Fatalf("b terms %d, a's cause %v", lb.count(), la.cause(0))
		}
		if r := record(ml); r.PreferredHolder != "" {
			t.Fatalf("preferred holder not cleared by its acquisition: %+v", r)
		}
	})
}

func TestObserve(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		e := h.elector("a", newLock(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		ch := e.Observe(ctx)
		if got := <-ch; got != (leadership.Leader{}) {
			t.Fatalf("first value %+v", got)
		}
		elected(t, e)
		// A slow reader sees the latest holder.
		if got := <-ch; !got.Self {
			t.Fatalf("observed %+v, want self", got)
		}
		cancel()
		synctest.Wait()
		select {
		case l, ok := <-ch:
			if ok {
				t.Fatalf("a value %+v after the context ended; want the channel closed", l)
			}
		default:
			t.Fatal("channel not closed when its context ended")
		}
	})
}

func TestHealthyDetectsLeadIgnoringCancellation(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		c := ml.Conn()
		e := h.elector("a", c, nil)
		if err := e.Healthy(); err == nil {
			t.Fatal("healthy before Run")
		}
		l := newLead()
		release := holdLead(t, l) // lead ignores its cancelled context
		run(t, e, l)
		synctest.Wait()
		if l.count() != 1 {
			t.Fatal("not elected")
		}
		c.Cut(true)
		sleep(validity)
		if l.ended() != 1 {
			t.Fatal("term did not end with its validity")
		}
		sleep(16 * time.Second)
		if e.Healthy() == nil {
			t.Fatal("healthy although lead has not returned 16s after its term ended")
		}
		release()
		synctest.Wait()
		if err := e.Healthy(); err != nil {
			t.Fatalf("once lead returned: %v", err)
		}
	})
}

func TestRunTwice(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		e := h.elector("a", newLock(), nil)
		l, _ := elected(t, e)
		if !e.Running() {
			t.Fatal("not running")
		}
		if err := e.Run(context.Background(), l.fn); !errors.Is(err, leadership.ErrAlreadyRunning) {
			t.Fatalf("second Run: %v", err)
		}
	})
}

func TestHooks(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		var mu sync.Mutex
		var got []string
		note := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
		e := h.elector("a", newLock(), func(c *leadership.Config) {
			c.Hooks = leadership.Hooks{
				OnAttempt: func(err error) { note(fmt.Sprintf("attempt %v", err)) },
				OnAcquire: func(t leadership.Term, prev string, waited time.Duration) {
					note(fmt.Sprintf("acquire prev=%q waited=%v", prev, waited))
				},
				OnRenew:   func(lat time.Duration, err error) { note(fmt.Sprintf("renew %v %v", lat, err)) },
				OnTermEnd: func(t leadership.Term, cause error) { note(fmt.Sprintf("end %v", cause)) },
				OnRelease: func(t leadership.Term, err error) { note(fmt.Sprintf("release %v", err)) },
				OnLeader:  func(l leadership.Leader) { note(fmt.Sprintf("leader %s %v", l.Identity, l.Self)) },
			}
		})
		_, stop := elected(t, e)
		sleep(5 * time.Second)
		mu.Lock()
		if len(got) == 0 || got[len(got)-1] != "renew 0s <nil>" {
			t.Fatalf("no renewal hook at 5s: %q", got)
		}
		mu.Unlock()
		stop()
		synctest.Wait()
		// The holder seen as someone (even ourselves) before we know we
		// lead can be reported by the watch or by the write, before or
		// after the attempt hook: drop it from the ordered comparison.
		// After the term it must be reported at once: the Lease still
		// names us, but we no longer lead.
		mu.Lock()
		defer mu.Unlock()
		var ordered []string
		led := false
		for _, g := range got {
			led = led || g == "leader a true"
			if led || g != "leader a false" {
				ordered = append(ordered, g)
			}
		}
		want := []string{"attempt <nil>", "acquire prev=\"\" waited=0s", "leader a true", "renew 0s <nil>",
			"leader a false", "end context canceled", "leader  false", "release <nil>"}
		if fmt.Sprint(ordered) != fmt.Sprint(want) {
			t.Fatalf("hooks called:\n%q\nwant\n%q", ordered, want)
		}
	})
}

func TestProclaimIsFencedAndCarriedOver(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		ca := ml.Conn()
		a, b := h.elector("a", ca, nil), h.elector("b", ml, nil)
		la, _ := elected(t, a)
		ctx := t.Context()
		ta := la.term(0)
		if err := a.Proclaim(ctx, ta, map[string]string{"last-run": "1", "cursor": "x"}); err != nil {
			t.Fatal(err)
		}
		r := record(ml)
		if r.Values["last-run"] != "1" || r.Values["cursor"] != "x" || r.HolderIdentity != "a" {
			t.Fatalf("record %+v", r)
		}
		if err := a.Proclaim(ctx, ta, map[string]string{"cursor": ""}); err != nil {
			t.Fatal(err)
		}
		if r := record(ml); len(r.Values) != 1 {
			t.Fatalf("empty value did not delete its key: %v", r.Values)
		}
		if err := b.Proclaim(ctx, ta, map[string]string{"x": "y"}); !errors.Is(err, leadership.ErrNotLeader) {
			t.Fatalf("follower proclaimed: %v", err)
		}
		lb := following(t, b, "a")
		// a is cut off; its proclaim cannot succeed and ends with the term.
		// b takes over 15s after it saw a's last write (the proclaims, a
		// renewal each, at 0).
		ca.Cut(true)
		errc := make(chan error, 1)
		go func() { errc <- a.Proclaim(ctx, ta, map[string]string{"last-run": "stale"}) }()
		sleep(15 * time.Second)
		if lb.count() != 1 {
			t.Fatal("b not elected 15s after a's last write")
		}
		if err := <-errc; !errors.Is(err, leadership.ErrNotLeader) || !errors.Is(err, leadership.ErrValidityExpired) {
			t.Fatalf("proclaim of a lapsed term: %v", err)
		}
		if got := lb.term(0).Values["last-run"]; got != "1" {
			t.Fatalf("b's term starts with values %v", lb.term(0).Values)
		}
		if err := a.Proclaim(ctx, ta, map[string]string{"last-run": "stale"}); !errors.Is(err, leadership.ErrNotLeader) {
			t.Fatalf("old term proclaimed: %v", err)
		}
		if r := record(ml); r.Values["last-run"] != "1" {
			t.Fatalf("values moved by a stale leader: %v", r.Values)
		}
	})
}

func TestHandoverToAnyOther(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		a, b := h.elector("a", ml, nil), h.elector("b", ml, nil)
		la, _ := elected(t, a)
		lb := following(t, b, "a")
		ml.Edit(func(r *leadership.Record) { r.PreferredHolder = leadership.AnyOtherHolder })
		synctest.Wait()
		if lb.count() != 1 {
			t.Fatal("b not elected at once")
		}
		if !errors.Is(la.cause(0), leadership.ErrHandover) {
			t.Fatalf("a's cause %v", la.cause(0))
		}
		if r := record(ml); r.PreferredHolder != "" || r.HolderIdentity != "b" {
			t.Fatalf("record after handover %+v", r)
		}
	})
}

// A hook may call back into the elector: hooks run outside its lock.
func TestHooksMayCallTheElector(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		var e *leadership.Elector
		var calls atomic.Int64
		e = h.elector("a", newLock(), func(c *leadership.Config) {
			c.Hooks.OnLeader = func(leadership.Leader) {
				_ = e.Leader()
				_ = e.Healthy()
				ctx, cancel := context.WithCancel(context.Background())
				<-e.Observe(ctx)
				cancel()
				calls.Add(1)
			}
		})
		_, stop := elected(t, e)
		if calls.Load() == 0 {
			t.Fatal("the hook did not run and return")
		}
		stop()
	})
}

// Leader().Self turns false the moment the term ends, not when lead has
// returned and the release is written.
func TestSelfEndsWithTheTerm(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		c := ml.Conn()
		e := h.elector("a", c, nil)
		l := newLead()
		release := holdLead(t, l) // lead keeps running after its context ends
		run(t, e, l)
		synctest.Wait()
		if !e.Leader().Self {
			t.Fatal("not Self while leading")
		}
		c.Cut(true)
		sleep(validity) // validity runs out; lead has not returned
		if l.ended() != 1 {
			t.Fatal("term did not end")
		}
		if e.Leader().Self {
			t.Fatal("Self while lead is still returning")
		}
		if !l.active.Load() {
			t.Fatal("lead returned before the check: the test proves nothing")
		}
		c.Cut(false)
		release()
	})
}

// Run says when its final release failed: successors then wait the lease
// out, which the caller may want to log or alert on.
func TestRunReportsFailedRelease(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		c := ml.Conn()
		e := h.elector("a", c, func(c *leadership.Config) { c.LeaseDuration = 3 * time.Second })
		l := newLead()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx, l.fn) }()
		synctest.Wait()
		if l.count() != 1 {
			t.Fatal("not elected")
		}
		c.Cut(true)
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, leadership.ErrNotReleased) || !errors.Is(err, leadershiptest.ErrCut) {
				t.Fatalf("Run returned %v, want ErrNotReleased wrapping the cause", err)
			}
		default:
			t.Fatal("Run did not return at once")
		}
	})
}

// An error returned by lead ends the term with a cause that carries it.
func TestLeadErrorIsTheCause(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		boom := errors.New("boom")
		var causes []error
		var mu sync.Mutex
		e := h.elector("a", newLock(), func(c *leadership.Config) {
			c.Hooks.OnTermEnd = func(_ leadership.Term, cause error) { mu.Lock(); causes = append(causes, cause); mu.Unlock() }
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- e.Run(ctx, func(context.Context, leadership.Term) error { return boom })
		}()
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(causes) != 1 {
			t.Fatalf("%d terms ended, want 1", len(causes))
		}
		if !errors.Is(causes[0], leadership.ErrLeadReturned) || !errors.Is(causes[0], boom) {
			t.Fatalf("cause %v, want ErrLeadReturned and lead's error", causes[0])
		}
	})
}

// A hand edit that keeps holder and instance is not the leader's write: it
// ends the term, and the follower keeps the longer duration.
func TestHandEditEndsTermAndKeepsTheWait(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		a, b := h.elector("a", ml, nil), h.elector("b", ml, nil)
		la, _ := elected(t, a)
		lb := following(t, b, "a")
		ml.Edit(func(r *leadership.Record) { r.LeaseDuration = time.Second })
		synctest.Wait()
		endedBy(t, la, leadership.ErrLockLost)
		sleep(2 * time.Second) // past the edited 1s, well short of a's 15s
		if lb.count() != 0 || la.count() != 1 {
			t.Fatal("the edited, shorter duration was counted")
		}
		happensAfter(t, 13*time.Second, "b's takeover (a announced 15s, 2s before)", func() bool { return la.count()+lb.count() == 2 })
	})
}

// slowLock answers updates only when the test lets it, as a slow network
// would: the write is applied at once, its answer held back.
type slowLock struct {
	*leadershiptest.Lock
	hold    atomic.Bool
	release chan struct{}
}

func (s *slowLock) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	res, err := s.Lock.Update(ctx, r)
	if s.hold.Load() {
		<-s.release
	}
	return res, err
}

// An acquiring write answered after the validity it began has run out
// starts no work: a successor may already count from it. (Found by the spin
// model, switch BUG_LATE_START.)
func TestNoWorkOnAnAcquisitionAnsweredTooLate(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		sl := &slowLock{Lock: newLock(), release: make(chan struct{})}
		sl.hold.Store(true)
		e := h.elector("a", sl, nil)
		l := newLead()
		run(t, e, l)
		synctest.Wait()
		if r := record(sl.Lock); r.HolderIdentity != "a" {
			t.Fatalf("the acquiring write was not applied: %+v", r)
		}
		sleep(15 * time.Second) // past the validity counted from its send
		sl.hold.Store(false)
		close(sl.release)
		synctest.Wait()
		if l.count() < 1 {
			t.Fatal("did not lead once the answer came")
		}
		// The late write was version 2 (the lock began at 1); the first
		// term led must be a later acquisition's.
		if tok := l.term(0).Token; tok <= 2 {
			t.Fatalf("led on token %d, the acquisition answered after its validity ran out", tok)
		}
	})
}
