// Package watchdog kills a supervised child's process group when the term it
// runs under ends, from a process of its own. The supervisor (leadership
// run) tells it, through a pipe, the deadline after every renewal; if the
// supervisor is stopped (SIGSTOP, a frozen cgroup) the watchdog still kills
// the child at the deadline, and if the supervisor dies the watchdog kills
// the child's group at once, since nothing can renew the term any more.
//
// The protocol is one line per message on the watchdog's standard input:
//
//	guard PGID        the process group to kill (sent once)
//	deadline M B G    SIGKILL the group at CLOCK_MONOTONIC M or CLOCK_BOOTTIME
//	                  B (nanoseconds), whichever comes first; send it SIGTERM
//	                  G nanoseconds before that (G = 0: no SIGTERM)
//	done              the supervisor has reaped the child and killed its
//	                  group; exit without killing when the pipe closes
//
// End of input without "done" means the supervisor died.
package watchdog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Deadline is an absolute time on both clocks the watchdog watches.
// CLOCK_MONOTONIC is what Go's timers and Term.Remaining follow;
// CLOCK_BOOTTIME also counts a suspend, so a host resumed after its term
// ran out kills the child at once.
type Deadline struct {
	Mono time.Duration
	Boot time.Duration
}

// In returns the deadline d from now on both clocks. The clocks are read
// before d is added, so a d computed earlier errs on the early side.
func In(d time.Duration) Deadline {
	m, b := Clocks()
	return Deadline{Mono: m + d, Boot: b + d}
}

// Clocks reads CLOCK_MONOTONIC and CLOCK_BOOTTIME.
func Clocks() (mono, boot time.Duration) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for this clock id
	mono = time.Duration(ts.Nano())
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	boot = time.Duration(ts.Nano())
	return mono, boot
}

// left is how long until d on the clock that reaches it first.
func (d Deadline) left() time.Duration {
	m, b := Clocks()
	return min(d.Mono-m, d.Boot-b)
}

// poll bounds how long the watchdog sleeps between clock checks: Go timers
// follow CLOCK_MONOTONIC, which stands still during a suspend.
const poll = 250 * time.Millisecond

// Serve is the watchdog process's main loop: it reads the protocol from in
// and kills as told. It returns nil after "done" and the end of input, or
// an error when the supervisor vanished (after killing the group) or the
// input was malformed (also after killing the group: a watchdog that cannot
// follow its supervisor must not leave the child unguarded).
func Serve(ctx context.Context, in io.Reader, log *slog.Logger) error {
	type msg struct {
		line string
		err  error // non-nil: input ended (io.EOF: cleanly)
	}
	msgs := make(chan msg)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case msgs <- msg{line: sc.Text()}:
			case <-ctx.Done():
				return
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		select {
		case msgs <- msg{err: err}:
		case <-ctx.Done():
		}
	}()

	var (
		pgid     int
		deadline Deadline
		grace    time.Duration
		armed    bool // a deadline is set
		termSent bool
		killed   bool
		done     bool
	)
	kill := func(sig syscall.Signal, why string) {
		if pgid <= 0 {
			return
		}
		err := syscall.Kill(-pgid, sig)
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			log.Error("watchdog: cannot signal the child's process group", "pgid", pgid, "signal", sig, "error", err)
			return
		}
		if err == nil {
			log.Warn("watchdog: signalled the child's process group", "pgid", pgid, "signal", sig.String(), "why", why)
		}
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if armed && !killed && !done {
			left := deadline.left()
			if !termSent && grace > 0 && left <= grace {
				termSent = true
				kill(syscall.SIGTERM, "the term's validity ends within the grace period and the supervisor has not stopped the child")
			}
			if left <= 0 {
				killed = true
				kill(syscall.SIGKILL, "the term's validity ended")
			}
		}
		wait := poll
		if armed && !killed && !done {
			left := deadline.left()
			if !termSent && grace > 0 {
				left -= grace
			}
			wait = max(0, min(wait, left))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case m := <-msgs:
			if m.err != nil {
				if done && errors.Is(m.err, io.EOF) {
					return nil
				}
				kill(syscall.SIGKILL, "the supervisor is gone")
				return fmt.Errorf("watchdog: supervisor gone (input ended: %v); killed process group %d", m.err, pgid)
			}
			if err := apply(m.line, &pgid, &deadline, &grace, &armed, &termSent, &done); err != nil {
				kill(syscall.SIGKILL, "the supervisor's message cannot be understood")
				return err
			}
		}
	}
}

func apply(line string, pgid *int, d *Deadline, grace *time.Duration, armed, termSent, done *bool) error {
	f := strings.Fields(line)
	bad := func() error { return fmt.Errorf("watchdog: malformed message %q", line) }
	if len(f) == 0 {
		return bad()
	}
	switch f[0] {
	case "guard":
		if len(f) != 2 {
			return bad()
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n <= 1 {
			return bad()
		}
		*pgid = n
	case "deadline":
		if len(f) != 4 {
			return bad()
		}
		var v [3]int64
		for i := range v {
			n, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return bad()
			}
			v[i] = n
		}
		*d = Deadline{Mono: time.Duration(v[0]), Boot: time.Duration(v[1])}
		g := time.Duration(v[2])
		if g != *grace {
			*termSent = false
		}
		*grace = g
		if g == 0 {
			// The supervisor is stopping the child itself: it sent
			// SIGTERM already.
			*termSent = true
		}
		*armed = true
	case "done":
		*done = true
	default:
		return bad()
	}
	return nil
}
