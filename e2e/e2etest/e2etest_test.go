package e2etest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// recorder is a testing.TB that keeps what a helper reported instead of
// failing the test that runs it.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
	fatal  bool
}

func (r *recorder) Helper() {}

func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprint(args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
	r.fatal = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) report() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errors, "\n")
}

func begin(t *testing.T, l *ledger.Local, who, impl string, token uint64, unit bool) *ledger.Term {
	t.Helper()
	r, err := l.Replica(who, impl)
	if err != nil {
		t.Fatal(err)
	}
	term := r.Begin(token)
	if unit {
		term.Unit()
	}
	return term
}

func TestCheckLedgerPassesOneLeaderAtATime(t *testing.T) {
	l := ledger.NewLocal("f")
	begin(t, l, "a", ledger.ImplLeadership, 10, true).End()
	begin(t, l, "b", ledger.ImplLeadership, 12, true).End()
	begin(t, l, "cg", ledger.ImplClientGo, 0, false).End()
	begin(t, l, "a", ledger.ImplLeadership, 15, true) // still leading
	rec := &recorder{TB: t}
	r := CheckLedger(rec, l)
	if got := rec.report(); got != "" {
		t.Fatalf("a clean history failed:\n%s", got)
	}
	if len(r.Intervals) != 4 || len(r.Terms) != 3 {
		t.Fatalf("%d intervals and %d terms with accepted work, want 4 and 3", len(r.Intervals), len(r.Terms))
	}
}

// The judgement of a safety test must be able to fail: two terms that run
// at once are an overlap, whether the earlier one has returned or not (and
// the later one has done any work or not: a term still running is judged
// as running now).
func TestCheckLedgerReportsOverlap(t *testing.T) {
	for _, returned := range []bool{true, false} {
		t.Run(fmt.Sprintf("earlier returned=%v", returned), func(t *testing.T) {
			l := ledger.NewLocal("f")
			a := begin(t, l, "a", ledger.ImplLeadership, 10, true)
			b := begin(t, l, "b", ledger.ImplLeadership, 12, returned)
			if returned {
				a.End()
				b.End()
			}
			rec := &recorder{TB: t}
			r := CheckLedger(rec, l)
			if len(r.LeadOverlaps) != 1 || len(r.FrozenOverlaps) != 0 {
				t.Fatalf("lead overlaps %+v, frozen %+v: want one plain overlap", r.LeadOverlaps, r.FrozenOverlaps)
			}
			if got := rec.report(); !strings.Contains(got, "overlap of") || !strings.Contains(got, "a[pid") {
				t.Fatalf("the overlap was not reported as a failure of a's term: %q", got)
			}
		})
	}
}

// In-process replicas share one process: nothing stops one alone, so Local
// records no freeze. Its history is still judged by the chaos suite's
// rules: with the process stopped (SIGSTOP) from the start of a's term,
// before b began, the overlap is a frozen process's, reported apart.
func TestLedgerHistoryFrozenOverlapIsReportedApart(t *testing.T) {
	l := ledger.NewLocal("f")
	a := begin(t, l, "a", ledger.ImplLeadership, 10, true)
	b := begin(t, l, "b", ledger.ImplLeadership, 12, true)
	a.End()
	b.End()
	h := l.History()
	first, _ := l.Last("a")
	h.Freezes = []ledger.Freeze{{Fleet: h.Fleet, Identity: "a", PID: os.Getpid(), From: first.Start, To: first.End}}
	r := checker.Check(h)
	if len(r.LeadOverlaps) != 0 || len(r.FrozenOverlaps) != 1 || !r.Safe() {
		t.Fatalf("lead overlaps %+v, frozen %+v, safe %v: want the overlap reported apart", r.LeadOverlaps, r.FrozenOverlaps, r.Safe())
	}
}

func TestCheckLedgerReportsTokensThatDoNotIncrease(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second uint64
		want   string
	}{
		{"lower", 9, "refused by the fenced store"},
		{"equal", 10, "token did not increase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := ledger.NewLocal("f")
			begin(t, l, "a", ledger.ImplLeadership, 10, true).End()
			begin(t, l, "b", ledger.ImplLeadership, tc.second, true).End()
			rec := &recorder{TB: t}
			CheckLedger(rec, l)
			if got := rec.report(); !strings.Contains(got, tc.want) {
				t.Fatalf("token %d after 10: reported %q, want %q", tc.second, got, tc.want)
			}
		})
	}
}

func TestCheckLedgerFailsOnNothingRecorded(t *testing.T) {
	rec := &recorder{TB: t}
	CheckLedger(rec, ledger.NewLocal("f"))
	if got := rec.report(); !strings.Contains(got, "no leader work was recorded") {
		t.Fatalf("an empty ledger passed: %q", got)
	}
}

func TestEventually(t *testing.T) {
	run := func(f func(tb testing.TB)) *recorder {
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); f(rec) }()
		<-done
		return rec
	}
	n := 0
	if rec := run(func(tb testing.TB) {
		Eventually(tb, time.Minute, "three calls", func() bool { n++; return n == 3 })
	}); rec.fatal || n != 3 {
		t.Fatalf("a condition that holds at the third call: failed %v after %d calls: %s", rec.fatal, n, rec.report())
	}
	rec := run(func(tb testing.TB) {
		Eventually(tb, 50*time.Millisecond, "the Lease", func() error { return errors.New("lease not found") })
	})
	if got := rec.report(); !rec.fatal || !strings.Contains(got, "waiting for: the Lease") || !strings.Contains(got, "last error: lease not found") {
		t.Fatalf("a func() error that never succeeds: fatal %v, %q; want what was awaited and the last error", rec.fatal, got)
	}
	rec = run(func(tb testing.TB) {
		Eventually(tb, 50*time.Millisecond, "a leader", func() bool { return false })
	})
	if got := rec.report(); !rec.fatal || !strings.Contains(got, "waiting for: a leader") || strings.Contains(got, "not yet") {
		t.Fatalf("a func() bool that never holds: fatal %v, %q", rec.fatal, got)
	}
}
