// Package supervise runs a command for the length of a leadership term and
// makes sure that the command and everything it started — whatever session
// or process group it moved to — is dead before the term's validity ends,
// and confirmed dead before Run returns (so before the term is released).
//
// The command is run by a watchdog process (package watchdog): its parent,
// a child subreaper that holds the term's deadline, so that the tree dies
// on time also when the supervisor is stopped or killed. The command starts
// only once the watchdog holds the deadline. The supervisor never blocks on
// the watchdog: a watchdog that stops answering is lost, and then the
// supervisor kills it and the tree itself (it is a subreaper too, so the
// tree comes to it), in a cgroup v2 sub-cgroup with cgroup.kill where one
// could be made.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/internal/contain"
	"github.com/leadership-dev/leadership/internal/watchdog"
)

// KillLead is how long before the end of the term's validity the child's
// tree is killed at the latest. It absorbs the delay between a timer
// firing and the kernel delivering the signal on a busy machine, so the
// tree is dead before any successor could start.
const KillLead = 100 * time.Millisecond

// tick is how often the supervisor passes the term's deadline to the
// watchdog and checks whether the term is about to run out.
const tick = 50 * time.Millisecond

// keepAlive is how often the deadline is sent even when it did not move,
// so that a watchdog that stopped answering is noticed.
const keepAlive = 250 * time.Millisecond

// Margin is how much validity, beyond Grace, a term needs for the child to
// be started, and when the supervisor stops the child because renewals are
// failing: when the remaining validity falls to Grace + Margin.
const Margin = KillLead + 2*tick

// StartWatchdog starts the watchdog process that is to run command with env
// (in the cgroup v2 directory cgroup, unless it is "").
type StartWatchdog func(command, env []string, cgroup string) (*watchdog.Client, error)

