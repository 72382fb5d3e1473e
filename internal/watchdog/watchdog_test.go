package watchdog

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the watchdog process.
const serveArg = "watchdog-test-serve"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := Serve(context.Background(), os.Stdin, log); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The race detector's exit delay would slow every watchdog's exit.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

type proc struct {
	cmd  *exec.Cmd
	done chan syscall.WaitStatus
}

// group starts `sleep` in a process group of its own.
func group(t *testing.T) *proc {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan syscall.WaitStatus, 1)}
	go func() {
		_ = cmd.Wait()
		p.done <- cmd.ProcessState.Sys().(syscall.WaitStatus)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitDone is the child's wait status once it ended.
func waitDone(p *proc) <-chan syscall.WaitStatus { return p.done }

func start(t *testing.T) *Client {
	t.Helper()
	c, err := Start(os.Args[0], []string{serveArg}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-c.Exited():
		default:
			c.Abort()
		}
	})
	return c
}

func TestKillsAtDeadline(t *testing.T) {
	child := group(t)
	c := start(t)
	if err := c.Guard(child.pid()); err != nil {
		t.Fatal(err)
	}
	dl := In(300 * time.Millisecond)
	if err := c.SetDeadline(dl, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case ws := <-waitDone(child):
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child ended with %v, want SIGKILL", ws)
		}
		if left := dl.left(); left > 0 {
			t.Fatalf("child killed %v before the deadline", left)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watchdog did not kill the child")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close after the kill: %v", err)
	}
	<-c.Exited()
}

func TestTermThenKill(t *testing.T) {
	// sleep dies of SIGTERM, which shows that it came grace before the
	// deadline rather than at it.
	child := group(t)
	c := start(t)
	_ = c.Guard(child.pid())
	dl := In(10 * time.Second)
	if err := c.SetDeadline(dl, 9500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case ws := <-waitDone(child):
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("child ended with %v, want SIGTERM", ws)
		}
		if dl.left() < time.Second {
			t.Fatal("SIGTERM came too late")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no SIGTERM")
	}
	_ = c.Close()
}

func TestLaterDeadlineDefersKill(t *testing.T) {
	child := group(t)
	c := start(t)
	_ = c.Guard(child.pid())
	_ = c.SetDeadline(In(200*time.Millisecond), 0)
	_ = c.SetDeadline(In(time.Hour), 0) // a renewal arrived
	done := waitDone(child)
	select {
	case ws := <-done:
		t.Fatalf("child killed despite the later deadline: %v", ws)
	case <-time.After(time.Second):
	}
	if err := c.Close(); err != nil {
		t.Fatalf("clean close: %v", err)
	}
	<-c.Exited()
	// A clean close leaves the group alone.
	select {
	case ws := <-done:
		t.Fatalf("child killed by a clean close: %v", ws)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestSupervisorGoneKillsAtOnce(t *testing.T) {
	child := group(t)
	c := start(t)
	_ = c.Guard(child.pid())
	_ = c.SetDeadline(In(time.Hour), 0)
	// Close the pipe without "done", as the kernel does for a supervisor
	// killed with SIGKILL.
	c.mu.Lock()
	c.closed = true
	_ = c.w.Close()
	c.mu.Unlock()
	select {
	case ws := <-waitDone(child):
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child ended with %v, want SIGKILL", ws)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watchdog did not kill the child of a vanished supervisor")
	}
	<-c.Exited()
}

func TestMalformedInputKills(t *testing.T) {
	child := group(t)
	c := start(t)
	_ = c.Guard(child.pid())
	_ = c.send("deadline soon\n")
	select {
	case <-waitDone(child):
	case <-time.After(30 * time.Second):
		t.Fatal("a confused watchdog left the child running")
	}
	<-c.Exited()
}
