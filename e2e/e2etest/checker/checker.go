// Package checker judges a fleet's history from the ledger (a chaos
// fleet's, or in-process candidates' recorded through ledger.Local): did
// the lead intervals of two terms ever overlap, did the accepted work of
// two terms overlap, did fencing tokens increase from term to term, how
// many stale writes did the fenced store refuse, how long did takeovers
// take and how long was the fleet without a leader.
//
// The definitions (docs/RELIABILITY.md states them for readers):
//
//   - A lead interval is one call of a candidate's work function: from its
//     start (the lead-start event, stamped by the candidate as the call
//     begins) to its return (lead-end); if the process never reported the
//     return because it was killed, to the moment the runner reaped it.
//     Every unit of the term, accepted or refused, lies inside it.
//   - Two lead intervals overlap if they intersect: two candidates led at
//     once. This is the judgment of leadership's promise. An overlap whose
//     earlier interval's process was stopped whole (SIGSTOP, recorded by
//     the runner as a Freeze) before the later one began is a frozen-
//     process overlap, reported apart: no lease can stop a process that
//     resumes after its lease ran out; only a fenced store can refuse what
//     it then writes.
//   - A refused write outside a frozen interval is a violation too: the
//     store refuses a write only after it accepted a higher token, so the
//     writer worked after its successor had begun.
//   - A unit of work is one tick of a leader: it begins (Begin, stamped by
//     the candidate) and ends with a fenced write. It is accepted if the
//     store accepted its write, at the store's time At.
//   - A term is one call of a candidate's work function, identified by
//     (identity, process id, term number in that process). Its span is
//     [Begin of its first accepted unit, At of its last accepted write];
//     a term without accepted units has no span and did nothing the store
//     kept.
//   - Two terms' accepted work overlaps if their spans intersect. Refused
//     units are not part of any span: a refused write changed nothing in
//     the store (but it is part of its lead interval).
//   - A stale write was accepted if the store accepted it after the next
//     term (in order of span start) had already begun.
//   - Tokens fail to increase if, in order of span start and within one
//     token space, a term's token is not greater than the previous term's.
//   - A takeover is measured from a fault to the start of the first lead
//     interval that begins after it (and before the next fault).
//   - Time without a leader is the part of the scenario window that no
//     term's span covers.
//
// All times are CLOCK_MONOTONIC readings shared by the processes on one
// host.
package checker

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// TermKey identifies a term.
type TermKey struct {
	Identity string
	PID      int
	Term     int
}

func (k TermKey) String() string { return fmt.Sprintf("%s[pid %d]#%d", k.Identity, k.PID, k.Term) }

// Term is one term as the store saw it.
type Term struct {
	Key   TermKey
	Impl  string
	Space string
	Token uint64
	// Start and End bound the span; valid only if Accepted > 0.
	Start, End ledger.Mono
	Accepted   int
	Refused    int
}

// Overlap is two terms whose spans of accepted work intersect.
type Overlap struct {
	Earlier, Later Term
	Duration       time.Duration
}

// Violation is a term whose token did not exceed its predecessor's.
type Violation struct {
	Previous, Term Term
}

// Report is the verdict on one fleet's history.
type Report struct {
	Fleet string
	// Impls lists the implementations seen, sorted.
	Impls []string
	// Terms with at least one accepted unit.
	Terms []Term
	// Transitions counts lead intervals that began inside the scenario
	// window and had a predecessor.
	Transitions int
	Accepted    int
	// Refused counts stale writes the store refused.
	Refused int
	// RefusedUnfrozen counts refused writes of lead intervals whose process
	// was never stopped: work done after a successor began, by a process
	// nothing froze.
	RefusedUnfrozen int
	// StaleAccepted counts writes accepted after a newer term had begun.
	StaleAccepted int
	// AcceptedOverlaps are terms whose spans of accepted work intersect.
	AcceptedOverlaps []Overlap
	// Intervals are the lead intervals, sorted by start.
	Intervals []Interval
	// LeadOverlaps are intersecting lead intervals, frozen processes' apart
	// in FrozenOverlaps.
	LeadOverlaps, FrozenOverlaps []LeadOverlap
	// UnexplainedRefusals counts refused writes of terms that overlap no
	// other term, and Misreported the intervals whose start was not
	// reported or that did not hold their own units: either means the lead
	// intervals cannot be trusted.
	UnexplainedRefusals, Misreported int
	Violations                       []Violation
	Faults                           int
	// Takeovers holds one sample per fault followed by a new term.
	Takeovers []time.Duration
	// Missed counts faults that required a takeover and saw none before
	// the next fault or the end; Kept counts faults after which the leader
	// kept its term, as it may.
	Missed, Kept int
	// Leaderless is the scenario time no span covers; MaxGap its longest
	// stretch.
	Leaderless, MaxGap time.Duration
	// Window is the scenario's length.
	Window time.Duration
}

