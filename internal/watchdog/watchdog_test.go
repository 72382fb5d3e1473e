package watchdog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leadership-dev/leadership/internal/contain"
	"github.com/leadership-dev/leadership/internal/proctest"
)

// The test binary doubles as the watchdog process:
// watchdog-test-serve CGROUP -- CMD [ARGS...].
const serveArg = "watchdog-test-serve"

func TestMain(m *testing.M) {
	if len(os.Args) > 4 && os.Args[1] == serveArg && os.Args[3] == "--" {
		unix.CloseOnExec(3)
		spec := Spec{Command: os.Args[4:], Cgroup: os.Args[2], Stdout: os.Stdout, Stderr: os.Stderr}
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := Serve(context.Background(), os.Stdin, os.NewFile(3, "reports"), spec, log); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The race detector's exit delay would slow every watchdog's exit.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

// start starts a watchdog for a shell script, in cgroup unless "".
func start(t *testing.T, cgroup, script string) *Client {
	t.Helper()
	c, err := Start(Options{
		Exe:        os.Args[0],
		Args:       []string{serveArg, cgroup, "--", "sh", "-c", script},
		Stderr:     os.Stderr,
		AckTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-c.Exited():
		default:
			_ = syscall.Kill(c.Pid(), syscall.SIGCONT)
			c.Kill()
		}
	})
	return c
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// daemons is a script whose work leaves its process group: a setsid
// daemon and a double-forked one in a session of its own, both ignoring
// SIGTERM, their pids written to $1.
func daemons(pids string) string {
	return fmt.Sprintf(`setsid sh -c 'trap "" TERM; echo $$ >> %[1]s; while :; do sleep 0.05; done' </dev/null &
( setsid sh -c 'trap "" TERM; echo $$ >> %[1]s; while :; do sleep 0.05; done' </dev/null & )
trap '' TERM
while :; do sleep 0.05; done`, pids)
}

func TestKillsAtDeadline(t *testing.T) {
	c := start(t, "", "exec sleep 60")
	dl := In(300 * time.Millisecond)
	c.SetDeadline(dl, 0)
	wait(t, c.ChildExited(), "the command's end")
	if ws := c.Status(); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("command ended with %v, want SIGKILL", ws)
	}
	if left := dl.left(); left > 0 {
		t.Fatalf("command killed %v before the deadline", left)
	}
	wait(t, c.Gone(), "the tree gone")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, c.Exited(), "the watchdog's exit")
}

func TestTermThenKill(t *testing.T) {
	// sleep dies of SIGTERM, which shows that it came grace before the
	// deadline rather than at it.
	c := start(t, "", "exec sleep 60")
	dl := In(10 * time.Second)
	c.SetDeadline(dl, 9500*time.Millisecond)
	wait(t, c.ChildExited(), "the command's end")
	if ws := c.Status(); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("command ended with %v, want SIGTERM", ws)
	}
	if dl.left() < time.Second {
		t.Fatal("SIGTERM came too late")
	}
}

func TestLaterDeadlineDefersKill(t *testing.T) {
	c := start(t, "", "exec sleep 60")
	c.SetDeadline(In(200*time.Millisecond), 0)
	c.SetDeadline(In(time.Hour), 0) // a renewal arrived
	wait(t, c.Started(), "the start")
	select {
	case <-c.ChildExited():
		t.Fatalf("command killed despite the later deadline: %v", c.Status())
	case <-time.After(time.Second):
	}
	c.Stop(0)
	wait(t, c.Gone(), "the tree gone")
}

// TestStopBeforeArmingNeverStarts: a term that ends before the watchdog
// was armed never runs the command.
func TestStopBeforeArmingNeverStarts(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	c := start(t, "", "echo > "+marker)
	c.Stop(0)
	c.SetDeadline(In(time.Hour), 0)
	wait(t, c.Gone(), "gone")
	select {
	case <-c.Started():
		t.Fatal("the command started after a stop")
	default:
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
}

// TestStopKillsDaemons: SIGTERM then SIGKILL reach every descendant,
// whatever session it moved to, and gone means they are all gone.
func TestStopKillsDaemons(t *testing.T) {
	for _, mode := range []string{"tree", "cgroup"} {
		t.Run(mode, func(t *testing.T) {
			cg := ""
			if mode == "cgroup" {
				cg = testCgroup(t)
			}
			pidFile := filepath.Join(t.TempDir(), "pids")
			c := start(t, cg, daemons(pidFile))
			c.SetDeadline(In(time.Hour), time.Second)
			pids := proctest.ReadPids(t, pidFile, 2)
			c.Stop(200 * time.Millisecond)
			wait(t, c.Gone(), "the tree gone")
			for _, p := range pids {
				if proctest.Exists(p) {
					t.Errorf("daemon %d exists after gone", p)
				}
			}
			if ws := c.Status(); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("command ended with %v, want SIGKILL after ignoring SIGTERM", ws)
			}
		})
	}
}

