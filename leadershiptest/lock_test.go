package leadershiptest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
)

func memSubject(*testing.T) leadershiptest.Subject {
	l := leadershiptest.NewLock()
	return leadershiptest.Subject{Lock: l, Delete: func(context.Context) error { l.Delete(); return nil }}
}

func TestInMemoryLockConforms(t *testing.T) {
	leadershiptest.TestLock(t, memSubject)
}

// brokenCAS forgets the compare in compare-and-swap: it updates whatever
// version the caller read, the bug that lets two candidates both acquire.
type brokenCAS struct{ *leadershiptest.Lock }

func (b brokenCAS) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	cur, err := b.Lock.Get(ctx)
	if err != nil {
		return leadership.Record{}, err
	}
	r.Version = cur.Version
	return b.Lock.Update(ctx, r)
}

// The suite must fail on a lock with a broken compare-and-swap. A failing
// suite fails the test that runs it, so it runs in a child process (this
// test binary, TestBrokenCASUnderTheSuite) and this test checks that the
// child failed, and failed for that reason.
func TestSuiteRejectsBrokenCompareAndSwap(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenCASUnderTheSuite$", "-test.v")
	cmd.Env = append(os.Environ(), "LEADERSHIPTEST_BROKEN_CAS=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the suite passed (or did not run) on a lock whose compare-and-swap is broken: %v\n%s", err, out)
	}
	for _, want := range []string{"--- FAIL: TestBrokenCASUnderTheSuite/compare-and-swap", "a broken compare-and-swap", "--- FAIL: TestBrokenCASUnderTheSuite/concurrent_compare-and-swap"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the suite's output on a broken compare-and-swap lacks %q:\n%s", want, out)
		}
	}
	// The rest of the contract holds for that lock, and the suite says so.
	if !strings.Contains(string(out), "--- PASS: TestBrokenCASUnderTheSuite/round_trip") {
		t.Errorf("the suite failed checks that the broken lock keeps:\n%s", out)
	}
}

// TestBrokenCASUnderTheSuite is the child of
// TestSuiteRejectsBrokenCompareAndSwap; run alone it has nothing to check.
func TestBrokenCASUnderTheSuite(t *testing.T) {
	if os.Getenv("LEADERSHIPTEST_BROKEN_CAS") != "1" {
		t.Skip("runs only as the child process of TestSuiteRejectsBrokenCompareAndSwap")
	}
	leadershiptest.TestLock(t, func(*testing.T) leadershiptest.Subject {
		l := leadershiptest.NewLock()
		return leadershiptest.Subject{Lock: brokenCAS{l}, Delete: func(context.Context) error { l.Delete(); return nil }}
	})
}

func TestConnCut(t *testing.T) {
	ctx := context.Background()
	l := leadershiptest.NewLock()
	a, b := l.Conn(), l.Conn()
	if _, err := a.Create(ctx, leadership.Record{HolderIdentity: "a", LeaseDuration: time.Second}); err != nil {
		t.Fatal(err)
	}
	ch, err := a.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-ch // the current record
	a.Cut(true)
	if _, err := a.Get(ctx); !errors.Is(err, leadershiptest.ErrCut) {
		t.Fatalf("Get on a cut connection: %v; want ErrCut", err)
	}
	if _, err := b.Get(ctx); err != nil {
		t.Fatalf("the other connection was cut too: %v", err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("an event on a cut connection's watch")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cut did not end the watch")
	}
	a.Cut(false)
	if _, err := a.Get(ctx); err != nil {
		t.Fatalf("Get after mending: %v", err)
	}
}

func TestLateApply(t *testing.T) {
	ctx := context.Background()
	l := leadershiptest.NewLock()
	c, err := l.Create(ctx, leadership.Record{HolderIdentity: "a", LeaseDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l.LateApply(1)
	c.HolderIdentity = "b"
	if _, err := l.Update(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("late-applied update answered %v; want a timeout", err)
	}
	if r, _ := l.Record(); r.HolderIdentity != "b" {
		t.Fatalf("the late-applied update was not applied: holder %q", r.HolderIdentity)
	}
}

func TestCompactExpiresOldWatches(t *testing.T) {
	ctx := context.Background()
	l := leadershiptest.NewLock()
	c, err := l.Create(ctx, leadership.Record{HolderIdentity: "a", LeaseDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l.Compact()
	ch, err := l.Watch(ctx, c.Version)
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := <-ch
	if !ok || ev.Type != leadership.Failed || !errors.Is(ev.Err, leadership.ErrExpired) {
		t.Fatalf("watch from a compacted version: %v %v; want a Failed event wrapping ErrExpired", ev.Type, ev.Err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("events after Failed")
	}
}

func TestEditAndDelete(t *testing.T) {
	ctx := context.Background()
	l := leadershiptest.NewLock()
	if _, ok := l.Edit(func(*leadership.Record) {}); ok {
		t.Fatal("edited a lock that does not exist")
	}
	c, err := l.Create(ctx, leadership.Record{HolderIdentity: "a", LeaseDuration: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := l.Edit(func(r *leadership.Record) { r.LeaseDuration = time.Second })
	if !ok || e.Version <= c.Version || e.LeaseDuration != time.Second || e.HolderIdentity != "a" {
		t.Fatalf("Edit = %+v, %v", e, ok)
	}
	l.Delete()
	if _, err := l.Get(ctx); !errors.Is(err, leadership.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	p := l.Put(leadership.Record{HolderIdentity: "op"})
	if p.Version <= e.Version+1 {
		t.Fatalf("Put after Delete at version %d; want above the deletion's (%d)", p.Version, e.Version+1)
	}
}

func TestConnAnswersPingsUntilCut(t *testing.T) {
	ctx := context.Background()
	l := leadershiptest.NewLock()
	c := l.Conn()
	var _ leadership.PingAnswerer = c
	r := l.Put(leadership.Record{HolderIdentity: "a", LeaseDuration: time.Second, Ping: "b/1"})
	if _, err := c.AnswerPing(ctx, r.Version, "b/1"); err != nil {
		t.Fatal(err)
	}
	c.Cut(true)
	if _, err := c.AnswerPing(ctx, r.Version+1, "b/1"); !errors.Is(err, leadershiptest.ErrCut) {
		t.Fatalf("AnswerPing on a cut connection: %v; want ErrCut", err)
	}
	if got, _ := l.Record(); got.Ping != "b/1" || got.Pong != "b/1" {
		t.Fatalf("record %+v; want the probe and its answer", got)
	}
}
