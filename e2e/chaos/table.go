package chaos

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leadership-dev/leadership/e2e/chaos/checker"
	"github.com/leadership-dev/leadership/e2e/chaos/ledger"
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
	row("units of work accepted", func(r checker.Report) string { return fmt.Sprint(r.Accepted) })
	row("**overlaps of accepted work** (total time)", func(r checker.Report) string {
		return fmt.Sprintf("**%d** (%v)", len(r.Overlaps), r.OverlapTime().Round(time.Millisecond))
	})
	if res.Scenario.Mixed {
		for _, impl := range []string{ledger.ImplLeadership, ledger.ImplClientGo} {
			row("– of them after a "+impl+" term", func(r checker.Report) string { return fmt.Sprint(r.OverlapsAfter(impl)) })
		}
	}
	row("**stale writes accepted**", func(r checker.Report) string { return fmt.Sprintf("**%d**", r.StaleAccepted) })
	row("**fencing tokens not increasing**", func(r checker.Report) string { return fmt.Sprintf("**%d**", len(r.Violations)) })
	row("stale writes refused by the fenced store", func(r checker.Report) string { return fmt.Sprint(r.Refused) })
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
		faults, transitions, accepted, overlaps, stale, violations, refused, missed int
		takeovers                                                                   []time.Duration
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
			t.accepted += r.Accepted
			t.overlaps += len(r.Overlaps)
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
	row("units of work accepted", func(t *total) string { return fmt.Sprint(t.accepted) })
	row("**overlaps of accepted work**", func(t *total) string { return fmt.Sprintf("**%d**", t.overlaps) })
	row("**stale writes accepted**", func(t *total) string { return fmt.Sprintf("**%d**", t.stale) })
	row("**fencing tokens not increasing**", func(t *total) string { return fmt.Sprintf("**%d**", t.violations) })
	row("stale writes refused", func(t *total) string { return fmt.Sprint(t.refused) })
	row("faults without a new leader", func(t *total) string { return fmt.Sprint(t.missed) })
	row("takeover max (all faults)", func(t *total) string {
		r := checker.Report{Takeovers: t.takeovers}
		return ms(r.MaxTakeover())
	})
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
