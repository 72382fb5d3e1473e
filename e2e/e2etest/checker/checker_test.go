package checker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

const ms = ledger.Mono(time.Millisecond)

// hist builds histories by hand: each unit is (who, term, token, begin,
// at, accepted), times in milliseconds. Each identity is one process.
type hist struct {
	h    ledger.History
	pids map[string]int
	// explicit: lead intervals are given by lead(); otherwise window()
	// reports each term's interval as exactly the span of its units.
	explicit bool
}

func (b *hist) pid(who string) int {
	if b.pids == nil {
		b.pids = map[string]int{}
	}
	if _, ok := b.pids[who]; !ok {
		b.pids[who] = 100 + len(b.pids)
	}
	return b.pids[who]
}

func impl(who string) (string, string) {
	if strings.HasPrefix(who, "cg") {
		return ledger.ImplClientGo, ledger.SpaceLeaseTransitions
	}
	return ledger.ImplLeadership, ledger.SpaceResourceVersion
}

func (b *hist) unit(who string, term int, token uint64, begin, at ledger.Mono, accepted bool) *hist {
	impl, space := impl(who)
	b.h.Records = append(b.h.Records, ledger.Record{
		Write: ledger.Write{Fleet: "f", Impl: impl, Identity: who, PID: b.pid(who), Term: term, Space: space, Token: token,
			Begin: begin * ms, Sent: at*ms - 1},
		Result: ledger.Result{Accepted: accepted, At: at * ms},
	})
	return b
}

func (b *hist) event(who, kind string, term int, token uint64, at ledger.Mono) *hist {
	impl, _ := impl(who)
	b.h.Events = append(b.h.Events, ledger.Event{Fleet: "f", Impl: impl, Identity: who, PID: b.pid(who),
		Kind: kind, Term: term, Token: token, At: at * ms})
	return b
}

// lead reports a lead interval; end 0 reports no return.
func (b *hist) lead(who string, term int, token uint64, start, end ledger.Mono) *hist {
	b.explicit = true
	b.event(who, ledger.EventLeadStart, term, token, start)
	if end != 0 {
		b.event(who, ledger.EventLeadEnd, term, token, end)
	}
	return b
}

func (b *hist) gone(who string, at ledger.Mono) *hist {
	return b.event(who, ledger.EventGone, 0, 0, at)
}

// freeze records a SIGSTOP of who's process from..to (to 0: never thawed).
func (b *hist) freeze(who string, from, to ledger.Mono) *hist {
	b.h.Freezes = append(b.h.Freezes, ledger.Freeze{Fleet: "f", Identity: who, PID: b.pid(who), From: from * ms, To: to * ms})
	return b
}

func (b *hist) fault(at ledger.Mono, expect bool) *hist {
	b.h.Faults = append(b.h.Faults, ledger.Fault{Fleet: "f", Kind: "kill", At: at * ms, ExpectTakeover: expect})
	return b
}

func (b *hist) window(start, end ledger.Mono) ledger.History {
	b.h.Start, b.h.End = start*ms, end*ms
	if !b.explicit {
		type span struct {
			token       uint64
			first, last ledger.Mono
		}
		spans := map[TermKey]*span{}
		var order []TermKey
		for _, r := range b.h.Records {
			k := TermKey{Identity: r.Identity, PID: r.PID, Term: r.Term}
			if sp := spans[k]; sp == nil {
				spans[k] = &span{r.Token, r.Begin, r.At}
				order = append(order, k)
			} else {
				sp.first, sp.last = min(sp.first, r.Begin), max(sp.last, r.At)
			}
		}
		for _, k := range order {
			sp := spans[k]
			b.event(k.Identity, ledger.EventLeadStart, k.Term, sp.token, sp.first/ms)
			b.event(k.Identity, ledger.EventLeadEnd, k.Term, sp.token, sp.last/ms)
		}
	}
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
	if len(r.AcceptedOverlaps) != 1 || r.AcceptedOverlaps[0].Duration != 10*time.Millisecond {
		t.Fatalf("overlaps %+v, want one of 10ms", r.AcceptedOverlaps)
	}
	if len(r.LeadOverlaps) != 1 || r.LeadOverlaps[0].Duration != 10*time.Millisecond {
		t.Fatalf("lead overlaps %+v, want one of 10ms", r.LeadOverlaps)
	}
	if r.LeadOverlaps[0].Earlier.Key.Identity != "a" || r.OverlapsAfter(ledger.ImplLeadership) != 1 || r.OverlapsAfter(ledger.ImplClientGo) != 0 {
		t.Fatalf("overlap attributed wrongly: %+v", r.LeadOverlaps[0])
	}
	if r.StaleAccepted != 1 || r.Safe() {
		t.Fatalf("stale accepted %d, safe %v", r.StaleAccepted, r.Safe())
	}
}

