// Package watchdog runs a supervised command for one leadership term from
// a process of its own, and makes sure that the command and everything it
// started is dead when the term ends: also if the supervisor (leadership
// run) is stopped (SIGSTOP, a frozen cgroup) or killed.
//
// The watchdog process is the command's parent and a child subreaper, so
// every descendant of the command — whatever session or process group it
// moved to, however often it forked — stays in the watchdog's tree: an
// orphan is re-parented to the watchdog, which reaps it. The command is
// started only once the watchdog holds its first deadline, in a session of
// its own, with the parent-death signal SIGKILL, and, when the supervisor
// names one, straight into a cgroup v2 sub-cgroup (CLONE_INTO_CGROUP).
//
// The supervisor writes one line per message on the watchdog's standard
// input; each carries a sequence number that the watchdog acknowledges:
//
//	deadline SEQ M B G   SIGKILL the tree at CLOCK_MONOTONIC M or CLOCK_BOOTTIME
//	                     B (nanoseconds), whichever comes first; SIGTERM it G
//	                     nanoseconds before (G = 0: no SIGTERM). The first
//	                     deadline starts the command.
//	stop SEQ G           the term ended: SIGTERM the tree now and SIGKILL it G
//	                     nanoseconds later (or at the deadline, if earlier);
//	                     G = 0: SIGKILL now. Before the start: never start.
//	signal SEQ N         forward signal N to the command
//
// End of input before the tree is gone means the supervisor died: SIGKILL
// the tree at once. The watchdog reports on file descriptor 3:
//
//	ack SEQ              every message up to SEQ is applied
//	started PID          the command runs as PID
//	error TEXT           the command could not be started
//	exited STATUS        the command exited with this wait status
//	gone                 the command and every descendant are dead and reaped
//	                     (and the cgroup, if any, is empty)
//
// When the command exits, whatever it left behind is killed at once. After
// "gone" the watchdog exits when its input ends.
package watchdog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leadership-dev/leadership/internal/contain"
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

// killEvery is how often a tree being killed is walked and signalled again,
// until it is gone.
const killEvery = 20 * time.Millisecond

// Spec is the command the watchdog runs.
type Spec struct {
	// Command is the program (a path, or a name looked up in PATH) and its
	// arguments.
	Command []string
	// Env is its environment; nil means the watchdog's own.
	Env []string
	// Cgroup, if set, is a cgroup v2 directory to start the command in.
	Cgroup string
	// Stdout and Stderr are the command's; nil means /dev/null. Its
	// standard input is /dev/null.
	Stdout, Stderr *os.File
	// Inherit are files the command inherits as descriptors 3, 4, ...
	// The watchdog keeps its own descriptors of them open until it exits,
	// which is after the tree is gone.
	Inherit []*os.File
}

// Serve is the watchdog process's main loop: it reads the protocol from in,
// writes its reports to out, starts, signals and kills as told, and returns
// once the tree is gone and in has ended: nil if the supervisor said
// goodbye properly (the tree was gone before in ended), an error if the
// supervisor vanished or could not be understood (after killing the tree).
// It must be the only code of its process that starts or waits for
// processes.
func Serve(ctx context.Context, in io.Reader, out io.Writer, spec Spec, log *slog.Logger) error {
	if len(spec.Command) == 0 {
		return errors.New("watchdog: no command")
	}
	// The parent-death signal follows the thread that forked the command.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := contain.BecomeSubreaper(); err != nil {
		return err
	}
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	rep := newReporter(out)
	defer rep.close()
	w := &server{spec: spec, log: log, rep: rep, self: os.Getpid()}
	if spec.Cgroup != "" {
		w.cg = &contain.Cgroup{Dir: spec.Cgroup}
	}

	type msg struct {
		line string
		err  error // non-nil: input ended (io.EOF: cleanly)
	}
	msgs := make(chan msg)
	readerCtx, stopReader := context.WithCancel(ctx)
	defer stopReader()
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case msgs <- msg{line: sc.Text()}:
			case <-readerCtx.Done():
				return
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		select {
		case msgs <- msg{err: err}:
		case <-readerCtx.Done():
		}
	}()

	timer := time.NewTimer(poll)
	defer timer.Stop()
	var failure error
	inputEnded := false
	for {
		w.step()
		if w.gone && inputEnded {
			if failure != nil && w.cg != nil {
				// The supervisor, which removes the cgroup, is gone.
				if err := w.cg.Remove(); err != nil {
					w.log.Warn("watchdog: cannot remove the command's cgroup", "error", err)
				}
			}
			return failure
		}
		timer.Reset(w.wait())
		select {
		case <-ctx.Done():
			w.killing = true
			w.step()
			return ctx.Err()
		case <-timer.C:
		case <-sigchld:
		case m := <-msgs:
			if m.err != nil {
				inputEnded = true
				if !w.gone {
					w.kill("the supervisor is gone")
					failure = fmt.Errorf("watchdog: supervisor gone (input ended: %v); killed the command's tree", m.err)
				}
				continue
			}
			if err := w.apply(m.line); err != nil {
				w.kill("the supervisor's message cannot be understood")
				failure = err
				inputEnded = true // stop listening to a supervisor we cannot follow
			}
		}
	}
}

