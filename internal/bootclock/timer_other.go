//go:build !linux

package bootclock

import (
	"sync"
	"time"
)

// Timer fires when the boot clock reaches a deadline. On this platform the
// boot clock is the monotonic clock, so a Go timer serves.
type Timer struct {
	mu   sync.Mutex
	t    *time.Timer
	c    chan struct{}
	done bool
}

// NewTimer returns an unarmed Timer.
func NewTimer() (*Timer, error) { return &Timer{c: make(chan struct{}, 1)}, nil }

// C receives a value each time the deadline passes.
func (t *Timer) C() <-chan struct{} { return t.c }

// Set arms the timer for the absolute boot-clock time deadline.
func (t *Timer) Set(deadline time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	if t.t != nil {
		t.t.Stop()
	}
	t.t = time.AfterFunc(deadline-Now(), func() {
		select {
		case t.c <- struct{}{}:
		default:
		}
	})
	return nil
}

// Stop disarms the timer.
func (t *Timer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	if t.t != nil {
		t.t.Stop()
	}
}
