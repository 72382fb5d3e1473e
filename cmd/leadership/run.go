package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/internal/contain"
	"github.com/leadership-dev/leadership/internal/supervise"
	"github.com/leadership-dev/leadership/internal/watchdog"
)

type runFlags struct {
	electorFlags
	grace         time.Duration
	every         time.Duration
	exitWithChild bool
	maxBackoff    time.Duration
	containment   string
}

const runLong = `Run CMD only while this replica leads the Lease. The replicas of a
Deployment each run 'leadership run' with the same --lease; exactly one of them
runs CMD at any moment.

CMD's environment adds LEADERSHIP_LEASE, LEADERSHIP_NAMESPACE,
LEADERSHIP_IDENTITY and LEADERSHIP_TOKEN (the term's fencing token: pass it to
the stores CMD writes to, and have them refuse tokens lower than the highest
they have seen). CMD runs in a session of its own, with stdin /dev/null.

With --restart-proof-dir (and --pod-uid), the term's lock file is descriptor 3
of CMD and of everything it starts that keeps it open: leave it open. A
replica whose 'leadership run' crashed and was restarted in place takes the
Lease over at once only when no process holding it is left; CMD's tree is
covered by the containment below in any case (the watchdog holds the file
until the tree is gone).

The rule: CMD and every process it started, whatever session or process group
it moved to (setsid, a double fork, set -m), is dead before the term's
validity ends, so before any other replica can lead, and the Lease is released
only once all of them are confirmed gone (reaped, or the cgroup empty). When
the term ends (the Lease is handed over, or 'leadership run' is asked to stop)
the tree gets SIGTERM, then SIGKILL once --grace has passed or 100ms before
the validity ends, whichever comes first. When the term ends because someone
else wrote the Lease (taken over, deleted, the same identity elsewhere), the
tree gets SIGKILL at once: a successor may be working already. If renewals
keep failing until only --grace (plus 200ms) of validity is left, the tree
gets SIGTERM then, so that CMD still has its grace before the hard deadline;
--grace is thus also how early a leader that cannot renew starts to stop.

How: CMD is started by a watchdog process ('leadership internal-watchdog'),
only once it holds the term's deadline. The watchdog is CMD's parent and a
child subreaper, so every orphan below CMD is re-parented to it; it kills the
whole tree at the deadline even if 'leadership run' is stopped (SIGSTOP) and
at once if 'leadership run' dies (kill -9), and reaps it. Where a cgroup v2
sub-cgroup can be created (--containment auto or cgroup), CMD starts in one,
killed with cgroup.kill and waited for until empty. 'leadership run' never
waits on its watchdog: one that stops answering for 2s is lost, and then
'leadership run' kills it and the tree itself (it is a subreaper too) and
steps down. The log says at start which containment is in force.

Not contained: a process that leaves the tree and the cgroup with privileges
(a setuid helper, or root writing another cgroup's cgroup.procs, or a request
to a daemon outside, such as systemd-run or docker run, to start it); a
process in uninterruptible sleep (state D), which no signal ends before it
wakes ('leadership run' then does not release, but the validity still runs
out); and the tree, if the watchdog and 'leadership run' are both killed at
once, unless CMD is in a cgroup that someone else kills, or 'leadership run'
is PID 1 of its PID namespace (the kernel then kills the namespace).

As PID 1 (a container without an init), 'leadership run' reaps every orphan
re-parented to it, as an init does. SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH are
forwarded to CMD.

Without --every, CMD is a long-running program: if it exits while this replica
leads, it is restarted with exponential backoff (1s up to --max-backoff); with
--exit-with-child, the Lease is released instead and 'leadership run' exits
with CMD's status.

With --every D, CMD runs once per D (plus up to 10% jitter), only on the
leader, never twice at once. When a run starts, the time is recorded on the
Lease (annotation values.leadership.dev/every-started, written under the
term's fencing; CMD gets it as LEADERSHIP_EVERY_STARTED), so a new leader
after a failover waits until D after the previous leader's last run. A run interrupted by the end of a term is not
repeated before D has passed. The schedule compares wall clocks of different
hosts: an offset between them shifts it, but never lets two runs overlap.

SIGTERM or SIGINT: stop CMD gracefully, release the Lease, exit 0. A second
signal kills CMD at once.

` + exitCodesHelp

