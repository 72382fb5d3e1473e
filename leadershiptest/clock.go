package leadershiptest

import (
	"time"

	"github.com/leadership-dev/leadership"
)

// Clock is the time package's clock as a leadership.Clock, for tests in a
// testing/synctest bubble. There the time package's clock is virtual, and
// so is an elector made with leadership.NewWithClock(lock, cfg, Clock{}):
// its renewals, its waits and its boot clock run on the bubble's time, time
// passes only when every goroutine of the bubble waits, and a test asserts
// on exact instants. An elector made with leadership.New cannot run in a
// bubble: its boot-clock timer waits on a timerfd, which the bubble does
// not see, so the bubble's time never moves on.
type Clock struct{}

var _ leadership.Clock = Clock{}

// Now is time.Now.
func (Clock) Now() time.Time { return time.Now() }

// NewTimer is time.NewTimer.
func (Clock) NewTimer(d time.Duration) leadership.Timer { return timer{time.NewTimer(d)} }

type timer struct{ t *time.Timer }

func (t timer) C() <-chan time.Time        { return t.t.C }
func (t timer) Stop() bool                 { return t.t.Stop() }
func (t timer) Reset(d time.Duration) bool { return t.t.Reset(d) }