// Check computes the Report of h.
func Check(h ledger.History) Report {
	r := Report{Fleet: h.Fleet, Faults: len(h.Faults)}
	terms := map[TermKey]*Term{}
	impls := map[string]bool{}
	for _, rec := range h.Records {
		k := TermKey{Identity: rec.Identity, PID: rec.PID, Term: rec.Term}
		t := terms[k]
		if t == nil {
			t = &Term{Key: k, Impl: rec.Impl, Space: rec.Space, Token: rec.Token}
			terms[k] = t
		}
		impls[rec.Impl] = true
		if !rec.Accepted {
			t.Refused++
			r.Refused++
			continue
		}
		r.Accepted++
		if t.Accepted == 0 || rec.Begin < t.Start {
			t.Start = rec.Begin
		}
		if t.Accepted == 0 || rec.At > t.End {
			t.End = rec.At
		}
		t.Accepted++
	}
	for i := range impls {
		r.Impls = append(r.Impls, i)
	}
	slices.Sort(r.Impls)
	for _, t := range terms {
		if t.Accepted > 0 {
			r.Terms = append(r.Terms, *t)
		}
	}
	slices.SortFunc(r.Terms, func(a, b Term) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.End, b.End)
	})

	r.AcceptedOverlaps = overlaps(r.Terms)
	r.Intervals = intervals(h)
	r.LeadOverlaps, r.FrozenOverlaps = leadOverlaps(r.Intervals)
	r.UnexplainedRefusals = unexplainedRefusals(r.Intervals, r.LeadOverlaps, r.FrozenOverlaps)
	for _, iv := range r.Intervals {
		if !iv.Frozen() {
			r.RefusedUnfrozen += iv.Refused
		}
		if iv.NoStart || iv.Stretched > 0 {
			r.Misreported++
		}
	}
	r.StaleAccepted = staleAccepted(h.Records, r.Terms)
	r.Violations = violations(r.Terms)
	// Transitions and takeovers count lead intervals: a new leader leads
	// whatever the store makes of its token (client-go's restart at 0 when
	// the Lease is re-created, and all its work is refused for a while).
	starts := make([]ledger.Mono, len(r.Intervals))
	for i, iv := range r.Intervals {
		starts[i] = iv.Start
		if i > 0 && iv.Start >= h.Start && (h.End == 0 || iv.Start < h.End) {
			r.Transitions++
		}
	}
	r.Takeovers, r.Missed, r.Kept = takeovers(h.Faults, starts, h.End)
	if h.End > h.Start {
		r.Window = h.End.Sub(h.Start)
		r.Leaderless, r.MaxGap = uncovered(r.Terms, h.Start, h.End)
	}
	return r
}

func overlaps(terms []Term) []Overlap {
	var out []Overlap
	for i, a := range terms {
		for _, b := range terms[i+1:] {
			if b.Start >= a.End {
				break // sorted by start: no later term reaches into a
			}
			out = append(out, Overlap{Earlier: a, Later: b, Duration: min(a.End, b.End).Sub(b.Start)})
		}
	}
	return out
}

func staleAccepted(recs []ledger.Record, terms []Term) int {
	next := map[TermKey]ledger.Mono{}
	for i := range len(terms) - 1 {
		next[terms[i].Key] = terms[i+1].Start
	}
	n := 0
	for _, rec := range recs {
		if !rec.Accepted {
			continue
		}
		if s, ok := next[TermKey{Identity: rec.Identity, PID: rec.PID, Term: rec.Term}]; ok && rec.At > s {
			n++
		}
	}
	return n
}

func violations(terms []Term) []Violation {
	var out []Violation
	last := map[string]Term{}
	for _, t := range terms {
		if p, ok := last[t.Space]; ok && t.Token <= p.Token {
			out = append(out, Violation{Previous: p, Term: t})
		}
		last[t.Space] = t
	}
	return out
}

// takeovers measures each fault to the first of starts (sorted) after it
// and before the next fault.
func takeovers(faults []ledger.Fault, starts []ledger.Mono, end ledger.Mono) (samples []time.Duration, missed, kept int) {
	fs := slices.Clone(faults)
	slices.SortFunc(fs, func(a, b ledger.Fault) int { return cmp.Compare(a.At, b.At) })
	for i, f := range fs {
		limit := ledger.Mono(math.MaxInt64)
		if i+1 < len(fs) {
			limit = fs[i+1].At
		} else if end > 0 {
			limit = end
		}
		found := false
		for _, st := range starts {
			if st > f.At && st <= limit {
				samples = append(samples, st.Sub(f.At))
				found = true
				break
			}
		}
		switch {
		case found:
		case f.ExpectTakeover:
			missed++
		default:
			kept++
		}
	}
	return samples, missed, kept
}

