//go:build clockseam

package main

import (
	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/chaos/driftclock"
)

// haveClockSeam: this build runs leadership's elector on a drifting clock
// through the library's test hook. The chaos runner builds with
// -tags clockseam and, where the library lacks the hook, reports the
// compiler's "undefined: leadership.NewWithClock" as the missing seam.
const haveClockSeam = true

// errNoClockSeam is never returned by this build.
var errNoClockSeam error

func newElectorWithClock(lock leadership.Lock, cfg leadership.Config, clk *driftclock.Clock) (*leadership.Elector, error) {
	return leadership.NewWithClock(lock, cfg, clk.Elector())
}
