package checker

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// Interval is one lead interval: one call of a candidate's work function,
// from its start (lead-start event) to its return (lead-end event). It is
// what leadership promises never to run twice at once, whatever the fenced
// store made of the writes inside it.
type Interval struct {
	Key   TermKey
	Impl  string
	Token uint64
	Start ledger.Mono
	End   ledger.Mono
	// Open: the process never reported the return of its work function
	// (it was killed, or the report was lost); End is then when the runner
	// reaped the process, or the last moment the history knows of.
	Open bool
	// NoStart: no lead-start was reported; Start is the begin of the
	// term's first unit.
	NoStart bool
	// Stretched is 1 if units of the term began before Start or were
	// decided after End: the interval was widened to hold them, and the
	// candidate reported its interval wrongly.
	Stretched int
	// FrozenFrom is when the runner stopped the whole process (SIGSTOP)
	// during this interval; 0 if it never did.
	FrozenFrom ledger.Mono
	Accepted   int
	Refused    int
}

// Frozen reports whether the process was stopped during the interval.
func (iv Interval) Frozen() bool { return iv.FrozenFrom != 0 }

// LeadOverlap is two lead intervals that intersect.
type LeadOverlap struct {
	Earlier, Later Interval
	Duration       time.Duration
	// Frozen: the earlier interval's process was stopped (SIGSTOP) before
	// the later one began, i.e. it was frozen past its lease. No lease can
	// stop such a process from resuming its work; only a fenced store can
	// refuse what it then writes.
	Frozen bool
}

// intervals builds the lead intervals of h and counts, per interval, its
// accepted and refused units. Every unit of a term lies inside the term's
// interval: a refused write is work done too, so an interval is never
// shortened to its accepted part (the old judgment of spans did exactly
// that, and counted a stale term's refused writes as no overlap).
func intervals(h ledger.History) []Interval {
	byKey := map[TermKey]*Interval{}
	var order []TermKey
	get := func(k TermKey, impl string) *Interval {
		iv := byKey[k]
		if iv == nil {
			iv = &Interval{Key: k, Impl: impl, Open: true, NoStart: true}
			byKey[k] = iv
			order = append(order, k)
		}
		return iv
	}
	gone := map[int]ledger.Mono{} // pid → reaped
	last := h.End                 // latest moment the history knows of
	for _, e := range h.Events {
		last = max(last, e.At)
		switch e.Kind {
		case ledger.EventGone:
			gone[e.PID] = e.At
		case ledger.EventLeadStart:
			iv := get(TermKey{Identity: e.Identity, PID: e.PID, Term: e.Term}, e.Impl)
			iv.Start, iv.NoStart, iv.Token = e.At, false, e.Token
		case ledger.EventLeadEnd:
			iv := get(TermKey{Identity: e.Identity, PID: e.PID, Term: e.Term}, e.Impl)
			iv.End, iv.Open = e.At, false
		}
	}
	// Units: each belongs to its term's interval, accepted or not.
	type bounds struct{ first, last ledger.Mono }
	units := map[TermKey]*bounds{}
	for _, r := range h.Records {
		last = max(last, r.At)
		k := TermKey{Identity: r.Identity, PID: r.PID, Term: r.Term}
		iv := get(k, r.Impl)
		if iv.Token == 0 {
			iv.Token = r.Token
		}
		if r.Accepted {
			iv.Accepted++
		} else {
			iv.Refused++
		}
		if u := units[k]; u == nil {
			units[k] = &bounds{r.Begin, r.At}
		} else {
			u.first, u.last = min(u.first, r.Begin), max(u.last, r.At)
		}
	}
	for _, k := range order {
		iv := byKey[k]
		if iv.Open {
			iv.End = last
			if g, ok := gone[k.PID]; ok {
				iv.End = g
			}
		}
		u := units[k]
		if u == nil {
			if iv.NoStart {
				iv.Start = iv.End
			}
			continue
		}
		if iv.NoStart {
			iv.Start = u.first
		}
		if iv.Open {
			// A write in flight when the process was killed may be
			// decided after it was reaped: its work lasted that long.
			iv.End = max(iv.End, u.last)
		}
		if u.first < iv.Start || u.last > iv.End {
			iv.Stretched++
			iv.Start, iv.End = min(iv.Start, u.first), max(iv.End, u.last)
		}
	}
	out := make([]Interval, 0, len(order))
	for _, k := range order {
		iv := *byKey[k]
		for _, fz := range h.Freezes {
			if fz.PID != k.PID {
				continue
			}
			to := fz.To
			if to == 0 {
				to = max(iv.End, fz.From)
			}
			if fz.From <= iv.End && to >= iv.Start && (iv.FrozenFrom == 0 || fz.From < iv.FrozenFrom) {
				iv.FrozenFrom = max(fz.From, iv.Start)
			}
		}
		out = append(out, iv)
	}
	slices.SortFunc(out, func(a, b Interval) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.End, b.End)
	})
	return out
}

// leadOverlaps returns every pair of intersecting intervals, split into
// those of a frozen process and the rest.
func leadOverlaps(ivs []Interval) (plain, frozen []LeadOverlap) {
	for i, a := range ivs {
		for _, b := range ivs[i+1:] {
			if b.Start >= a.End {
				break // sorted by start: no later interval reaches into a
			}
			o := LeadOverlap{Earlier: a, Later: b, Duration: min(a.End, b.End).Sub(b.Start)}
			// a was frozen before b began: a froze past its lease.
			o.Frozen = a.Frozen() && a.FrozenFrom <= b.Start
			if o.Frozen {
				frozen = append(frozen, o)
			} else {
				plain = append(plain, o)
			}
		}
	}
	return plain, frozen
}

// unexplainedRefusals counts refused writes of terms that overlap no other
// term. The store refuses a write only after it accepted a higher token,
// whose term had therefore begun; if the refused writer's interval does
// not overlap any, the intervals were reported wrong and cannot be trusted.
func unexplainedRefusals(ivs []Interval, plain, frozen []LeadOverlap) int {
	involved := map[TermKey]bool{}
	for _, os := range [][]LeadOverlap{plain, frozen} {
		for _, o := range os {
			involved[o.Earlier.Key], involved[o.Later.Key] = true, true
		}
	}
	n := 0
	for _, iv := range ivs {
		if iv.Refused > 0 && !involved[iv.Key] {
			n += iv.Refused
		}
	}
	return n
}

func (o LeadOverlap) String() string {
	kind := "overlap"
	if o.Frozen {
		kind = "frozen-process overlap"
	}
	return fmt.Sprintf("%s of %v: %s (%s, token %d, lead %d..%d%s) still led when %s (%s, token %d) began at %d",
		kind, o.Duration, o.Earlier.Key, o.Earlier.Impl, o.Earlier.Token, o.Earlier.Start, o.Earlier.End, openNote(o.Earlier),
		o.Later.Key, o.Later.Impl, o.Later.Token, o.Later.Start)
}

func openNote(iv Interval) string {
	if iv.Open {
		return ", never returned: ends when the process was gone"
	}
	return ""
}
