package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Local is the ledger of candidates that run in this process (the
// integration tests, the bench): each call of a work function is a Term,
// recorded as lead-start and lead-end events, and its units of work are
// fenced writes, all in a Store under one fleet. Its History is judged by
// the checker exactly as a chaos fleet's is; it is safe for concurrent use.
type Local struct {
	store *Store
	fleet string
	pid   int
	start Mono

	mu    sync.Mutex
	terms map[string]int // identity → terms begun
}

// NewLocal returns an empty ledger for the fleet (one Lease: one fleet).
func NewLocal(fleet string) *Local {
	return &Local{store: NewStore(), fleet: fleet, pid: os.Getpid(), start: Now(), terms: map[string]int{}}
}

// Replica records the terms of one in-process candidate.
type Replica struct {
	l        *Local
	identity string
	impl     string
	space    string
}

// Replica returns the recorder of the candidate identity, which runs impl
// (ImplLeadership or ImplClientGo), or an error saying what is wrong.
func (l *Local) Replica(identity, impl string) (*Replica, error) {
	space := SpaceResourceVersion
	switch {
	case l.fleet == "":
		return nil, errors.New("ledger: the fleet has no name: give NewLocal the Lease's")
	case identity == "":
		return nil, errors.New("ledger: a replica needs an identity")
	case impl == ImplClientGo:
		space = SpaceLeaseTransitions
	case impl != ImplLeadership:
		return nil, fmt.Errorf("ledger: implementation %q of %s: want %q or %q", impl, identity, ImplLeadership, ImplClientGo)
	}
	return &Replica{l: l, identity: identity, impl: impl, space: space}, nil
}

// Term is one call of an in-process candidate's work function.
type Term struct {
	r      *Replica
	number int
	token  uint64
}

// Begin records that the replica's work function was called, with the
// term's fencing token (0 if the implementation has none). Call it first
// thing in the work function, and End as it returns.
func (r *Replica) Begin(token uint64) *Term {
	r.l.mu.Lock()
	r.l.terms[r.identity]++
	t := &Term{r: r, number: r.l.terms[r.identity], token: token}
	r.l.mu.Unlock()
	t.event(EventLeadStart)
	return t
}

// Unit records one unit of work of the term: a write to the fenced store
// under the term's token, begun and sent now. It reports whether the store
// accepted it; a refusal is recorded, and the checker judges it.
func (t *Term) Unit() (accepted bool) {
	r, now := t.r, Now()
	// Replica validated the write's fields; its times are now: the store
	// cannot find it malformed.
	res, _ := r.l.store.Apply(Write{Fleet: r.l.fleet, Impl: r.impl, Identity: r.identity, PID: r.l.pid,
		Term: t.number, Space: r.space, Token: t.token, Begin: now, Sent: now})
	return res.Accepted
}

// End records that the work function returned.
func (t *Term) End() { t.event(EventLeadEnd) }

func (t *Term) event(kind string) {
	r := t.r
	// Replica validated everything AddEvent checks but the time, which
	// CLOCK_MONOTONIC keeps positive: the event cannot be refused.
	_ = r.l.store.AddEvent(Event{Fleet: r.l.fleet, Impl: r.impl, Identity: r.identity, PID: r.l.pid,
		Kind: kind, Term: t.number, Token: t.token, At: Now()})
}

// Lead is one term as a test sees it while it runs: who, and when its
// work function was called and returned.
type Lead struct {
	Identity string
	Term     int
	Token    uint64
	Start    Mono
	// End is valid only if !Open.
	End  Mono
	Open bool
}

// Leads returns the terms begun so far, in order of start.
func (l *Local) Leads() []Lead {
	ls, _ := l.snapshot()
	return ls
}

// snapshot returns the terms begun so far and the channel that the next
// change of the store closes, read together.
func (l *Local) snapshot() ([]Lead, <-chan struct{}) {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	return leads(View{f: l.store.fleets[l.fleet]}.Events()), l.store.changed
}

func leads(evs []Event) []Lead {
	type key struct {
		identity string
		term     int
	}
	var out []Lead
	at := map[key]int{} // index in out
	for _, e := range evs {
		k := key{e.Identity, e.Term}
		switch e.Kind {
		case EventLeadStart:
			at[k] = len(out)
			out = append(out, Lead{Identity: e.Identity, Term: e.Term, Token: e.Token, Start: e.At, Open: true})
		case EventLeadEnd:
			if i, ok := at[k]; ok {
				out[i].End, out[i].Open = e.At, false
			}
		}
	}
	// Events are stamped before they are stored: two begun at once may be
	// stored out of order.
	slices.SortStableFunc(out, func(a, b Lead) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// Active returns the identities whose work function runs now.
func (l *Local) Active() []string {
	var out []string
	for _, ld := range l.Leads() {
		if ld.Open {
			out = append(out, ld.Identity)
		}
	}
	return out
}

// Last returns the term begun last by identity, or by anyone if identity
// is empty.
func (l *Local) Last(identity string) (Lead, bool) {
	ls := l.Leads()
	for i := len(ls) - 1; i >= 0; i-- {
		if identity == "" || ls[i].Identity == identity {
			return ls[i], true
		}
	}
	return Lead{}, false
}

// History returns what was recorded, for the checker. Its window runs from
// NewLocal to now, so that a term still running is judged as running now.
func (l *Local) History() History {
	h := l.store.History(l.fleet)
	h.Start, h.End = l.start, Now()
	return h
}

// Await returns once cond holds for the terms begun so far, checking it on
// every change of the ledger and every poll (for conditions that also look
// outside it), or an error saying what was awaited after timeout.
func (l *Local) Await(ctx context.Context, timeout, poll time.Duration, what string, cond func([]Lead) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		ls, ch := l.snapshot()
		if cond(ls) {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
