// Package ledger is the fenced store and the history recorder of the e2e
// tests. The chaos suite's candidates, which run as separate OS processes,
// send it every unit of leader work as a fenced write over HTTP on
// 127.0.0.1; in-process candidates (the integration tests, the bench)
// record into it through a Local. The store refuses a write whose fencing
// token is lower than the highest it has accepted for the same resource,
// and records every write, accepted or not, with the moment it decided. The
// checker reads the history afterwards.
//
// All timestamps are CLOCK_MONOTONIC nanoseconds (see Now), a clock that
// every process on one host shares, so that the begin of a unit stamped in
// one process and the acceptance stamped here are comparable.
//
// The package depends only on the standard library and x/sys, so that the
// candidate binary stays small.
package ledger

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Mono is a CLOCK_MONOTONIC reading in nanoseconds.
type Mono int64

// Now reads CLOCK_MONOTONIC. Go's time.Now carries a monotonic reading too,
// but does not expose its absolute value, which is what makes readings of
// different processes comparable.
func Now() Mono {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC exists on every Linux the suite runs on; a
		// failure here means the platform cannot run the suite at all.
		panic(fmt.Sprintf("ledger: clock_gettime(CLOCK_MONOTONIC): %v", err))
	}
	return Mono(ts.Nano())
}

// Sub returns m-o as a duration.
func (m Mono) Sub(o Mono) time.Duration { return time.Duration(m - o) }

// Add returns m+d.
func (m Mono) Add(d time.Duration) Mono { return m + Mono(d) }

// Time returns the wall-clock time of m in this process, by the offset
// between the two clocks now: for comparing a reading with a time another
// component wrote (a Lease's renewTime), not for ordering readings.
func (m Mono) Time() time.Time {
	now, mono := time.Now(), Now()
	return now.Add(m.Sub(mono))
}

// Token spaces: a store fences each space separately, because tokens of
// different spaces are not comparable.
const (
	// SpaceResourceVersion: leadership's Term.Token, the Lease's
	// resourceVersion at the acquiring write.
	SpaceResourceVersion = "resourceVersion"
	// SpaceLeaseTransitions: the Lease's leaseTransitions as written by
	// the acquiring write, the closest thing client-go offers to a token.
	SpaceLeaseTransitions = "leaseTransitions"
)

// Implementations a candidate runs.
const (
	ImplLeadership = "leadership"
	ImplClientGo   = "client-go"
)

// Write is one unit of leader work, as the candidate reports it: the store
// accepts or refuses it by Token.
type Write struct {
	// Fleet names the resource the fleet's leader writes: one Lease, one
	// fenced resource.
	Fleet    string `json:"fleet"`
	Impl     string `json:"impl"`
	Identity string `json:"identity"`
	PID      int    `json:"pid"`
	// Term numbers the terms of one process from 1.
	Term  int    `json:"term"`
	Space string `json:"space"`
	Token uint64 `json:"token"`
	// Begin is when the unit started; Sent is just before the write was
	// sent.
	Begin Mono `json:"begin"`
	Sent  Mono `json:"sent"`
}

// Validate says what is missing from w.
func (w Write) Validate() error {
	switch {
	case w.Fleet == "":
		return errors.New("fleet is empty")
	case w.Identity == "":
		return errors.New("identity is empty")
	case w.Term < 1:
		return fmt.Errorf("term %d: terms are numbered from 1", w.Term)
	case w.Space != SpaceResourceVersion && w.Space != SpaceLeaseTransitions:
		return fmt.Errorf("token space %q: want %q or %q", w.Space, SpaceResourceVersion, SpaceLeaseTransitions)
	case w.Begin <= 0 || w.Sent < w.Begin:
		return fmt.Errorf("begin %d, sent %d: want 0 < begin <= sent (CLOCK_MONOTONIC ns)", w.Begin, w.Sent)
	}
	return nil
}