// Options say what to run and under which term.
type Options struct {
	// Command is the program and its arguments.
	Command []string
	// Env is the child's whole environment.
	Env []string
	// Remaining returns how long the term stays valid without another
	// renewal (leadership.Term.Remaining).
	Remaining func() time.Duration
	// Grace is how long the child has between SIGTERM and SIGKILL, never
	// more than the term's remaining validity less KillLead.
	Grace time.Duration
	// StartWatchdog starts the watchdog process for one child.
	StartWatchdog StartWatchdog
	// Reaper is this process's reaper: it kills and reaps the tree of a
	// lost watchdog, which is re-parented to this process.
	Reaper *contain.Reaper
	// Cgroups, if set, makes a sub-cgroup for each child.
	Cgroups *contain.Cgroups
	// KillAtOnce, if set, says whether the cause of the end of a term
	// calls for SIGKILL without a grace period (someone else holds the
	// Lease and may be working already).
	KillAtOnce func(cause error) bool
	// Kill, once closed, cuts a stop short: SIGKILL at once.
	Kill <-chan struct{}
	// Signals are forwarded to the child while it runs.
	Signals <-chan os.Signal
	// BeforeArming, if set, runs after the watchdog started and before it
	// is armed (a test hook: the child must not run before it is armed).
	BeforeArming func()
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

// ErrWatchdogLost reports that the watchdog process exited or stopped
// answering while the child ran; the child's tree was killed since it
// could no longer be guaranteed to die before the term's end if the
// supervisor were stopped.
var ErrWatchdogLost = errors.New("supervise: the watchdog process was lost; the command's tree was killed because it was no longer guarded")

// Run starts the command and returns once it and every process it started
// are dead and reaped: when it exits by itself, when ctx is done, or when
// the term's remaining validity falls to Grace + Margin (renewals are
// failing). Stopping sends SIGTERM to the tree, then SIGKILL once Grace
// has passed or at KillLead before the validity ends, whichever is first;
// SIGKILL at once when KillAtOnce says so for ctx's cause.
func Run(ctx context.Context, o Options) (Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if len(o.Command) == 0 {
		return Result{}, errors.New("supervise: no command")
	}
	if o.Reaper == nil {
		return Result{}, errors.New("supervise: no reaper")
	}
	if ctx.Err() != nil || o.Remaining()-Margin <= o.Grace {
		return Result{Expiring: ctx.Err() == nil}, nil
	}
	var cg *contain.Cgroup
	if o.Cgroups != nil {
		var err error
		cg, err = o.Cgroups.New(fmt.Sprintf("leadership-run-%d-%d", os.Getpid(), time.Now().UnixNano()))
		if err != nil {
			return Result{}, fmt.Errorf("supervise: %w", err)
		}
	}
	cgDir := ""
	if cg != nil {
		cgDir = cg.Dir
	}
	wd, err := o.StartWatchdog(o.Command, o.Env, cgDir)
	if err != nil {
		if cg != nil {
			_ = cg.Remove()
		}
		return Result{}, err
	}
	if o.BeforeArming != nil {
		o.BeforeArming()
	}
	s := &stopper{o: o, wd: wd, log: log}
	var res Result
	if o.Remaining()-Margin <= o.Grace {
		// The hook or a busy machine took the validity.
		res.Expiring = true
		wd.Stop(0)
	} else {
		// The watchdog starts the child once it holds this deadline.
		s.sent = deadline(o.Remaining)
		s.sentAt = time.Now()
		wd.SetDeadline(s.sent, o.Grace)
	}
	began := time.Now()

	t := time.NewTicker(tick)
	defer t.Stop()
	var lostErr error
	started, done, kill := wd.Started(), ctx.Done(), o.Kill
loop:
	for {
		select {
		case <-wd.Gone():
			break loop
		case <-wd.Lost():
			lostErr = wd.LostReason()
			break loop
		case <-started:
			started = nil
			res.Started, began = true, time.Now()
			log.Debug("child started", "command", o.Command, "pid", wd.ChildPid(), "validFor", o.Remaining().Round(time.Millisecond))
		case <-done:
			done = nil
			res.Stopped = true
			s.stop(context.Cause(ctx))
		case <-kill:
			kill = nil
			if s.stopping {
				log.Warn("killing the command at once, as asked")
				wd.Stop(0)
			}
		case sig := <-o.Signals:
			if ss, ok := sig.(syscall.Signal); ok {
				log.Info("forwarding a signal to the command", "signal", sig.String())
				wd.Signal(ss)
			}
		case <-t.C:
			if !s.stopping && o.Remaining()-Margin <= o.Grace {
				res.Stopped, res.Expiring = true, true
				log.Warn("stopping the command: the term's validity is about to run out (renewals are failing or slow)", "remaining", o.Remaining().Round(time.Millisecond), "grace", o.Grace)
				s.stop(nil)
			}
			s.pass()
		}
	}
	if lostErr != nil {
		res.Stopped = true
		log.Error("the watchdog process is lost; killing the command's tree", "error", lostErr)
		wd.Kill()
		// The tree is now this process's (it is a subreaper).
		if cg != nil {
			_ = cg.Kill()
		}
		if err := o.Reaper.KillAdopted(context.Background()); err != nil {
			log.Error("cannot kill the lost watchdog's tree", "error", err)
		}
	} else if err := wd.Close(); err != nil {
		log.Debug("watchdog exit", "error", err)
	}
	if cg != nil {
		waitEmpty(cg, log)
	}
	select {
	case <-wd.Started():
		res.Started = true
	default:
	}
	res.Ran = time.Since(began)
	select {
	case <-wd.ChildExited():
		ws := wd.Status()
		if ws.Signaled() {
			res.Signal = ws.Signal()
		} else {
			res.Exited, res.ExitCode = true, ws.ExitStatus()
		}
	default:
	}
	if lostErr != nil {
		return res, fmt.Errorf("%w: %v", ErrWatchdogLost, lostErr)
	}
	if e := wd.StartError(); e != "" {
		return res, fmt.Errorf("cannot start %q: %s", o.Command[0], e)
	}
	return res, nil
}

// waitEmpty kills what is left in the cgroup until it is empty, then
// removes it. Its processes are dead when the watchdog reported the tree
// gone, unless one escaped the tree but not the cgroup.
func waitEmpty(cg *contain.Cgroup, log *slog.Logger) {
	for i := 0; ; i++ {
		populated, err := cg.Populated()
		if err != nil {
			log.Error("cannot read the command's cgroup", "error", err)
			return
		}
		if !populated {
			break
		}
		if i == 0 {
			log.Warn("processes of the command's cgroup outlived its tree; killing them", "cgroup", cg.Dir)
		}
		_ = cg.Kill()
		time.Sleep(10 * time.Millisecond)
	}
	if err := cg.Remove(); err != nil {
		log.Warn("cannot remove the command's cgroup", "error", err)
	}
}

// stopper passes deadlines and stops the child through the watchdog.
type stopper struct {
	o        Options
	wd       *watchdog.Client
	log      *slog.Logger
	sent     watchdog.Deadline
	sentAt   time.Time
	stopping bool
}

// pass sends each extension of the deadline, and the same deadline again
// now and then so that a silent watchdog is noticed.
func (s *stopper) pass() {
	d := deadline(s.o.Remaining)
	if d.Mono > s.sent.Mono+time.Millisecond || time.Since(s.sentAt) >= keepAlive {
		if d.Mono > s.sent.Mono {
			s.sent = d
		}
		s.sentAt = time.Now()
		s.wd.SetDeadline(s.sent, s.o.Grace)
	}
}

// stop asks the watchdog for SIGTERM, then SIGKILL after Grace or KillLead
// before the term's end, whichever is first; SIGKILL at once when asked to
// kill or when the term ended because someone else holds the Lease.
func (s *stopper) stop(cause error) {
	if s.stopping {
		return
	}
	s.stopping = true
	grace := min(s.o.Grace, s.o.Remaining()-KillLead)
	select {
	case <-s.o.Kill:
		grace = 0
	default:
	}
	switch {
	case cause != nil && s.o.KillAtOnce != nil && s.o.KillAtOnce(cause):
		s.log.Warn("killing the command at once: someone else holds the Lease and may be working already", "cause", cause)
		grace = 0
	case cause != nil:
		s.log.Info("stopping the command: the term ended", "cause", cause, "grace", max(0, grace))
	}
	s.wd.Stop(max(0, grace))
}

// deadline is the watchdog's kill time: KillLead before the validity ends.
// The clocks are read before Remaining, so the deadline errs early.
func deadline(remaining func() time.Duration) watchdog.Deadline {
	m, b := watchdog.Clocks()
	left := remaining() - KillLead
	return watchdog.Deadline{Mono: m + left, Boot: b + left}
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
