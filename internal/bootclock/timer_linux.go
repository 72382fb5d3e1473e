//go:build linux

package bootclock

import (
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Timer fires when CLOCK_BOOTTIME reaches a deadline. Unlike a Go timer,
// which follows the monotonic clock and so stands still while the machine is
// suspended, it fires right after a resume that carried the clock past the
// deadline: the kernel re-evaluates absolute CLOCK_BOOTTIME timers on
// resume. It costs no wake-ups until then.
type Timer struct {
	f    *os.File
	fd   int
	c    chan struct{}
	once sync.Once
}

// NewTimer returns an unarmed Timer.
func NewTimer() (*Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor in an os.File is served by the runtime's
	// poller, so Read parks the goroutine and Close wakes it.
	t := &Timer{f: os.NewFile(uintptr(fd), "bootclock-timer"), fd: fd, c: make(chan struct{}, 1)}
	go t.loop()
	return t, nil
}

func (t *Timer) loop() {
	var buf [8]byte
	for {
		if _, err := t.f.Read(buf[:]); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ECANCELED) {
				continue
			}
			return
		}
		select {
		case t.c <- struct{}{}:
		default:
		}
	}
}

// C receives a value each time the deadline passes.
func (t *Timer) C() <-chan struct{} { return t.c }

// Set arms the timer for the absolute boot-clock time deadline, replacing
// any earlier deadline. A deadline in the past fires at once.
func (t *Timer) Set(deadline time.Duration) error {
	if deadline <= 0 {
		deadline = 1 // zero would disarm the timer
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(deadline))}
	return unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

// Stop disarms the timer and releases its descriptor.
func (t *Timer) Stop() {
	t.once.Do(func() { _ = t.f.Close() })
}