func newRunCmd(g *globalFlags, stdout, stderr io.Writer) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run --lease NAME [flags] -- CMD [ARGS...]",
		Short: "Run a command only while this replica leads",
		Long:  runLong,
		Example: `  # a credential renewer that must never run twice at once
  leadership run --lease credential-renewer -- ./renew-credentials --ttl 1h

  # a job every 10 minutes on whichever replica leads, at most once per 10 minutes
  leadership run --lease nightly-sweep --every 10m -- ./sweep

  # faster failover, a longer graceful stop, metrics on :4040
  leadership run --lease db-migrator --lease-duration 5s --grace 1s --http-addr :4040 -- ./migrate

  # exit (and release) when the child exits, with its status
  leadership run --lease one-shot --exit-with-child -- ./do-it-once`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case dash < 0 && len(args) > 0:
				return usageErrorf("put the command after --, as in: leadership run --lease %s -- %s", orName(f.lease), args[0])
			case len(args) == 0 || dash >= len(args):
				return usageErrorf("no command to run: give it after --, as in: leadership run --lease %s -- ./my-task", orName(f.lease))
			case dash > 0:
				return usageErrorf("unexpected argument %q before --: flags go before --, the command after it", args[0])
			}
			return runRun(cmd.Context(), g, f, cmd.Flags().Changed("grace"), args, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	f.register(fs, "")
	fs.DurationVar(&f.grace, "grace", 0, "time between SIGTERM and SIGKILL when the term ends; bounded by the validity left (default: lease-duration/3)")
	fs.DurationVar(&f.every, "every", 0, "run CMD once per this interval (plus up to 10% jitter) instead of keeping it running")
	fs.BoolVar(&f.exitWithChild, "exit-with-child", false, "when CMD exits by itself, release the Lease and exit with its status instead of restarting it")
	fs.DurationVar(&f.maxBackoff, "max-backoff", 30*time.Second, "longest pause before restarting a CMD that keeps exiting")
	fs.StringVar(&f.containment, "containment", "auto", "how CMD's tree is held: cgroup (a cgroup v2 sub-cgroup, cgroup.kill, and the process tree), tree (the process tree only), auto (cgroup where one can be created)")
	return cmd
}

func orName(s string) string {
	if s == "" {
		return "NAME"
	}
	return s
}

// maxGrace is the longest --grace that a healthy leader never reaches: its
// remaining validity stays above validity − RenewInterval − RetryPeriod
// (one failed renewal tolerated) and the stop begins at Grace + Margin.
func maxGrace(cfg leadership.Config) time.Duration {
	validity := time.Duration(float64(cfg.LeaseDuration) * (1 - cfg.MaxClockDrift))
	return validity - cfg.RenewInterval - cfg.RetryPeriod - supervise.Margin
}

// runner is one `leadership run`.
type runner struct {
	c       *campaign
	f       *runFlags
	command []string
	stdout  io.Writer
	stderr  io.Writer
	log     *slog.Logger
	exe     string
	logFmt  string
	kill    chan struct{}
	stopRun context.CancelFunc
	reaper  *contain.Reaper
	cgroups *contain.Cgroups
	signals chan os.Signal
	// beforeArming is the test hook LEADERSHIP_TEST_PAUSE_BEFORE_ARMING.
	beforeArming func()
	mu           sync.Mutex
	childEnd     *supervise.Result // set with --exit-with-child
}