// uncovered returns how much of [start, end) no span covers, and the
// longest such stretch.
func uncovered(terms []Term, start, end ledger.Mono) (total, longest time.Duration) {
	at := start // everything before at is accounted for
	for _, t := range terms {
		if t.End <= at {
			continue
		}
		if t.Start >= end {
			break
		}
		if t.Start > at {
			gap := t.Start.Sub(at)
			total += gap
			longest = max(longest, gap)
		}
		at = max(at, t.End)
		if at >= end {
			return total, longest
		}
	}
	gap := end.Sub(at)
	return total + gap, max(longest, gap)
}

// OverlapsAfter counts lead overlaps (frozen processes' excluded) whose
// earlier interval ran impl: an overlap is the fault of the term that kept
// working, not of the one that started.
func (r Report) OverlapsAfter(impl string) int {
	n := 0
	for _, o := range r.LeadOverlaps {
		if o.Earlier.Impl == impl {
			n++
		}
	}
	return n
}

// LeadOverlapTime is the total time of the lead overlaps (frozen
// processes' excluded).
func (r Report) LeadOverlapTime() time.Duration {
	var d time.Duration
	for _, o := range r.LeadOverlaps {
		d += o.Duration
	}
	return d
}

// FrozenOverlapTime is the total time of the frozen processes' overlaps.
func (r Report) FrozenOverlapTime() time.Duration {
	var d time.Duration
	for _, o := range r.FrozenOverlaps {
		d += o.Duration
	}
	return d
}

// AcceptedOverlapTime is the total overlapping time of accepted work.
func (r Report) AcceptedOverlapTime() time.Duration {
	var d time.Duration
	for _, o := range r.AcceptedOverlaps {
		d += o.Duration
	}
	return d
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of the
// takeover samples, or 0 without samples.
func (r Report) Percentile(p float64) time.Duration {
	if len(r.Takeovers) == 0 {
		return 0
	}
	s := slices.Clone(r.Takeovers)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// MaxTakeover is the longest takeover, or 0 without samples.
func (r Report) MaxTakeover() time.Duration {
	if len(r.Takeovers) == 0 {
		return 0
	}
	return slices.Max(r.Takeovers)
}

// Safe reports whether the history shows no overlapping lead intervals
// (frozen processes' excepted), no refused write outside a frozen
// interval, no overlap of accepted work, no stale write accepted, no token
// that failed to increase, and lead intervals that can be trusted.
func (r Report) Safe() bool {
	return len(r.LeadOverlaps) == 0 && r.RefusedUnfrozen == 0 && len(r.AcceptedOverlaps) == 0 &&
		r.StaleAccepted == 0 && len(r.Violations) == 0 && r.UnexplainedRefusals == 0 && r.Misreported == 0
}

// Problems lists what is wrong, one line each, for a test failure or a log.
func (r Report) Problems() []string {
	var out []string
	for _, o := range r.LeadOverlaps {
		out = append(out, o.String())
	}
	if r.RefusedUnfrozen > 0 {
		out = append(out, fmt.Sprintf("%d writes refused by the fenced store from lead intervals of processes that were never frozen", r.RefusedUnfrozen))
	}
	if r.UnexplainedRefusals > 0 {
		out = append(out, fmt.Sprintf("%d refused writes belong to terms that overlap no other: the lead intervals were misreported", r.UnexplainedRefusals))
	}
	if r.Misreported > 0 {
		out = append(out, fmt.Sprintf("%d lead intervals without a reported start or not holding their own units of work", r.Misreported))
	}
	for _, o := range r.AcceptedOverlaps {
		out = append(out, fmt.Sprintf("overlap of accepted work of %v: %s (%s, token %d, span ends %d) still had work accepted after %s (%s, token %d) began at %d",
			o.Duration, o.Earlier.Key, o.Earlier.Impl, o.Earlier.Token, o.Earlier.End, o.Later.Key, o.Later.Impl, o.Later.Token, o.Later.Start))
	}
	if r.StaleAccepted > 0 {
		out = append(out, fmt.Sprintf("%d writes accepted after a newer term had begun", r.StaleAccepted))
	}
	for _, v := range r.Violations {
		out = append(out, fmt.Sprintf("token did not increase: %s (%s) has token %d after %s (%s) with token %d",
			v.Term.Key, v.Term.Impl, v.Term.Token, v.Previous.Key, v.Previous.Impl, v.Previous.Token))
	}
	if r.Missed > 0 {
		out = append(out, fmt.Sprintf("%d faults were not followed by a new leader", r.Missed))
	}
	return out
}
