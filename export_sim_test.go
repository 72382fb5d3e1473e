package leadership

import (
	"time"

	"k8s.io/utils/clock"
)

// NewSimElector gives the simulation (sim_test.go, an external test
// package) the elector with the clocks it drives. It is the only internal
// the simulation relies on: keep it in step with newElector.
func NewSimElector(l Lock, cfg Config, clk clock.WithTicker, boot func() time.Duration) (*Elector, error) {
	return newElector(l, cfg, clk, boot)
}