// server is the watchdog's state.
type server struct {
	spec Spec
	log  *slog.Logger
	rep  *reporter
	cg   *contain.Cgroup
	self int

	deadline Deadline
	grace    time.Duration
	armed    bool // a deadline is set
	termSent bool

	child     int  // the command's pid, once started
	started   bool // (or failed to start)
	exited    bool // the command was reaped
	stopAt    time.Time
	stopping  bool // SIGTERM sent, SIGKILL at stopAt
	killing   bool // SIGKILL the tree until it is gone
	lastKill  time.Time
	noChild   bool // wait4 found no child left
	gone      bool
	neverRuns bool // stopped before the start
}

func (w *server) kill(why string) {
	if !w.killing {
		w.log.Warn("watchdog: killing the command's tree", "why", why)
	}
	w.killing = true
	w.step()
}

// step does what is due: reap, notice the tree gone, signal on time.
func (w *server) step() {
	if w.gone {
		return
	}
	if !w.started && w.killing {
		w.neverRuns = true // the term ended before the command could start
	}
	if w.started && !w.neverRuns {
		w.reap()
	}
	if (w.neverRuns || (w.exited && w.noChild)) && !w.populated() {
		w.gone = true
		w.rep.send("gone")
		return
	}
	if !w.killing && w.armed {
		left := w.deadline.left()
		if !w.termSent && w.grace > 0 && left <= w.grace && !w.stopping {
			w.termSent = true
			w.log.Warn("watchdog: the term's validity ends within the grace period and the supervisor has not stopped the command; SIGTERM")
			w.signalTree(syscall.SIGTERM)
		}
		if left <= 0 {
			w.log.Warn("watchdog: the term's validity ended; SIGKILL")
			w.killing = true
		}
	}
	if !w.killing && w.stopping && !time.Now().Before(w.stopAt) {
		w.log.Warn("watchdog: the command did not exit within its grace period; SIGKILL")
		w.killing = true
	}
	if w.killing && w.started && time.Since(w.lastKill) >= killEvery {
		w.lastKill = time.Now()
		w.signalTree(syscall.SIGKILL)
		if w.cg != nil {
			if err := w.cg.Kill(); err != nil {
				w.log.Error("watchdog: cgroup.kill failed", "error", err)
			}
		}
	}
}

// wait is how long the loop may sleep before step has something to do.
func (w *server) wait() time.Duration {
	d := poll
	if w.gone {
		return d
	}
	if w.killing {
		return killEvery
	}
	if w.armed {
		left := w.deadline.left()
		if !w.termSent && w.grace > 0 && !w.stopping {
			left -= w.grace
		}
		d = min(d, left)
	}
	if w.stopping {
		d = min(d, time.Until(w.stopAt))
	}
	return max(0, d)
}

// reap collects every exited child. Once none is left (ECHILD), no
// descendant is left either: as a subreaper, every orphan below came to us.
func (w *server) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.ECHILD) {
			w.noChild = true
			return
		}
		if err != nil || pid <= 0 {
			return
		}
		if pid == w.child && !w.exited {
			w.exited = true
			w.rep.send("exited " + strconv.Itoa(int(ws)))
			if !w.killing {
				w.log.Debug("watchdog: the command exited; killing what it left behind", "status", ws)
				w.killing = true
			}
		}
	}
}

func (w *server) populated() bool {
	if w.cg == nil || w.neverRuns {
		return false
	}
	p, err := w.cg.Populated()
	if err != nil {
		w.log.Error("watchdog: cannot read the cgroup's state", "error", err)
		return true // unknown: keep killing and asking
	}
	return p
}

// signalTree signals every descendant of the watchdog: the whole tree.
func (w *server) signalTree(sig syscall.Signal) {
	procs, err := contain.List()
	if err != nil {
		w.log.Error("watchdog: cannot list processes", "error", err)
		return
	}
	contain.Signal(contain.Descendants(procs, w.self), sig)
}

// apply carries out one message of the supervisor, acknowledges it and
// does what is then due; a malformed message changes nothing.
func (w *server) apply(line string) error {
	m, err := parseMessage(line)
	if err != nil {
		return err
	}
	switch m.kind {
	case "deadline":
		w.onDeadline(m.deadline, m.grace)
	case "stop":
		w.onStop(m.grace)
	case "signal":
		w.onSignal(m.signal)
	}
	w.rep.send("ack " + m.seq)
	w.step()
	return nil
}

// onDeadline arms or moves the deadline; the first one starts the command.
// A new grace allows a new SIGTERM.
func (w *server) onDeadline(d Deadline, grace time.Duration) {
	w.deadline = d
	if grace != w.grace {
		w.termSent = false
	}
	w.grace = grace
	w.armed = true
	if !w.started && !w.neverRuns && !w.killing && w.deadline.left() > 0 {
		w.start()
	}
}