func runRun(ctx context.Context, g *globalFlags, f *runFlags, graceSet bool, command []string, stdout, stderr io.Writer) error {
	if f.every < 0 || (f.every > 0 && f.every < time.Second) {
		return usageErrorf("invalid --every %v: use at least 1s (each run is recorded on the Lease)", f.every)
	}
	if f.every > 0 && f.exitWithChild {
		return usageErrorf("--exit-with-child does not go with --every: a scheduled command is expected to exit after each run")
	}
	if f.maxBackoff < time.Second {
		return usageErrorf("invalid --max-backoff %v: use at least 1s", f.maxBackoff)
	}
	if f.grace < 0 {
		return usageErrorf("invalid --grace %v: must not be negative", f.grace)
	}
	switch f.containment {
	case "auto", "cgroup", "tree":
	default:
		return usageErrorf("invalid --containment %q: use auto, cgroup or tree", f.containment)
	}
	cfg, err := f.config(g.log)
	if err != nil {
		return err
	}
	cfg, _ = validated(cfg)
	limit := maxGrace(cfg)
	if limit < 0 {
		return usageErrorf("--lease-duration %v is too short for 'leadership run': the child must be stopped before the term can run out, which needs more room than one renew interval and one retry; use at least 2s", cfg.LeaseDuration)
	}
	if !graceSet {
		f.grace = min(cfg.LeaseDuration/3, limit)
	} else if f.grace > limit {
		return usageErrorf("--grace %v is too long for --lease-duration %v: a leader whose renewal fails once has %v of validity left, and the child must get its SIGTERM --grace before the validity can run out; use --grace %v or less, or a longer --lease-duration",
			f.grace, cfg.LeaseDuration, limit+supervise.Margin, limit.Truncate(time.Millisecond))
	}
	path, err := exec.LookPath(command[0])
	if err != nil {
		return usageErrorf("cannot run %q: %v", command[0], err)
	}
	command = append([]string{path}, command[1:]...)
	exe, err := os.Executable()
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("cannot find this program's own executable, needed for the watchdog process: %w", err))
	}

	c, err := newCampaign(g, &f.electorFlags, leadership.Hooks{})
	if err != nil {
		return err
	}
	defer c.close()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	r := &runner{c: c, f: f, command: command, stdout: stdout, stderr: stderr, log: c.log,
		exe: exe, logFmt: g.logFormat, kill: make(chan struct{}), stopRun: stopRun}
	if err := r.contain(); err != nil {
		return err
	}
	// Like init: reap whatever is re-parented to this process until it
	// exits, and pass on the signals it does not act on itself.
	reapCtx, stopReaping := context.WithCancel(context.Background())
	defer stopReaping()
	go r.reaper.Run(reapCtx)
	r.signals = make(chan os.Signal, 4)
	signal.Notify(r.signals, forwardedSignals...)
	defer signal.Stop(r.signals)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for {
			select {
			case s := <-sigs:
				n++
				if n == 1 {
					r.log.Info("stopping: the command gets SIGTERM, then the Lease is released", "signal", s.String())
					stopRun()
				} else if n == 2 {
					r.log.Warn("second signal: killing the command at once", "signal", s.String())
					close(r.kill)
				}
			case <-runCtx.Done():
				if n > 0 || ctx.Err() != nil {
					return
				}
			}
		}
	}()

	var httpDone <-chan error
	if f.httpAddr != "" {
		if httpDone, err = c.serveHTTP(runCtx, f.httpAddr, false); err != nil {
			return err
		}
	}
	mode := "long-running"
	if f.every > 0 {
		mode = "every " + f.every.String()
	}
	r.log.Info("campaigning", "command", command, "mode", mode, "timing", describe(c.cfg), "grace", f.grace)
	lead := r.leadLongRunning
	if f.every > 0 {
		lead = r.leadEvery
	}
	_ = c.e.Run(runCtx, lead)
	if httpDone != nil {
		stopRun()
		<-httpDone
	}
	r.log.Info("stopped")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.childEnd != nil {
		return withCode(exitChildStatus, childStatus{code: r.childEnd.Code()})
	}
	return nil
}

