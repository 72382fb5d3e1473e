package checker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/chaos/ledger"
)

const ms = ledger.Mono(time.Millisecond)

// hist builds histories by hand: each unit is (who, term, token, begin,
// at, accepted), times in milliseconds.
type hist struct{ h ledger.History }

func (b *hist) unit(who string, term int, token uint64, begin, at ledger.Mono, accepted bool) *hist {
	impl, space := ledger.ImplLeadership, ledger.SpaceResourceVersion
	if strings.HasPrefix(who, "cg") {
		impl, space = ledger.ImplClientGo, ledger.SpaceLeaseTransitions
	}
	b.h.Records = append(b.h.Records, ledger.Record{
		Write: ledger.Write{Fleet: "f", Impl: impl, Identity: who, PID: 1, Term: term, Space: space, Token: token,
			Begin: begin * ms, Sent: at*ms - 1},
		Result: ledger.Result{Accepted: accepted, At: at * ms},
	})
	return b
}

func (b *hist) fault(at ledger.Mono, expect bool) *hist {
	b.h.Faults = append(b.h.Faults, ledger.Fault{Fleet: "f", Kind: "kill", At: at * ms, ExpectTakeover: expect})
	return b
}

func (b *hist) window(start, end ledger.Mono) ledger.History {
	b.h.Start, b.h.End = start*ms, end*ms
	return b.h
}

func TestCleanHistory(t *testing.T) {
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		unit("a", 1, 10, 150, 200, true).
		fault(210, true).
		unit("b", 1, 20, 2300, 2350, true).
		unit("b", 1, 20, 2350, 2400, true).
		window(120, 2500)
	r := Check(h)
	if !r.Safe() || len(r.Problems()) != 0 {
		t.Fatalf("clean history judged unsafe: %v", r.Problems())
	}
	if r.Transitions != 1 || r.Accepted != 4 || r.Refused != 0 || len(r.Terms) != 2 {
		t.Fatalf("counts: %+v", r)
	}
	if len(r.Takeovers) != 1 || r.Takeovers[0] != 2090*time.Millisecond {
		t.Fatalf("takeovers %v, want [2.09s]", r.Takeovers)
	}
	// Uncovered: 2400..2500 and 200..2300.
	if r.Leaderless != 2200*time.Millisecond || r.MaxGap != 2100*time.Millisecond {
		t.Fatalf("leaderless %v max gap %v, want 2.2s and 2.1s", r.Leaderless, r.MaxGap)
	}
}

func TestOverlapOfAcceptedWork(t *testing.T) {
	// a's last write is accepted at 260, after b began at 250: an overlap
	// of 10ms and a stale write accepted.
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		unit("a", 1, 10, 200, 260, true).
		unit("b", 1, 20, 250, 300, true).
		window(0, 400)
	r := Check(h)
	if len(r.Overlaps) != 1 || r.Overlaps[0].Duration != 10*time.Millisecond {
		t.Fatalf("overlaps %+v, want one of 10ms", r.Overlaps)
	}
	if r.Overlaps[0].Earlier.Key.Identity != "a" || r.OverlapsAfter(ledger.ImplLeadership) != 1 || r.OverlapsAfter(ledger.ImplClientGo) != 0 {
		t.Fatalf("overlap attributed wrongly: %+v", r.Overlaps[0])
	}
	if r.StaleAccepted != 1 || r.Safe() {
		t.Fatalf("stale accepted %d, safe %v", r.StaleAccepted, r.Safe())
	}
}

func TestRefusedWorkDoesNotOverlap(t *testing.T) {
	// a was paused: its write after resuming (begun at 200, decided at
	// 3000) is refused, so it did nothing the store kept.
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		unit("a", 1, 10, 200, 3000, false).
		unit("b", 1, 20, 2300, 2350, true).
		window(0, 3100)
	r := Check(h)
	if !r.Safe() || r.Refused != 1 {
		t.Fatalf("safe %v refused %d: %v", r.Safe(), r.Refused, r.Problems())
	}
}

func TestInterleavedTermsOverlap(t *testing.T) {
	// a works, b works, a works again: a's span contains b's.
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		unit("b", 1, 20, 160, 170, true).
		unit("a", 1, 10, 180, 190, true).
		window(0, 200)
	if r := Check(h); len(r.Overlaps) != 1 || r.Overlaps[0].Duration != 10*time.Millisecond {
		t.Fatalf("overlaps %+v, want b's 10ms inside a", r.Overlaps)
	}
}

func TestTokenViolations(t *testing.T) {
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		unit("b", 1, 10, 200, 250, true). // equal: a violation
		unit("a", 2, 30, 300, 350, true).
		unit("cg1", 1, 1, 400, 450, true). // another space: compared to none
		unit("cg2", 1, 2, 500, 550, true).
		unit("cg1", 2, 2, 600, 650, true). // equal within its space
		window(0, 700)
	r := Check(h)
	if len(r.Violations) != 2 {
		t.Fatalf("violations %+v, want 2", r.Violations)
	}
	if v := r.Violations[0]; v.Term.Key.Identity != "b" || v.Previous.Key.Identity != "a" {
		t.Fatalf("first violation %+v", v)
	}
	if v := r.Violations[1]; v.Term.Key.Identity != "cg1" || v.Previous.Key.Identity != "cg2" {
		t.Fatalf("second violation %+v", v)
	}
}

func TestTakeoverAttribution(t *testing.T) {
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		fault(200, false). // a latency spike a survived
		unit("a", 1, 10, 300, 350, true).
		fault(400, true). // a kill: b takes over 2s later
		unit("b", 1, 20, 2400, 2450, true).
		fault(2500, true). // a kill never followed by a new leader
		window(0, 5000)
	r := Check(h)
	if len(r.Takeovers) != 1 || r.Takeovers[0] != 2*time.Second {
		t.Fatalf("takeovers %v, want [2s]", r.Takeovers)
	}
	if r.Kept != 1 || r.Missed != 1 {
		t.Fatalf("kept %d missed %d, want 1 and 1", r.Kept, r.Missed)
	}
	if !strings.Contains(strings.Join(r.Problems(), "\n"), "not followed by a new leader") {
		t.Fatalf("problems do not mention the missed takeover: %v", r.Problems())
	}
}

func TestTransitionsCountOnlyInsideWindow(t *testing.T) {
	b := &hist{}
	for i := range 5 {
		at := ledger.Mono(100 * (i + 1))
		b.unit(fmt.Sprintf("c%d", i), 1, uint64(i+1), at, at+10, true)
	}
	// Terms start at 100..500; the window [250, 450) holds two, which are
	// transitions because each had a predecessor.
	if r := Check(b.window(250, 450)); r.Transitions != 2 {
		t.Fatalf("transitions %d, want 2", r.Transitions)
	}
}

func TestPercentile(t *testing.T) {
	r := Report{}
	if r.Percentile(99) != 0 || r.MaxTakeover() != 0 {
		t.Fatal("empty samples must give 0")
	}
	for i := 1; i <= 200; i++ {
		r.Takeovers = append(r.Takeovers, time.Duration(i)*time.Millisecond)
	}
	if got := r.Percentile(99); got != 198*time.Millisecond {
		t.Fatalf("p99 of 1..200ms = %v, want 198ms", got)
	}
	if got := r.Percentile(50); got != 100*time.Millisecond {
		t.Fatalf("p50 = %v, want 100ms", got)
	}
	if r.MaxTakeover() != 200*time.Millisecond {
		t.Fatalf("max %v", r.MaxTakeover())
	}
}
