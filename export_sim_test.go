package leadership

import (
	"time"

	"k8s.io/utils/clock"
)

// NewSimElector gives the simulation (sim_test.go, an external test
// package) the elector with the clocks it drives. It is the only internal
// the simulation relies on: keep it in step with newElector. The boot-clock
// timer runs on clk too: a timerfd would block outside the bubble's virtual
// time, and the simulation does not model suspend.
func NewSimElector(l Lock, cfg Config, clk clock.WithTicker, boot func() time.Duration) (*Elector, error) {
	e, err := newElector(l, cfg, clk, boot)
	if err != nil {
		return nil, err
	}
	e.newBootTimer = func() (bootTimer, error) { return newClockBootTimer(clk, boot), nil }
	return e, nil
}