// forwardedSignals are passed on to CMD, as a minimal init would.
var forwardedSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// pauseBeforeArmingEnv names a test-only hook: a duration for which `run`
// pauses between starting a child's watchdog and arming it, so that a test
// can stop `run` at that moment.
const pauseBeforeArmingEnv = "LEADERSHIP_TEST_PAUSE_BEFORE_ARMING"

// contain sets up how the children's trees are held, and says so once.
func (r *runner) contain() error {
	reaper, err := contain.NewReaper(r.log)
	if err != nil {
		return withCode(exitFailure, err)
	}
	r.reaper = reaper
	tree := "process tree: the watchdog, the command's parent, is a child subreaper and kills and reaps every descendant; 'run' is a subreaper too"
	if os.Getpid() == 1 {
		tree += "; as PID 1, 'run' reaps every orphan of the PID namespace"
	}
	if r.f.containment != "tree" {
		cg, err := contain.DetectCgroups()
		switch {
		case err == nil:
			r.cgroups = cg
			r.log.Info("containment: cgroup v2 sub-cgroup per child (cgroup.kill, cgroup.events) and "+tree, "cgroup", cg.Dir())
		case r.f.containment == "cgroup":
			return withCode(exitFailure, fmt.Errorf("--containment cgroup: %w; use --containment tree or auto, or delegate a writable cgroup v2 directory to this process", err))
		default:
			r.log.Info("containment: "+tree+"; no cgroup v2 (escapes through privileged helpers are not contained)", "why", err.Error())
		}
	} else {
		r.log.Info("containment: " + tree + " (--containment tree)")
	}
	if v := os.Getenv(pauseBeforeArmingEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return usageErrorf("invalid %s %q: %v", pauseBeforeArmingEnv, v, err)
		}
		r.beforeArming = func() {
			r.log.Warn("test hook: pausing between starting the watchdog and arming it", "for", d, "env", pauseBeforeArmingEnv)
			time.Sleep(d)
		}
	}
	return nil
}

// killAtOnce: the term ended because someone else wrote the Lease, and may
// be working already.
func killAtOnce(cause error) bool {
	return errors.Is(cause, leadership.ErrLockLost) || errors.Is(cause, leadership.ErrLockDeleted) || errors.Is(cause, leadership.ErrIdentityClash)
}

// validated fills in the Config's defaults.
func validated(cfg leadership.Config) (leadership.Config, error) {
	e, err := leadership.New(nopLock{}, cfg)
	if err != nil {
		return cfg, err
	}
	return e.Config(), nil
}

// supervise runs the command for one stretch of term t.
func (r *runner) supervise(ctx context.Context, t leadership.Term, extra map[string]string) (supervise.Result, error) {
	vars := map[string]string{
		"LEADERSHIP_LEASE":     r.c.lock.Name(),
		"LEADERSHIP_NAMESPACE": r.c.lock.Namespace(),
		"LEADERSHIP_IDENTITY":  t.Identity,
		"LEADERSHIP_TOKEN":     strconv.FormatUint(t.Token, 10),
	}
	maps.Copy(vars, extra)
	env := supervise.Environ(vars)
	r.log.Info("starting the command", "token", t.Token)
	res, err := supervise.Run(ctx, supervise.Options{
		Command:   r.command,
		Env:       env,
		Remaining: t.Remaining,
		Grace:     r.f.grace,
		StartWatchdog: func(command, env []string, cgroup string) (*watchdog.Client, error) {
			args := []string{"internal-watchdog", "--log-format", r.logFmt}
			if cgroup != "" {
				args = append(args, "--cgroup", cgroup)
			}
			var inherit []*os.File
			if f := t.RestartLock(); f != nil {
				// The watchdog and, through it, the command and all its
				// descendants hold the term's lock file: a restarted
				// replica takes over at once only once all are gone.
				inherit = []*os.File{f}
				args = append(args, "--restart-lock-fd", "4")
			}
			return watchdog.Start(watchdog.Options{
				Exe:     r.exe,
				Args:    append(append(args, "--"), command...),
				Env:     env,
				Stdout:  r.stdout,
				Stderr:  r.stderr,
				Spawn:   r.reaper.Spawn,
				Exited:  r.reaper.Disown,
				Inherit: inherit,
			})
		},
		Reaper:       r.reaper,
		Cgroups:      r.cgroups,
		KillAtOnce:   killAtOnce,
		Kill:         r.kill,
		Signals:      r.signals,
		BeforeArming: r.beforeArming,
		Logger:       r.log,
	})
	if res.Started {
		r.log.Info("the command ended", "token", t.Token, "status", res.String(), "ran", res.Ran.Round(time.Millisecond), "stoppedByUs", res.Stopped)
	}
	return res, err
}

