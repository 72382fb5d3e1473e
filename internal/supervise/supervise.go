// Package supervise runs a command for the length of a leadership term: in
// a process group of its own, dying with its supervisor, stopped with
// SIGTERM and then SIGKILL so that the whole group is gone before the
// term's validity ends — also when the supervisor itself is stopped or
// killed, thanks to a watchdog process that holds the deadline.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/internal/watchdog"
)

// KillLead is how long before the end of the term's validity the child's
// process group is killed at the latest. It absorbs the delay between a
// timer firing and the kernel delivering the signal on a busy machine, so
// the group is dead before any successor could start.
const KillLead = 100 * time.Millisecond

// tick is how often the supervisor passes the term's deadline to the
// watchdog and checks whether the term is about to run out.
const tick = 50 * time.Millisecond

// Margin is how much validity, beyond Grace, a term needs for the child to
// be started, and when the supervisor stops the child because renewals are
// failing: when the remaining validity falls to Grace + Margin.
const Margin = KillLead + 2*tick

// Options say what to run and under which term.
type Options struct {
	// Command is the program and its arguments.
	Command []string
	// Env is the child's whole environment.
	Env []string
	// Stdin, Stdout and Stderr are the child's; nil means /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Remaining returns how long the term stays valid without another
	// renewal (leadership.Term.Remaining).
	Remaining func() time.Duration
	// Grace is how long the child has between SIGTERM and SIGKILL, never
	// more than the term's remaining validity less KillLead.
	Grace time.Duration
	// StartWatchdog starts the watchdog process for one child.
	StartWatchdog func() (*watchdog.Client, error)
	// Kill, once closed, cuts a stop short: SIGKILL at once.
	Kill <-chan struct{}
	// Logger receives the supervisor's logs.
	Logger *slog.Logger
}

// Result says how the child ended.
type Result struct {
	// Started is false when the term had too little validity left to start
	// the child at all.
	Started bool
	// Exited and ExitCode: the child exited by itself with this status.
	Exited   bool
	ExitCode int
	// Signal killed the child (when it did not exit).
	Signal syscall.Signal
	// Stopped is true when the supervisor stopped the child: ctx was done,
	// the term was about to run out (Expiring), or the watchdog died.
	Stopped  bool
	Expiring bool
	// Ran is how long the child ran.
	Ran time.Duration
}

// Code is the child's status as a shell reports it: the exit code, or
// 128 + the signal number.
func (r Result) Code() int {
	if r.Exited {
		return r.ExitCode
	}
	if r.Signal != 0 {
		return 128 + int(r.Signal)
	}
	return 0
}

func (r Result) String() string {
	switch {
	case !r.Started:
		return "not started"
	case r.Exited:
		return fmt.Sprintf("exit code %d", r.ExitCode)
	case r.Signal != 0:
		return "killed by " + r.Signal.String()
	}
	return "ended"
}

// ErrWatchdogLost reports that the watchdog process exited while the child
// ran; the child was stopped since it could no longer be guaranteed to die
// before the term's end if the supervisor were stopped.
var ErrWatchdogLost = errors.New("supervise: the watchdog process exited unexpectedly; the child was stopped because it was no longer guarded")

// Run starts the command and returns once it has exited and its process
// group has been killed: when it exits by itself, when ctx is done, or when
// the term's remaining validity falls to Grace + Margin (renewals are
// failing). Stopping sends SIGTERM to the group, then SIGKILL once Grace
// has passed or at KillLead before the validity ends, whichever is first.
func Run(ctx context.Context, o Options) (Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if len(o.Command) == 0 {
		return Result{}, errors.New("supervise: no command")
	}
	if ctx.Err() != nil || o.Remaining()-Margin <= o.Grace {
		return Result{Expiring: ctx.Err() == nil}, nil
	}
	wd, err := o.StartWatchdog()
	if err != nil {
		return Result{}, err
	}
	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Env = o.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	// Setpgid: a group of its own, so the child and everything it starts
	// can be signalled at once, and a terminal's Ctrl-C reaches only the
	// supervisor. Pdeathsig: the kernel kills the child if the thread
	// that started it dies, which, with the thread locked below, means
	// when the supervisor dies (even by SIGKILL).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	startErr := make(chan error, 1)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		// Pdeathsig follows the thread that forked, not the process: keep
		// this goroutine on its thread until the child has been reaped.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-startErr; err != nil {
		wd.Abort()
		return Result{}, fmt.Errorf("cannot start %q: %w", o.Command[0], err)
	}
	began := time.Now()
	pgid := cmd.Process.Pid
	log = log.With("pid", pgid)
	res := Result{Started: true}

	// From here on the group must be killed before returning.
	sent := deadline(o.Remaining)
	err = wd.Guard(pgid)
	if err == nil {
		err = wd.SetDeadline(sent, o.Grace)
	}
	if err != nil {
		log.Error("cannot hand the child to its watchdog; killing it", "error", err)
		killGroup(pgid, syscall.SIGKILL)
		<-exited
		killGroup(pgid, syscall.SIGKILL)
		wd.Abort()
		return finish(res, cmd, began, waitErr), fmt.Errorf("supervise: %w", err)
	}
	log.Debug("child started", "command", o.Command, "validFor", o.Remaining().Round(time.Millisecond))

	t := time.NewTicker(tick)
	defer t.Stop()
	var stopErr error
	watchdogExited := wd.Exited()
