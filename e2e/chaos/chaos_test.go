package chaos

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// shortRounds keeps the short run near two and a half minutes on a loaded
// machine: one or two faults per scenario; three hand edits (the shortened
// duration under a partition first), all three deletion variants. The long
// run is `go run ./cmd/chaos`.
var shortRounds = map[string]int{
	"kill":              2,
	"sigstop":           2,
	"partition":         2,
	"latency":           2,
	"apiserver-restart": 1,
	"etcd-stall":        1,
	"rolling-restart":   1,
	"handover-storm":    4,
	"mixed":             2,
	"hand-edit":         3,
	"manual-release":    1,
	"delete-polling":    3,
	"clock-drift":       2,
	"restart-in-place":  2,
}

// takeoverRequired lists the scenarios whose every fault must end the
// leader's term: the leader dies, stops, loses its path or steps down.
var takeoverRequired = map[string]bool{
	"kill": true, "sigstop": true, "partition": true, "rolling-restart": true, "handover-storm": true, "mixed": true,
	"clock-drift": true, "restart-in-place": true,
}

// TestShortRun runs every scenario briefly against both implementations and
// fails on anything that breaks leadership's promise: two lead intervals
// that overlap (unless the earlier one's process was frozen past its lease,
// which only the fenced store can catch), a write the fenced store refused
// from a process that was never frozen, an overlap of accepted work, a
// stale write accepted, a fencing token that did not increase, a fault not
// followed by a new leader. client-go's results are logged, not judged: its
// overlaps are documented behaviour.
func TestShortRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var logs strings.Builder
	r, err := Start(ctx, Options{
		PerScenario: shortRounds,
		Race:        raceEnabled,
		// Generous: the candidates run under the race detector on a
		// shared, loaded machine.
		WaitTimeout: 2 * time.Minute,
		Log:         slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer func() {
		if t.Failed() {
			t.Logf("runner log:\n%s", logs.String())
		}
	}()
	if got, want := len(Scenarios()), len(shortRounds); got != want {
		t.Fatalf("%d scenarios, %d with short-run rounds", got, want)
	}
	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			res, err := r.Run(ctx, sc.Name)
			if err != nil {
				t.Fatal(err)
			}
			var table strings.Builder
			_ = WriteMarkdown(&table, res)
			t.Log("\n" + table.String())
			for _, p := range res.LeadershipProblems() {
				t.Error(p)
			}
			rounds := shortRounds[sc.Name]
			for _, f := range res.Fleets {
				rep := f.Report
				// leadership's misses are among LeadershipProblems; client-go
				// may legitimately keep its leader through a fault such as a
				// deletion (it re-creates the Lease itself): reported only.
				if rep.Missed > 0 && f.Label != ledger.ImplLeadership {
					t.Logf("%s (not judged): %d faults without a new leader", f.Label, rep.Missed)
				}
				if rep.Faults < rounds {
					t.Errorf("%s: %d faults injected, want at least %d", f.Label, rep.Faults, rounds)
				}
				if takeoverRequired[sc.Name] && rep.Transitions < rounds {
					t.Errorf("%s: %d transitions after %d faults that each end the leader's term", f.Label, rep.Transitions, rounds)
				}
				if rep.Accepted == 0 {
					t.Errorf("%s: no work accepted", f.Label)
				}
				if !rep.Safe() {
					t.Logf("%s (not judged):\n%s", f.Label, strings.Join(rep.Problems(), "\n"))
				}
			}
			if sc.Name == "sigstop" {
				// A leader stopped inside a unit finishes it after SIGCONT
				// with its old token, after its successor wrote. The stop
				// is timed to land inside a unit; it misses only if it
				// lands in the millisecond of a write in flight, so over
				// the rounds the store must have refused a write. Every
				// stopped leader's lead interval overlaps its successor's:
				// the checker must see that, and report it apart.
				for _, f := range res.Fleets {
					if f.Report.Refused == 0 {
						t.Errorf("%s: no stale write refused after %d SIGSTOP/SIGCONT", f.Label, rounds)
					}
					if len(f.Report.FrozenOverlaps) < rounds {
						t.Errorf("%s: %d frozen-process overlaps after %d SIGSTOPs past the lease, want one each", f.Label, len(f.Report.FrozenOverlaps), rounds)
					}
				}
			}
		})
	}
}