func (r *runner) leadLongRunning(ctx context.Context, t leadership.Term) error {
	const initialBackoff = time.Second
	backoff := initialBackoff
	for {
		res, err := r.supervise(ctx, t, nil)
		switch {
		case errors.Is(err, supervise.ErrWatchdogLost):
			return err // step down: the next term starts with a new watchdog
		case err != nil:
			r.log.Error("cannot run the command", "error", err)
		case ctx.Err() != nil, res.Stopped, !res.Started:
			return nil
		case r.f.exitWithChild:
			r.mu.Lock()
			r.childEnd = &res
			r.mu.Unlock()
			r.log.Info("the command exited; releasing the Lease and exiting with its status (--exit-with-child)", "status", res.Code())
			r.stopRun()
			return nil
		}
		if res.Ran > r.f.maxBackoff {
			backoff = initialBackoff // it ran fine for a while
		}
		pause := wait.Jitter(backoff, 0.2)
		r.log.Warn("the command exited while this replica leads; restarting it", "status", res.String(), "in", pause.Round(time.Millisecond))
		if !sleepCtx(ctx, pause) {
			return nil
		}
		backoff = min(2*backoff, r.f.maxBackoff)
	}
}

func (r *runner) leadEvery(ctx context.Context, t leadership.Term) error {
	last, by := lastRun(t.Values)
	if !last.IsZero() {
		r.log.Info("schedule found on the Lease", "lastStarted", last.Format(time.RFC3339), "by", by)
	}
	for {
		due := nextRun(last, r.f.every, time.Now(), randFraction())
		if d := time.Until(due); d > 0 {
			r.log.Info("next run", "at", due.Format(time.RFC3339), "in", d.Round(time.Second))
			if !sleepCtx(ctx, d) {
				return nil
			}
		}
		start := time.Now()
		stamp := start.UTC().Format(time.RFC3339Nano)
		// Recorded before the run, under the term's fencing: a failover
		// during the run does not make the next leader run it again early.
		if err := r.c.e.Proclaim(ctx, t, map[string]string{
			keyStarted: stamp,
			keyBy:      t.Identity,
		}); err != nil {
			r.log.Info("not running: the term ended before the run could be recorded", "error", err)
			return nil
		}
		last = start
		res, err := r.supervise(ctx, t, map[string]string{"LEADERSHIP_EVERY_STARTED": stamp})
		if errors.Is(err, supervise.ErrWatchdogLost) {
			return err
		}
		if err != nil {
			r.log.Error("cannot run the command", "error", err)
		}
		if res.Started && ctx.Err() == nil {
			// Best effort: the schedule depends only on the start.
			_ = r.c.e.Proclaim(ctx, t, map[string]string{
				keyFinished: time.Now().UTC().Format(time.RFC3339Nano),
				keyExit:     res.String(),
			})
		}
		if ctx.Err() != nil || res.Expiring {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
