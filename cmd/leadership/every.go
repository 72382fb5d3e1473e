package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/leadership-dev/leadership"
)

// Keys of the --every schedule in the Lease's values (annotations
// values.leadership.dev/KEY).
const (
	keyStarted  = "every-started"  // RFC 3339 time the last run started
	keyBy       = "every-by"       // identity that started it
	keyFinished = "every-finished" // RFC 3339 time the last run ended
	keyExit     = "every-exit"     // how it ended
)

// jitterFraction is the most a run is delayed beyond the period, as a
// fraction of it.
const jitterFraction = 0.1

// lastRun reads the last run's start from the Lease's values; zero if none
// (or unreadable, which then counts as none: the run is due).
func lastRun(values map[string]string) (time.Time, string) {
	t, err := time.Parse(time.RFC3339Nano, values[keyStarted])
	if err != nil {
		return time.Time{}, ""
	}
	return t, values[keyBy]
}

// nextRun is when the next run is due: every·(1 + jitterFraction·r) after
// the last start, r in [0, 1). Never earlier than every after the last
// start, so runs are at least every apart as the clocks tell; a last start
// in the future (a clock ahead of ours) counts as now.
func nextRun(last time.Time, every time.Duration, now time.Time, r float64) time.Time {
	if last.IsZero() {
		return now
	}
	if last.After(now) {
		last = now
	}
	return last.Add(time.Duration(float64(every) * (1 + jitterFraction*r)))
}

func randFraction() float64 { return rand.Float64() }

// nopLock lets leadership.New fill in a Config's defaults before any
// connection exists; it is never run.
type nopLock struct{}

var errNop = errors.New("not a lock")

func (nopLock) Get(context.Context) (leadership.Record, error) { return leadership.Record{}, errNop }
func (nopLock) Create(context.Context, leadership.Record) (leadership.Record, error) {
	return leadership.Record{}, errNop
}
func (nopLock) Update(context.Context, leadership.Record) (leadership.Record, error) {
	return leadership.Record{}, errNop
}
func (nopLock) Watch(context.Context, uint64) (<-chan leadership.Event, error) { return nil, errNop }
func (nopLock) String() string                                                 { return "nop" }
