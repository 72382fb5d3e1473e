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

// clockBootTimer is a boot-clock timer on an elector clock.
type clockBootTimer struct {
	clk  clock.WithTicker
	boot func() time.Duration
	c    chan struct{}
	t    clock.Timer
	stop chan struct{}
}

func newClockBootTimer(clk clock.WithTicker, boot func() time.Duration) *clockBootTimer {
	return &clockBootTimer{clk: clk, boot: boot, c: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (b *clockBootTimer) Set(deadline time.Duration) error {
	if b.t != nil {
		b.t.Stop()
	}
	t := b.clk.NewTimer(max(0, deadline-b.boot()))
	b.t = t
	go func() {
		select {
		case <-t.C():
			select {
			case b.c <- struct{}{}:
			default:
			}
		case <-b.stop:
		}
	}()
	return nil
}

func (b *clockBootTimer) C() <-chan struct{} { return b.c }

func (b *clockBootTimer) Stop() {
	if b.t != nil {
		b.t.Stop()
	}
	close(b.stop)
}
