package chaos

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// WriteMarkdown writes a scenario's result as a markdown table, one column
// per fleet.
func WriteMarkdown(w io.Writer, res *Result) error {
	var b strings.Builder
	o := res.Options
	fmt.Fprintf(&b, "### %s: %s\n\n", res.Scenario.Name, res.Scenario.Title)
	size := fmt.Sprintf("%d candidates per fleet", o.Candidates)
	if res.Scenario.Mixed {
		size = fmt.Sprintf("one fleet of %d candidates", mixedSize(o))
	}
	fmt.Fprintf(&b, "Lease %v, %s, units of work of %v; took %v.\n\n",
		o.LeaseDuration, size, o.Tick, res.Took.Round(time.Second))
	if res.Scenario.Drift {
		fmt.Fprintf(&b, "Clock rates of leadership's candidates: one %v, the others %v.\n\n", 1+o.ClockDrift/2, 1-o.ClockDrift/2)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "Note: %s.\n\n", n)
	}
	if len(res.Fleets) == 0 {
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("| |")
	for _, f := range res.Fleets {
		fmt.Fprintf(&b, " %s |", f.Label)
	}
	b.WriteString("\n|---|")
	for range res.Fleets {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	row := func(name string, cell func(checker.Report) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, f := range res.Fleets {
			fmt.Fprintf(&b, " %s |", cell(f.Report))
		}
		b.WriteString("\n")
	}
	row("faults injected", func(r checker.Report) string { return fmt.Sprint(r.Faults) })
	row("transitions (new terms)", func(r checker.Report) string { return fmt.Sprint(r.Transitions) })
	row("lead intervals (calls of the work function)", func(r checker.Report) string { return fmt.Sprint(len(r.Intervals)) })
	row("**overlapping lead intervals** (total time)", func(r checker.Report) string {
		return fmt.Sprintf("**%d** (%v)", len(r.LeadOverlaps), r.LeadOverlapTime().Round(time.Millisecond))
	})
	if res.Scenario.Mixed {
		for _, impl := range []string{ledger.ImplLeadership, ledger.ImplClientGo} {
			row("– of them after a "+impl+" term", func(r checker.Report) string { return fmt.Sprint(r.OverlapsAfter(impl)) })
		}
	}
	if res.Scenario.Frozen || anyReport(res, func(r checker.Report) bool { return len(r.FrozenOverlaps) > 0 }) {
		row("frozen-process overlaps (SIGSTOP past the lease; only fencing helps)", func(r checker.Report) string {
			return fmt.Sprintf("%d (%v)", len(r.FrozenOverlaps), r.FrozenOverlapTime().Round(time.Millisecond))
		})
	}
	row("**writes refused outside frozen processes**", func(r checker.Report) string { return fmt.Sprintf("**%d**", r.RefusedUnfrozen) })
	if anyReport(res, func(r checker.Report) bool { return r.Misreported > 0 || r.UnexplainedRefusals > 0 }) {
		row("**lead intervals misreported / refusals unexplained**", func(r checker.Report) string {
			return fmt.Sprintf("**%d / %d**", r.Misreported, r.UnexplainedRefusals)
		})
	}
	row("units of work accepted", func(r checker.Report) string { return fmt.Sprint(r.Accepted) })
	row("overlaps of accepted work (total time)", func(r checker.Report) string {
		return fmt.Sprintf("%d (%v)", len(r.AcceptedOverlaps), r.AcceptedOverlapTime().Round(time.Millisecond))
	})
	row("**stale writes accepted**", func(r checker.Report) string { return fmt.Sprintf("**%d**", r.StaleAccepted) })
	row("**fencing tokens not increasing**", func(r checker.Report) string { return fmt.Sprintf("**%d**", len(r.Violations)) })
	row("stale writes refused by the fenced store (all)", func(r checker.Report) string { return fmt.Sprint(r.Refused) })
	row("takeover after the fault: p50 / p99 / max", func(r checker.Report) string {
		if len(r.Takeovers) == 0 {
			return "–"
		}
		return fmt.Sprintf("%v / %v / %v", ms(r.Percentile(50)), ms(r.Percentile(99)), ms(r.MaxTakeover()))
	})
	row("faults the leader survived / without a new leader", func(r checker.Report) string {
		return fmt.Sprintf("%d / %d", r.Kept, r.Missed)
	})
	row("time without a leader (longest gap)", func(r checker.Report) string {
		return fmt.Sprintf("%v of %v (%v)", ms(r.Leaderless), ms(r.Window), ms(r.MaxGap))
	})
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func anyReport(res *Result, p func(checker.Report) bool) bool {
	for _, f := range res.Fleets {
		if p(f.Report) {
			return true
		}
	}
	return false
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// WriteSummary writes totals over results per fleet label.
func WriteSummary(w io.Writer, results []*Result) error {
	type total struct {
		faults, transitions, intervals, leadOverlaps, frozenOverlaps, refusedUnfrozen int
		accepted, overlaps, stale, violations, refused, missed                        int
		takeovers                                                                     []time.Duration
	}
	var order []string
	totals := map[string]*total{}
	for _, res := range results {
		for _, f := range res.Fleets {
			label := f.Label
			if res.Scenario.Mixed {
				label = "mixed"
			}
			t := totals[label]
			if t == nil {
				t = &total{}
				totals[label] = t
				order = append(order, label)
			}
			r := f.Report
			t.faults += r.Faults
			t.transitions += r.Transitions
			t.intervals += len(r.Intervals)
			t.leadOverlaps += len(r.LeadOverlaps)
			t.frozenOverlaps += len(r.FrozenOverlaps)
			t.refusedUnfrozen += r.RefusedUnfrozen
			t.accepted += r.Accepted
			t.overlaps += len(r.AcceptedOverlaps)
			t.stale += r.StaleAccepted
			t.violations += len(r.Violations)
			t.refused += r.Refused
			t.missed += r.Missed
			t.takeovers = append(t.takeovers, r.Takeovers...)
		}
	}
	var b strings.Builder
	b.WriteString("### all scenarios\n\n| |")
	for _, l := range order {
		fmt.Fprintf(&b, " %s |", l)
	}
	b.WriteString("\n|---|")
	for range order {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	row := func(name string, cell func(*total) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, l := range order {
			fmt.Fprintf(&b, " %s |", cell(totals[l]))
		}
		b.WriteString("\n")
	}
	row("faults injected", func(t *total) string { return fmt.Sprint(t.faults) })
	row("transitions", func(t *total) string { return fmt.Sprint(t.transitions) })
	row("lead intervals", func(t *total) string { return fmt.Sprint(t.intervals) })
	row("**overlapping lead intervals**", func(t *total) string { return fmt.Sprintf("**%d**", t.leadOverlaps) })
	row("frozen-process overlaps", func(t *total) string { return fmt.Sprint(t.frozenOverlaps) })
	row("**writes refused outside frozen processes**", func(t *total) string { return fmt.Sprintf("**%d**", t.refusedUnfrozen) })
	row("units of work accepted", func(t *total) string { return fmt.Sprint(t.accepted) })
	row("overlaps of accepted work", func(t *total) string { return fmt.Sprint(t.overlaps) })
	row("**stale writes accepted**", func(t *total) string { return fmt.Sprintf("**%d**", t.stale) })
	row("**fencing tokens not increasing**", func(t *total) string { return fmt.Sprintf("**%d**", t.violations) })
	row("stale writes refused (all)", func(t *total) string { return fmt.Sprint(t.refused) })
	row("faults without a new leader", func(t *total) string { return fmt.Sprint(t.missed) })
	row("takeover max (all faults)", func(t *total) string {
		r := checker.Report{Takeovers: t.takeovers}
		return ms(r.MaxTakeover())
	})
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