// testCgroup makes a sub-cgroup for one test, or skips where none can be
// made.
func testCgroup(t *testing.T) string {
	t.Helper()
	cgs, err := contain.DetectCgroups()
	if err != nil {
		t.Skipf("no cgroup v2 sub-cgroup can be made here: %v", err)
	}
	cg, err := cgs.New(fmt.Sprintf("leadership-watchdog-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cg.Kill()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if p, _ := cg.Populated(); !p {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	})
	return cg.Dir
}

// TestExitKillsLeftovers: when the command exits, what it left behind in
// other sessions is killed, and its status reported.
func TestExitKillsLeftovers(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	c := start(t, "", `setsid sh -c 'trap "" TERM; echo $$ >> `+pidFile+`; exec sleep 600' </dev/null & while [ ! -s `+pidFile+` ]; do sleep 0.01; done; exit 3`)
	c.SetDeadline(In(time.Hour), time.Second)
	wait(t, c.Gone(), "the tree gone")
	if ws := c.Status(); !ws.Exited() || ws.ExitStatus() != 3 {
		t.Fatalf("status %v, want exit 3", ws)
	}
	for _, p := range proctest.ReadPids(t, pidFile, 1) {
		if proctest.Exists(p) {
			t.Errorf("leftover %d exists after gone", p)
		}
	}
}

// TestSupervisorGoneKillsTree: the pipe closes without a stop, as when the
// supervisor is killed: the whole tree dies at once, and the watchdog
// removes the cgroup the supervisor can no longer remove.
func TestSupervisorGoneKillsTree(t *testing.T) {
	for _, mode := range []string{"tree", "cgroup"} {
		t.Run(mode, func(t *testing.T) {
			cg := ""
			if mode == "cgroup" {
				cg = testCgroup(t)
			}
			pidFile := filepath.Join(t.TempDir(), "pids")
			c := start(t, cg, daemons(pidFile))
			c.SetDeadline(In(time.Hour), time.Second)
			pids := proctest.ReadPids(t, pidFile, 2)
			c.shut() // closes the pipe, as the kernel does for a killed supervisor
			wait(t, c.Exited(), "the watchdog's exit")
			for _, p := range pids {
				if proctest.Exists(p) {
					t.Errorf("daemon %d outlived its supervisor", p)
				}
			}
			if cg != "" {
				if _, err := os.Stat(cg); !os.IsNotExist(err) {
					t.Errorf("cgroup %s left behind (%v)", cg, err)
				}
			}
		})
	}
}

func TestMalformedInputKills(t *testing.T) {
	c := start(t, "", "exec sleep 60")
	c.SetDeadline(In(time.Hour), 0)
	wait(t, c.Started(), "the start")
	c.send("deadline %d soon")
	wait(t, c.ChildExited(), "the command killed")
	wait(t, c.Exited(), "the watchdog's exit")
}

func TestSignalForwarded(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	c := start(t, "", `trap 'echo usr1 > `+out+`; exit 0' USR1; echo ready > `+out+`; while :; do sleep 0.05; done`)
	c.SetDeadline(In(time.Hour), 0)
	deadline := time.Now().Add(30 * time.Second)
	for b, _ := os.ReadFile(out); !strings.Contains(string(b), "ready"); b, _ = os.ReadFile(out) {
		if time.Now().After(deadline) {
			t.Fatal("the command did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Signal(syscall.SIGUSR1)
	wait(t, c.Gone(), "the command's exit on SIGUSR1")
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "usr1") {
		t.Fatalf("the command did not get SIGUSR1: %q", b)
	}
}

// TestStoppedWatchdogNeverBlocks: a watchdog stopped with SIGSTOP reads
// nothing; far more deadlines than its pipe holds must still be handed
// over without blocking the supervisor, and the silent watchdog must count
// as lost.
func TestStoppedWatchdogNeverBlocks(t *testing.T) {
	c := start(t, "", "exec sleep 60")
	c.SetDeadline(In(time.Hour), time.Second)
	wait(t, c.Started(), "the start")
	if err := syscall.Kill(c.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const n = 5000 // a 64 KiB pipe holds about 1,200 deadline messages
	done := make(chan int, 1)
	go func() {
		for i := 0; i < n; i++ {
			c.SetDeadline(In(time.Hour+time.Duration(i)*time.Millisecond), time.Second)
			done <- i
		}
	}()
	sent := 0
	for sent < n-1 {
		select {
		case sent = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("SetDeadline blocked after %d messages to a stopped watchdog", sent+1)
		}
	}
	wait(t, c.Lost(), "the stopped watchdog to count as lost")
	t.Logf("lost: %v", c.LostReason())
}