// Result is the store's answer to a Write.
type Result struct {
	Accepted bool `json:"accepted"`
	// Highest is the highest token accepted in the write's space,
	// including this one if accepted.
	Highest uint64 `json:"highest"`
	// At is when the store decided.
	At Mono `json:"at"`
}

// Record is a Write with the store's decision.
type Record struct {
	Write
	Result
}

// Event kinds a candidate reports.
const (
	// EventReady: the candidate observed a holder of the Lease, so it is a
	// warm follower.
	EventReady = "ready"
	// EventLeadStart: the elector called the work function (Term, Token).
	EventLeadStart = "lead-start"
	// EventLeadEnd: the work function returned (Detail: the cause).
	EventLeadEnd = "lead-end"
	// EventExit: the process is about to exit after a graceful stop.
	EventExit = "exit"
	// EventGone: the runner reaped the process (recorded by the runner, not
	// the candidate). It bounds a lead interval whose end the process never
	// reported, because it was killed: nothing runs after the reaping.
	EventGone = "gone"
)

// Event is a notable moment of a candidate, for the runner's sequencing
// and for reading a history.
type Event struct {
	Fleet    string `json:"fleet"`
	Impl     string `json:"impl"`
	Identity string `json:"identity"`
	PID      int    `json:"pid"`
	Kind     string `json:"kind"`
	Term     int    `json:"term,omitempty"`
	Token    uint64 `json:"token,omitempty"`
	Detail   string `json:"detail,omitempty"`
	At       Mono   `json:"at"`
}

// Validate says what is missing from e.
func (e Event) Validate() error {
	switch {
	case e.Fleet == "":
		return errors.New("fleet is empty")
	case e.Identity == "":
		return errors.New("identity is empty")
	case e.Kind != EventReady && e.Kind != EventLeadStart && e.Kind != EventLeadEnd && e.Kind != EventExit && e.Kind != EventGone:
		return fmt.Errorf("event kind %q is not one of %s, %s, %s, %s, %s", e.Kind, EventReady, EventLeadStart, EventLeadEnd, EventExit, EventGone)
	case (e.Kind == EventLeadStart || e.Kind == EventLeadEnd) && e.Term < 1:
		return fmt.Errorf("%s event with term %d: terms are numbered from 1", e.Kind, e.Term)
	case e.At <= 0:
		return fmt.Errorf("at %d: want a CLOCK_MONOTONIC reading", e.At)
	}
	return nil
}

// Fault is a fault the runner injected, recorded for the checker: takeover
// times are measured from At.
type Fault struct {
	Fleet string `json:"fleet"`
	Kind  string `json:"kind"`
	// Target is the identity the fault hit ("" for a fault of the whole
	// control plane).
	Target string `json:"target,omitempty"`
	At     Mono   `json:"at"`
	// ExpectTakeover is false for faults after which the leader may
	// legitimately keep its term.
	ExpectTakeover bool `json:"expectTakeover"`
}

// Freeze is a stretch of time during which the runner kept a whole
// candidate process stopped (SIGSTOP ... SIGCONT). A lead interval that
// contains a freeze is a frozen process's: only a fenced store can stop its
// work after it resumes, so the checker reports its overlaps apart.
type Freeze struct {
	Fleet    string `json:"fleet"`
	Identity string `json:"identity"`
	PID      int    `json:"pid"`
	From     Mono   `json:"from"`
	// To is when SIGCONT was sent; 0 while the process is still stopped
	// (then the freeze lasts until the process is gone).
	To Mono `json:"to,omitempty"`
}

// History is everything recorded for one fleet.
type History struct {
	Fleet   string   `json:"fleet"`
	Records []Record `json:"records"`
	Events  []Event  `json:"events"`
	Faults  []Fault  `json:"faults"`
	Freezes []Freeze `json:"freezes,omitempty"`
	// Start and End bound the scenario: transitions and leaderless time
	// are counted inside; safety is checked over everything.
	Start Mono `json:"start"`
	End   Mono `json:"end"`
}