loop:
	for {
		select {
		case <-exited:
			break loop
		case <-ctx.Done():
			res.Stopped = true
			log.Info("stopping the child: the term ended", "cause", context.Cause(ctx))
			stopGroup(pgid, o, wd, exited, log)
			break loop
		case <-watchdogExited:
			res.Stopped, stopErr = true, ErrWatchdogLost
			log.Error("the watchdog process exited; stopping the child")
			stopGroup(pgid, o, nil, exited, log)
			break loop
		case <-t.C:
			if o.Remaining()-Margin <= o.Grace {
				res.Stopped, res.Expiring = true, true
				log.Warn("stopping the child: the term's validity is about to run out (renewals are failing or slow)", "remaining", o.Remaining().Round(time.Millisecond), "grace", o.Grace)
				stopGroup(pgid, o, wd, exited, log)
				break loop
			}
			// Pass on each extension; only later deadlines need sending.
			if d := deadline(o.Remaining); d.Mono > sent.Mono+time.Millisecond {
				if err := wd.SetDeadline(d, o.Grace); err == nil {
					sent = d
				}
			}
		}
	}
	// Whatever the child left in its group goes too, before the term can
	// be released or the watchdog dismissed.
	killGroup(pgid, syscall.SIGKILL)
	res = finish(res, cmd, began, waitErr)
	select {
	case <-wd.Exited():
		if stopErr == nil && !res.Stopped {
			stopErr = ErrWatchdogLost
		}
	default:
		if err := wd.Close(); err != nil {
			log.Debug("watchdog exit", "error", err)
		}
	}
	return res, stopErr
}

// deadline is the watchdog's kill time: KillLead before the validity ends.
// The clocks are read before Remaining, so the deadline errs early.
func deadline(remaining func() time.Duration) watchdog.Deadline {
	m, b := watchdog.Clocks()
	left := remaining() - KillLead
	return watchdog.Deadline{Mono: m + left, Boot: b + left}
}

// stopGroup sends SIGTERM, then SIGKILL after Grace or KillLead before the
// term's end, whichever is first, and waits for the child to exit. The
// watchdog (if any) is told the kill time first, so the kill happens even
// if this process is stopped meanwhile.
func stopGroup(pgid int, o Options, wd *watchdog.Client, exited <-chan struct{}, log *slog.Logger) {
	left := o.Remaining() - KillLead
	grace := min(o.Grace, left)
	select {
	case <-o.Kill:
		grace = 0
	default:
	}
	if grace > 0 {
		if wd != nil {
			_ = wd.SetDeadline(watchdog.In(grace), 0)
		}
		killGroup(pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
			return
		case <-t.C:
			log.Warn("the child did not exit within its grace period; killing it", "grace", grace)
		case <-o.Kill:
			log.Warn("killing the child at once, as asked")
		}
	}
	killGroup(pgid, syscall.SIGKILL)
	<-exited
}

func killGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig) // ESRCH: the group is gone already
}

func finish(res Result, cmd *exec.Cmd, began time.Time, waitErr error) Result {
	res.Ran = time.Since(began)
	ps := cmd.ProcessState
	if ps == nil {
		return res
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal()
		return res
	}
	res.Exited, res.ExitCode = true, ps.ExitCode()
	_ = waitErr // the status above says all an *exec.ExitError would
	return res
}

// Environ returns the current environment with vars set (replacing any
// inherited values of the same names), for a child of the term.
func Environ(vars map[string]string) []string {
	env := os.Environ()
	out := make([]string, 0, len(env)+len(vars))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[k]; !ok {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+vars[k])
	}
	return out
}
