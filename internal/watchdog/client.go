package watchdog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Client is the supervisor's side: a running watchdog process and the pipe
// to it.
type Client struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	w      io.WriteCloser
	closed bool
	exited chan struct{}
	err    error // the process's exit status, once exited is closed
}

// Start starts the watchdog process: exe with args, which must call Serve on
// its standard input. It runs in a process group of its own, so that a
// signal to the supervisor's group (Ctrl-C in a terminal, a stop) does not
// reach it, and it has no parent-death signal: it must outlive a killed
// supervisor to kill the child's group.
func Start(exe string, args []string, stderr io.Writer) (*Client, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stdout = nil
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("watchdog: cannot start %s: %w", exe, err)
	}
	c := &Client{cmd: cmd, w: w, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.exited)
	}()
	return c, nil
}

// Pid is the watchdog's process id.
func (c *Client) Pid() int { return c.cmd.Process.Pid }

// Exited is closed when the watchdog process has exited. Before Close, that
// means the child is unguarded.
func (c *Client) Exited() <-chan struct{} { return c.exited }

// Guard names the process group to kill. Send it once, with the first
// deadline right after.
func (c *Client) Guard(pgid int) error {
	return c.send(fmt.Sprintf("guard %d\n", pgid))
}

// SetDeadline moves the kill time to d (earlier or later); the watchdog
// sends SIGTERM grace before it unless grace is 0.
func (c *Client) SetDeadline(d Deadline, grace time.Duration) error {
	return c.send(fmt.Sprintf("deadline %d %d %d\n", int64(d.Mono), int64(d.Boot), int64(grace)))
}

func (c *Client) send(s string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("watchdog: closed")
	}
	if _, err := io.WriteString(c.w, s); err != nil {
		return fmt.Errorf("watchdog: process %d is gone: %w", c.cmd.Process.Pid, err)
	}
	return nil
}

// Close tells the watchdog that the child is reaped and its group killed,
// and closes the pipe; the watchdog then exits by itself (Exited). Call it
// only then: a watchdog whose pipe closes without that message (as when
// the supervisor dies) kills the group.
func (c *Client) Close() error {
	err := c.send("done\n")
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		if cerr := c.w.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Abort kills the watchdog process without the clean goodbye; used when the
// child never started.
func (c *Client) Abort() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		_ = c.w.Close()
	}
	c.mu.Unlock()
	_ = c.cmd.Process.Signal(os.Kill)
	<-c.exited
}