// onStop ends the command: never started, killed now (grace 0), or sent
// SIGTERM and killed grace later.
func (w *server) onStop(grace time.Duration) {
	switch {
	case !w.started:
		w.neverRuns = true
	case grace == 0:
		w.killing = true
	case !w.stopping && !w.killing:
		w.stopping = true
		w.stopAt = time.Now().Add(grace)
		w.signalTree(syscall.SIGTERM)
	}
}

// onSignal forwards sig to the command while it runs.
func (w *server) onSignal(sig syscall.Signal) {
	if w.started && !w.exited && w.child > 0 {
		_ = syscall.Kill(w.child, sig)
	}
}

// message is one line of the supervisor's protocol (see the package
// documentation).
type message struct {
	kind     string // "deadline", "stop" or "signal"
	seq      string // to acknowledge
	deadline Deadline
	grace    time.Duration // deadline: SIGTERM this long before; stop: SIGKILL this long after
	signal   syscall.Signal
}

// parseMessage reads one line of the protocol, or says that it is
// malformed: an unknown kind, a missing, extra or non-numeric field, a
// negative grace, a signal number out of range.
func parseMessage(line string) (message, error) {
	bad := func() (message, error) { return message{}, fmt.Errorf("watchdog: malformed message %q", line) }
	f := strings.Fields(line)
	if len(f) < 2 {
		return bad()
	}
	m := message{kind: f[0], seq: f[1]}
	if _, err := strconv.ParseUint(m.seq, 10, 64); err != nil {
		return bad()
	}
	var args int
	switch m.kind {
	case "deadline":
		args = 3
	case "stop", "signal":
		args = 1
	}
	if args == 0 || len(f) != 2+args {
		return bad()
	}
	v := make([]int64, args)
	for i := range v {
		x, err := strconv.ParseInt(f[2+i], 10, 64)
		if err != nil {
			return bad()
		}
		v[i] = x
	}
	switch m.kind {
	case "deadline":
		if v[2] < 0 {
			return bad()
		}
		m.deadline = Deadline{Mono: time.Duration(v[0]), Boot: time.Duration(v[1])}
		m.grace = time.Duration(v[2])
	case "stop":
		if v[0] < 0 {
			return bad()
		}
		m.grace = time.Duration(v[0])
	case "signal":
		if v[0] <= 0 || v[0] > 64 {
			return bad()
		}
		m.signal = syscall.Signal(v[0])
	}
	return m, nil
}

// start starts the command, in a session of its own (so that nothing of
// its tree can join the supervisor's process group), dying with this
// thread, and in the cgroup if there is one.
func (w *server) start() {
	w.started = true
	fail := func(err error) {
		w.log.Error("watchdog: cannot start the command", "error", err)
		w.rep.send("error " + strings.ReplaceAll(err.Error(), "\n", " "))
		w.neverRuns = true
	}
	path := w.spec.Command[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			fail(err)
			return
		}
		path = p
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		fail(err)
		return
	}
	defer null.Close()
	files := []*os.File{null, w.spec.Stdout, w.spec.Stderr}
	for i, f := range files {
		if f == nil {
			files[i] = null
		}
	}
	files = append(files, w.spec.Inherit...)
	sys := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if w.cg != nil {
		fd, err := w.cg.Open()
		if err != nil {
			fail(err)
			return
		}
		defer unix.Close(fd)
		sys.UseCgroupFD, sys.CgroupFD = true, fd
	}
	env := w.spec.Env
	if env == nil {
		env = os.Environ()
	}
	p, err := os.StartProcess(path, w.spec.Command, &os.ProcAttr{Env: env, Files: files, Sys: sys})
	if err != nil {
		fail(fmt.Errorf("cannot start %q: %w", w.spec.Command[0], err))
		return
	}
	w.child = p.Pid
	// This loop reaps it with wait4; the handle is not needed.
	_ = p.Release()
	w.rep.send("started " + strconv.Itoa(w.child))
}

// reporter writes reports from a goroutine of its own, so that the loop
// that keeps the deadline never blocks on a supervisor that stopped
// reading. Acknowledgements are cumulative: only the latest is kept.
type reporter struct {
	mu     sync.Mutex
	lines  []string
	ack    string
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func newReporter(out io.Writer) *reporter {
	r := &reporter{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		bw := bufio.NewWriter(out)
		for range r.wake {
			r.mu.Lock()
			lines, ack, closed := r.lines, r.ack, r.closed
			r.lines, r.ack = nil, ""
			r.mu.Unlock()
			for _, l := range lines {
				_, _ = bw.WriteString(l + "\n")
			}
			if ack != "" {
				_, _ = bw.WriteString(ack + "\n")
			}
			if bw.Flush() != nil || closed {
				return
			}
		}
	}()
	return r
}

func (r *reporter) send(line string) {
	r.mu.Lock()
	if strings.HasPrefix(line, "ack ") {
		r.ack = line
	} else {
		r.lines = append(r.lines, line)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// close flushes what is queued, waiting at most a second for a reader.
func (r *reporter) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
	case <-time.After(time.Second):
	}
}
