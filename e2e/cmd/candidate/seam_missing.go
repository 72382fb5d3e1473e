//go:build !clockseam

package main

import (
	"errors"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/chaos/driftclock"
)

// haveClockSeam: this build cannot run leadership's elector on a drifting
// clock. The library builds its elector's clock in (New uses the real
// clock); the hook it needs is leadership.NewWithClock, compiled in with
// -tags clockseam (seam.go).
const haveClockSeam = false

var errNoClockSeam = errors.New("this candidate was built without the library's clock seam (leadership.NewWithClock): build it with -tags clockseam, which needs a library that exports that hook")

func newElectorWithClock(leadership.Lock, leadership.Config, *driftclock.Clock) (*leadership.Elector, error) {
	return nil, errNoClockSeam
}