// pausedLeader is a leader a whose unit begun at 200 is decided at 3000,
// refused, after b began at 2300; a's work function returns at 3010.
func pausedLeader() *hist {
	return (&hist{}).
		lead("a", 1, 10, 90, 3010).
		unit("a", 1, 10, 100, 150, true).
		unit("a", 1, 10, 200, 3000, false).
		lead("b", 1, 20, 2290, 2400).
		unit("b", 1, 20, 2300, 2350, true)
}

// The old judgment looked at accepted work only: a refused write changed
// nothing in the store, so it was "a refusal", never an overlap. But a led
// until 3010 while b led from 2290: two leaders, which only the fenced
// store hid. Unless a's process was frozen, that breaks the promise.
func TestRefusedWriteStillBelongsToALeadInterval(t *testing.T) {
	r := Check(pausedLeader().window(0, 3100))
	if len(r.AcceptedOverlaps) != 0 || r.Refused != 1 {
		t.Fatalf("accepted overlaps %d refused %d, want 0 and 1", len(r.AcceptedOverlaps), r.Refused)
	}
	if len(r.LeadOverlaps) != 1 || r.LeadOverlaps[0].Duration != 110*time.Millisecond || len(r.FrozenOverlaps) != 0 {
		t.Fatalf("lead overlaps %+v frozen %+v, want one of 110ms", r.LeadOverlaps, r.FrozenOverlaps)
	}
	if r.RefusedUnfrozen != 1 || r.UnexplainedRefusals != 0 || r.Safe() {
		t.Fatalf("refused unfrozen %d unexplained %d safe %v", r.RefusedUnfrozen, r.UnexplainedRefusals, r.Safe())
	}
	if p := strings.Join(r.Problems(), "\n"); !strings.Contains(p, "overlap of 110ms") || !strings.Contains(p, "never frozen") {
		t.Fatalf("problems: %s", p)
	}
}

// The same history where the runner froze a's process (SIGSTOP at 220,
// SIGCONT at 2990): a frozen-process overlap, reported apart, and the
// refusal is what the fenced store is for.
func TestFrozenProcessOverlapIsReportedApart(t *testing.T) {
	r := Check(pausedLeader().freeze("a", 220, 2990).window(0, 3100))
	if len(r.LeadOverlaps) != 0 || len(r.FrozenOverlaps) != 1 || r.FrozenOverlaps[0].Duration != 110*time.Millisecond {
		t.Fatalf("lead overlaps %+v frozen %+v, want one frozen of 110ms", r.LeadOverlaps, r.FrozenOverlaps)
	}
	if r.RefusedUnfrozen != 0 || !r.Safe() {
		t.Fatalf("refused unfrozen %d safe %v: %v", r.RefusedUnfrozen, r.Safe(), r.Problems())
	}
	// A freeze after the successor began does not excuse the overlap: a
	// was still leading, unfrozen, when b began.
	r = Check(pausedLeader().freeze("a", 2350, 2990).window(0, 3100))
	if len(r.LeadOverlaps) != 1 || len(r.FrozenOverlaps) != 0 {
		t.Fatalf("late freeze: lead overlaps %+v frozen %+v, want one plain", r.LeadOverlaps, r.FrozenOverlaps)
	}
	// A freeze of another process excuses nothing.
	r = Check(pausedLeader().freeze("b", 220, 2990).window(0, 3100))
	if len(r.LeadOverlaps) != 1 || r.Safe() {
		t.Fatalf("freeze of b: lead overlaps %+v safe %v", r.LeadOverlaps, r.Safe())
	}
}

