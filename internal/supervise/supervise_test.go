package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leadership-dev/leadership/internal/contain"
	"github.com/leadership-dev/leadership/internal/proctest"
	"github.com/leadership-dev/leadership/internal/watchdog"
)

const serveArg = "supervise-test-watchdog"

// The test binary doubles as the watchdog process:
// supervise-test-watchdog CGROUP -- CMD [ARGS...].
func TestMain(m *testing.M) {
	if len(os.Args) > 4 && os.Args[1] == serveArg && os.Args[3] == "--" {
		unix.CloseOnExec(3)
		spec := watchdog.Spec{Command: os.Args[4:], Cgroup: os.Args[2], Stdout: os.Stdout, Stderr: os.Stderr}
		if err := watchdog.Serve(context.Background(), os.Stdin, os.NewFile(3, "reports"), spec, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The race detector's exit delay would slow every watchdog's exit.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// newReaper makes the test process a subreaper with a running reaper.
func newReaper(t *testing.T) *contain.Reaper {
	t.Helper()
	r, err := contain.NewReaper(testLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

func starter(r *contain.Reaper) StartWatchdog {
	return func(command, env []string, cgroup string) (*watchdog.Client, error) {
		return watchdog.Start(watchdog.Options{
			Exe:    os.Args[0],
			Args:   append([]string{serveArg, cgroup, "--"}, command...),
			Env:    env,
			Stderr: os.Stderr,
			Spawn:  r.Spawn,
			Exited: r.Disown,
		})
	}
}

// validFor is a term that stays valid until d from now.
func validFor(d time.Duration) func() time.Duration {
	end := time.Now().Add(d)
	return func() time.Duration { return time.Until(end) }
}

func opts(t *testing.T, script string, remaining func() time.Duration, grace time.Duration) Options {
	r := newReaper(t)
	return Options{
		Command:       []string{"sh", "-c", script},
		Env:           Environ(map[string]string{"LEADERSHIP_LEASE": "ns/lease", "LEADERSHIP_IDENTITY": "me", "LEADERSHIP_TOKEN": "42"}),
		Remaining:     remaining,
		Grace:         grace,
		StartWatchdog: starter(r),
		Reaper:        r,
		Logger:        testLog,
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestExitCodeAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	o := opts(t, `echo "$LEADERSHIP_LEASE $LEADERSHIP_IDENTITY $LEADERSHIP_TOKEN" > `+out+`; exit 7`, validFor(time.Hour), time.Second)
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exited || res.ExitCode != 7 || res.Code() != 7 || res.Stopped {
		t.Fatalf("result %+v, want exit code 7", res)
	}
	b, _ := os.ReadFile(out)
	if got := strings.TrimSpace(string(b)); got != "ns/lease me 42" {
		t.Fatalf("child saw %q", got)
	}
}

func TestStopKillsWholeGroup(t *testing.T) {
	dir := t.TempDir()
	bg := filepath.Join(dir, "bg")
	// A grandchild in the background, and a child that exits on SIGTERM.
	script := `sleep 600 & echo $! > ` + bg + `; trap 'exit 0' TERM; while :; do sleep 0.05; done`
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() {
		res, err := Run(ctx, opts(t, script, validFor(time.Hour), 5*time.Second))
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	grandchild := proctest.ReadPids(t, bg, 1)[0]
	cancel()
	res := <-done
	if !res.Stopped || res.Expiring {
		t.Fatalf("result %+v, want stopped", res)
	}
	if res.Ran > 4*time.Second {
		t.Fatalf("a child that exits on SIGTERM took %v to stop", res.Ran)
	}
	proctest.Eventually(t, fmt.Sprintf("grandchild %d gone after the stop", grandchild), func() bool { return !alive(grandchild) })
}

func TestGraceThenSIGKILL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan time.Time, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancelled <- time.Now()
		cancel()
	}()
	const grace = 700 * time.Millisecond
	res, err := Run(ctx, opts(t, `trap '' TERM; while :; do sleep 0.05; done`, validFor(time.Hour), grace))
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != syscall.SIGKILL {
		t.Fatalf("result %+v, want killed by SIGKILL", res)
	}
	if took := time.Since(<-cancelled); took < grace {
		t.Fatalf("SIGKILL after %v, before the grace of %v", took, grace)
	}
}

func TestStopsBeforeValidityEnds(t *testing.T) {
	// Renewals never come: the child, which ignores SIGTERM, must be dead
	// before the validity ends.
	end := time.Now().Add(3 * time.Second)
	remaining := func() time.Duration { return time.Until(end) }
	res, err := Run(context.Background(), opts(t, `trap '' TERM; while :; do sleep 0.05; done`, remaining, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Expiring || res.Signal != syscall.SIGKILL {
		t.Fatalf("result %+v, want stopped by SIGKILL as the term expired", res)
	}
	if now := time.Now(); !now.Before(end) {
		t.Fatalf("child reaped %v after the validity ended", now.Sub(end))
	}
}

func TestNotStartedWithoutValidity(t *testing.T) {
	res, err := Run(context.Background(), opts(t, `exit 0`, validFor(500*time.Millisecond), time.Second))
	if err != nil || res.Started || !res.Expiring {
		t.Fatalf("result %+v, %v; want not started", res, err)
	}
}

func TestCommandNotFound(t *testing.T) {
	o := opts(t, "", validFor(time.Hour), time.Second)
	o.Command = []string{"/nonexistent/leadership-test-command"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Fatalf("err = %v", err)
	}
}

// daemons is a script whose work leaves its process group: a setsid
// daemon and a double-forked one in a session of its own, both ignoring
// SIGTERM, their pids written to pids; the script itself exits on SIGTERM
// after writing "term" to pids+".term".
func daemons(pids string) string {
	return `setsid sh -c 'trap "" TERM; echo $$ >> ` + pids + `; while :; do sleep 0.05; done' </dev/null &
( setsid sh -c 'trap "" TERM; echo $$ >> ` + pids + `; while :; do sleep 0.05; done' </dev/null & )
trap 'echo term > ` + pids + `.term; exit 0' TERM
while :; do sleep 0.05; done`
}

// TestStopKillsDaemons: a stop reaches the daemons that left the process
// group, and Run returns only once they are all gone.
func TestStopKillsDaemons(t *testing.T) {
	for _, mode := range []string{"tree", "cgroup"} {
		t.Run(mode, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids")
			o := opts(t, daemons(pidFile), validFor(time.Hour), 300*time.Millisecond)
			if mode == "cgroup" {
				cgs, err := contain.DetectCgroups()
				if err != nil {
					t.Skipf("no cgroup v2 sub-cgroup can be made here: %v", err)
				}
				o.Cgroups = cgs
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan Result, 1)
			go func() {
				res, err := Run(ctx, o)
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
			pids := proctest.ReadPids(t, pidFile, 2)
			cancel()
			res := <-done
			if !res.Stopped || !res.Started {
				t.Fatalf("result %+v, want started and stopped", res)
			}
			for _, p := range pids {
				if proctest.Exists(p) {
					t.Errorf("daemon %d exists after Run returned", p)
				}
			}
		})
	}
}

var errForeign = errors.New("someone else holds the Lease")

// TestKillAtOnceOnForeignWrite: when the term ends because someone else
// wrote the Lease, the tree gets SIGKILL at once: no SIGTERM, no grace.
func TestKillAtOnceOnForeignWrite(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	o := opts(t, daemons(pidFile), validFor(time.Hour), 20*time.Second)
	o.KillAtOnce = func(cause error) bool { return errors.Is(cause, errForeign) }
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan Result, 1)
	go func() {
		res, err := Run(ctx, o)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	pids := proctest.ReadPids(t, pidFile, 2)
	cancel(fmt.Errorf("term ended: %w", errForeign))
	cancelled := time.Now()
	res := <-done
	if took := time.Since(cancelled); took > 10*time.Second {
		t.Errorf("the stop took %v: the grace of 20s was waited for", took)
	}
	if res.Signal != syscall.SIGKILL {
		t.Errorf("result %+v, want killed by SIGKILL", res)
	}
	if _, err := os.Stat(pidFile + ".term"); err == nil {
		t.Error("the command got SIGTERM; a foreign write calls for SIGKILL at once")
	}
	for _, p := range pids {
		if proctest.Exists(p) {
			t.Errorf("daemon %d exists after Run returned", p)
		}
	}
}

// TestLostWatchdogKillsTree: a watchdog that stops answering (SIGSTOP) is
// lost; Run kills it and the whole tree itself and says so.
func TestLostWatchdogKillsTree(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	r := newReaper(t)
	o := opts(t, daemons(pidFile), validFor(time.Hour), time.Second)
	o.Reaper = r
	o.StartWatchdog = func(command, env []string, cgroup string) (*watchdog.Client, error) {
		c, err := watchdog.Start(watchdog.Options{
			Exe: os.Args[0], Args: append([]string{serveArg, cgroup, "--"}, command...), Env: env,
			Stderr: os.Stderr, Spawn: r.Spawn, Exited: r.Disown, AckTimeout: 500 * time.Millisecond,
		})
		if err == nil {
			go func() {
				proctest.ReadPids(t, pidFile, 2)
				_ = syscall.Kill(c.Pid(), syscall.SIGSTOP)
			}()
		}
		return c, err
	}
	res, err := Run(context.Background(), o)
	if !errors.Is(err, ErrWatchdogLost) {
		t.Fatalf("err = %v, want ErrWatchdogLost", err)
	}
	if !res.Stopped {
		t.Errorf("result %+v, want stopped", res)
	}
	for _, p := range proctest.ReadPids(t, pidFile, 2) {
		if proctest.Exists(p) {
			t.Errorf("daemon %d exists after Run returned", p)
		}
	}
}

// freeze puts pid into a frozen cgroup v1 freezer: a SIGKILL then stays
// pending and the process lives on, in uninterruptible sleep (state D),
// until thawed — as a process blocked in the kernel would. It returns the
// thaw function, or skips the test where there is no v1 freezer to use.
func freeze(t *testing.T, pid int) (thaw func()) {
	t.Helper()
	const root = "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v1 freezer hierarchy at %s to hold a process in uninterruptible sleep", root)
	}
	dir := filepath.Join(root, fmt.Sprintf("leadership-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot use the cgroup v1 freezer (needs root): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("FROZEN"), 0); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw = func() {
		if !thawed {
			thawed = true
			_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		}
	}
	t.Cleanup(func() {
		thaw()
		for i := 0; i < 1000 && os.Remove(dir) != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	return thaw
}

// TestReturnsOnlyOnceTreeIsDead: a descendant in uninterruptible sleep does
// not die of SIGKILL until it leaves it. Run (and so the release) must wait
// for it: signalled is not dead.
func TestReturnsOnlyOnceTreeIsDead(t *testing.T) {
	bg := filepath.Join(t.TempDir(), "bg")
	script := `sleep 600 & echo $! > ` + bg + `; trap 'exit 0' TERM; while :; do sleep 0.05; done`
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := Run(ctx, opts(t, script, validFor(time.Hour), 200*time.Millisecond)); err != nil {
			t.Error(err)
		}
	}()
	pid := proctest.ReadPids(t, bg, 1)[0]
	thaw := freeze(t, pid)
	cancel()
	// Run must not return while the frozen process exists.
	until := time.Now().Add(2 * time.Second)
	for time.Now().Before(until) {
		select {
		case <-done:
			if proctest.Exists(pid) {
				t.Fatalf("Run returned while process %d (killed, in uninterruptible sleep) still exists", pid)
			}
			t.Fatalf("process %d died while frozen: the test cannot hold a process in uninterruptible sleep here", pid)
		case <-time.After(20 * time.Millisecond):
		}
	}
	thaw()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the process was thawed")
	}
	if proctest.Exists(pid) {
		t.Fatalf("process %d exists after Run returned", pid)
	}
}
