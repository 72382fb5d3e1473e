package supervise

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/internal/watchdog"
)

const serveArg = "supervise-test-watchdog"

// The test binary doubles as the watchdog process.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		if err := watchdog.Serve(context.Background(), os.Stdin, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The race detector's exit delay would slow every watchdog's exit.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

func startWatchdog() (*watchdog.Client, error) {
	return watchdog.Start(os.Args[0], []string{serveArg}, os.Stderr)
}

// validFor is a term that stays valid until d from now.
func validFor(d time.Duration) func() time.Duration {
	end := time.Now().Add(d)
	return func() time.Duration { return time.Until(end) }
}

func opts(t *testing.T, script string, remaining func() time.Duration, grace time.Duration) Options {
	return Options{
		Command:       []string{"sh", "-c", script},
		Env:           Environ(map[string]string{"LEADERSHIP_LEASE": "ns/lease", "LEADERSHIP_IDENTITY": "me", "LEADERSHIP_TOKEN": "42"}),
		Stderr:        os.Stderr,
		Remaining:     remaining,
		Grace:         grace,
		StartWatchdog: startWatchdog,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			n, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	grandchild := readPid(t, bg)
	cancel()
	res := <-done
	if !res.Stopped || res.Expiring {
		t.Fatalf("result %+v, want stopped", res)
	}
	if res.Ran > 4*time.Second {
		t.Fatalf("a child that exits on SIGTERM took %v to stop", res.Ran)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d outlived the stop", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
