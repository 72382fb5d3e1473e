package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// e2eModule is the module whose ./cmd/candidate the suite builds.
const e2eModule = "github.com/leadership-dev/leadership/e2e"

// ModuleDir finds the e2e module's directory: from this source file's
// location (go run and go test keep it unless built with -trimpath), else
// from the go.mod that `go env GOMOD` reports for the working directory.
func ModuleDir(ctx context.Context) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
			if isModule(filepath.Join(dir, "go.mod")) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("chaos: cannot find the e2e module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if !isModule(gomod) {
		return "", fmt.Errorf("chaos: cannot find the e2e module (%s): run from inside /e2e of the repository, or pass a prebuilt candidate binary", e2eModule)
	}
	return filepath.Dir(gomod), nil
}

func isModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 && fs[0] == "module" {
			return fs[1] == e2eModule
		}
	}
	return false
}

// Candidate is a built candidate binary.
type Candidate struct {
	Path string
}

// BuildCandidate builds ./cmd/candidate of the e2e module into dir. With
// race, the candidates run under the race detector, so that the elector's
// goroutines are checked under real signals too.
func BuildCandidate(ctx context.Context, dir string, race bool) (Candidate, error) {
	mod, err := ModuleDir(ctx)
	if err != nil {
		return Candidate{}, err
	}
	c := Candidate{Path: filepath.Join(dir, "candidate")}
	args := []string{"build", "-o", c.Path}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/candidate")...)
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return Candidate{}, fmt.Errorf("chaos: go %s (in %s): %w\n%s", strings.Join(args, " "), mod, err, out)
	}
	return c, nil
}

// candidate is one candidate process, with its own proxy to the API server.
type candidate struct {
	impl     string
	identity string
	pod      *pod    // nil unless the fleet restarts in place
	rate     float64 // clock rate, 0 for the real clock
	proxy    *controlplane.Proxy
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	exitErr  error
	// gone is called with the moment the process was reaped.
	gone func(at ledger.Mono)
}

func (c *candidate) pid() int { return c.cmd.Process.Pid }

func (c *candidate) String() string {
	return fmt.Sprintf("%s (%s, pid %d)", c.identity, c.impl, c.pid())
}

// start starts the candidate binary with args, output to c.logPath. The
// process gets SIGKILL if the runner dies, so none is left behind.
func (c *candidate) start(bin string, args []string) error {
	logf, err := os.Create(c.logPath)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("chaos: start %s: %w", bin, err)
	}
	c.exited = make(chan struct{})
	go func() {
		c.exitErr = c.cmd.Wait()
		// Nothing of the process runs after this: it bounds a lead
		// interval the process could not report the end of.
		at := ledger.Now()
		if c.gone != nil {
			c.gone(at)
		}
		logf.Close()
		close(c.exited)
	}()
	return nil
}

func (c *candidate) signal(sig syscall.Signal) error {
	select {
	case <-c.exited:
		return fmt.Errorf("chaos: %s has exited", c)
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("chaos: signal %v to %s: %w", sig, c, err)
	}
	return nil
}

// waitExit waits for the process to exit.
func (c *candidate) waitExit(ctx context.Context) error {
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chaos: %s did not exit: %w", c, ctx.Err())
	}
}

// stop stops the process gracefully, or kills it after grace.
func (c *candidate) stop(grace time.Duration) {
	select {
	case <-c.exited:
		return
	default:
	}
	// A stopped process must run to handle SIGTERM.
	_ = c.cmd.Process.Signal(syscall.SIGCONT)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// logTail returns the last lines of the candidate's log.
func (c *candidate) logTail(lines int) string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// raceReport returns the race detector's report in the log, if any.
func (c *candidate) raceReport() string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	i := bytes.Index(data, []byte("WARNING: DATA RACE"))
	if i < 0 {
		return ""
	}
	return string(data[i:min(len(data), i+4000)])
}