// A work function that reports its return before its last write was
// decided, or never reports its start, misreports its interval: the
// checker widens the interval to hold the unit and says so.
func TestMisreportedIntervals(t *testing.T) {
	h := (&hist{}).
		lead("a", 1, 10, 90, 160). // returns at 160 ...
		unit("a", 1, 10, 100, 150, true).
		unit("a", 1, 10, 200, 3000, false). // ... but wrote until 3000
		lead("b", 1, 20, 2290, 2400).
		unit("b", 1, 20, 2300, 2350, true).
		unit("c", 1, 30, 3100, 3150, true). // no lead-start at all
		window(0, 3200)
	r := Check(h)
	if r.Misreported != 2 || len(r.LeadOverlaps) != 1 || r.LeadOverlaps[0].Earlier.End != 3000*ms || r.Safe() {
		t.Fatalf("misreported %d, lead overlaps %+v, safe %v", r.Misreported, r.LeadOverlaps, r.Safe())
	}
}

// A killed process never reports its return: its interval lasts until the
// runner reaped it, and a successor that began before then overlaps.
func TestKilledLeaderLeadsUntilReaped(t *testing.T) {
	h := (&hist{}).
		lead("a", 1, 10, 90, 0).
		unit("a", 1, 10, 100, 150, true).
		gone("a", 2310).
		lead("b", 1, 20, 2300, 2400).
		unit("b", 1, 20, 2300, 2350, true).
		window(0, 2500)
	r := Check(h)
	if len(r.LeadOverlaps) != 1 || r.LeadOverlaps[0].Duration != 10*time.Millisecond || !r.LeadOverlaps[0].Earlier.Open {
		t.Fatalf("lead overlaps %+v, want a open until 2310, 10ms", r.LeadOverlaps)
	}
	h = (&hist{}).
		lead("a", 1, 10, 90, 0).
		unit("a", 1, 10, 100, 150, true).
		gone("a", 160).
		lead("b", 1, 20, 2300, 2400).
		unit("b", 1, 20, 2300, 2350, true).
		window(0, 2500)
	if r := Check(h); !r.Safe() {
		t.Fatalf("reaped before the successor began: %v", r.Problems())
	}
}

// Refused writes of a term that overlaps no other term cannot happen if
// intervals are reported right; the checker flags them rather than trust
// the intervals.
func TestUnexplainedRefusal(t *testing.T) {
	h := (&hist{}).
		lead("a", 1, 10, 90, 210).
		unit("a", 1, 10, 100, 200, false).
		window(0, 300)
	r := Check(h)
	if r.UnexplainedRefusals != 1 || r.Safe() {
		t.Fatalf("unexplained %d safe %v", r.UnexplainedRefusals, r.Safe())
	}
}

func TestInterleavedTermsOverlap(t *testing.T) {
	// a works, b works, a works again: a's span contains b's.
	h := (&hist{}).
		unit("a", 1, 10, 100, 150, true).
		unit("b", 1, 20, 160, 170, true).
		unit("a", 1, 10, 180, 190, true).
		window(0, 200)
	if r := Check(h); len(r.AcceptedOverlaps) != 1 || r.AcceptedOverlaps[0].Duration != 10*time.Millisecond ||
		len(r.LeadOverlaps) != 1 || r.LeadOverlaps[0].Duration != 10*time.Millisecond {
		t.Fatalf("overlaps %+v, lead overlaps %+v, want b's 10ms inside a", r.AcceptedOverlaps, r.LeadOverlaps)
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
