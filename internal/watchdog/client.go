package watchdog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultAckTimeout is how long a watchdog may leave a message
// unacknowledged before it counts as lost.
const DefaultAckTimeout = 2 * time.Second

// Options say how to start a watchdog process.
type Options struct {
	// Exe and Args are the watchdog program: it must call Serve with its
	// standard input, file descriptor 3 and the command.
	Exe  string
	Args []string
	// Env is the watchdog's environment, which the command inherits.
	Env []string
	// Stdout and Stderr are the watchdog's and the command's; nil means
	// /dev/null.
	Stdout, Stderr io.Writer
	// AckTimeout: see DefaultAckTimeout (used when zero).
	AckTimeout time.Duration
	// Spawn, if set, wraps the start of the process (a Reaper's Spawn, so
	// that it never reaps the watchdog, which the Client waits for).
	Spawn func(start func() (int, error)) (int, error)
	// Exited, if set, is called with the watchdog's pid once the Client has
	// waited for it (a Reaper's Disown).
	Exited func(pid int)
	// Inherit are files the watchdog process inherits after its report
	// pipe, as descriptors 4, 5, ... (the term's restart lock file, which
	// must stay open until the tree is gone).
	Inherit []*os.File
}

// Client is the supervisor's side of a watchdog process. None of its
// methods blocks on the watchdog: messages go through a queue that a
// goroutine of the Client writes to the pipe, and a watchdog that leaves a
// message unacknowledged for AckTimeout, or exits before its tree is gone,
// counts as lost.
type Client struct {
	cmd     *exec.Cmd
	timeout time.Duration

	mu       sync.Mutex
	queue    []string
	seq      uint64
	sentAt   map[uint64]time.Time // unacknowledged messages
	acked    uint64
	closed   bool
	childPid int
	status   syscall.WaitStatus
	startErr string
	lostErr  error

	wake       chan struct{}
	started    chan struct{}
	childExit  chan struct{}
	gone       chan struct{}
	lost       chan struct{}
	procExited chan struct{}
	once       struct{ started, childExit, gone, lost sync.Once }
}

// Start starts a watchdog process, in a process group of its own (a signal
// to the supervisor's group, such as a terminal's Ctrl-C, must not reach
// it) and without a parent-death signal: it must outlive a killed
// supervisor to kill the tree.
func Start(o Options) (*Client, error) {
	cmd := exec.Command(o.Exe, o.Args...)
	cmd.Env = o.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var closeAfter []*os.File
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	// Output goes through files, never through goroutines that exec.Cmd's
	// Wait would wait for: the tree holds them open until it is dead.
	out, err := outputFile(o.Stdout, &closeAfter)
	if err != nil {
		return nil, err
	}
	errOut, err := outputFile(o.Stderr, &closeAfter)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, errOut
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	reports, reportsW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	closeAfter = append(closeAfter, reportsW)
	cmd.ExtraFiles = append([]*os.File{reportsW}, o.Inherit...)
	start := func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	}
	if o.Spawn != nil {
		_, err = o.Spawn(start)
	} else {
		_, err = start()
	}
	if err != nil {
		reports.Close()
		return nil, fmt.Errorf("watchdog: cannot start %s: %w", o.Exe, err)
	}
	c := &Client{
		cmd: cmd, timeout: o.AckTimeout, sentAt: map[uint64]time.Time{},
		wake: make(chan struct{}, 1), started: make(chan struct{}), childExit: make(chan struct{}),
		gone: make(chan struct{}), lost: make(chan struct{}), procExited: make(chan struct{}),
	}
	if c.timeout <= 0 {
		c.timeout = DefaultAckTimeout
	}
	go c.write(in)
	go c.read(reports)
	go c.monitor()
	go func() {
		_ = cmd.Wait()
		if o.Exited != nil {
			o.Exited(cmd.Process.Pid)
		}
		close(c.procExited)
		select {
		case <-c.gone:
		default:
			c.setLost(fmt.Errorf("watchdog: process %d exited (%v) before the command's tree was gone", cmd.Process.Pid, cmd.ProcessState))
		}
	}()
	return c, nil
}

// outputFile is w as a file the watchdog can inherit: w itself, /dev/null
// for nil, or a pipe copied to w.
func outputFile(w io.Writer, closeAfter *[]*os.File) (*os.File, error) {
	if f, ok := w.(*os.File); ok {
		return f, nil
	}
	if w == nil {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("watchdog: %w", err)
		}
		*closeAfter = append(*closeAfter, f)
		return f, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	*closeAfter = append(*closeAfter, pw)
	go func() {
		_, _ = io.Copy(w, r)
		r.Close()
	}()
	return pw, nil
}

// Pid is the watchdog's process id.
func (c *Client) Pid() int { return c.cmd.Process.Pid }

// SetDeadline arms or moves the kill time (earlier or later); the watchdog
// sends SIGTERM grace before it unless grace is 0. The first deadline
// starts the command.
func (c *Client) SetDeadline(d Deadline, grace time.Duration) {
	c.send(fmt.Sprintf("deadline %%d %d %d %d", int64(d.Mono), int64(d.Boot), int64(grace)))
}

// Stop ends the command: SIGTERM to the whole tree, SIGKILL grace later
// (0: SIGKILL at once). Before the start, the command never starts.
func (c *Client) Stop(grace time.Duration) {
	c.send(fmt.Sprintf("stop %%d %d", int64(max(0, grace))))
}

// Signal forwards sig to the command.
func (c *Client) Signal(sig syscall.Signal) {
	c.send(fmt.Sprintf("signal %%d %d", int(sig)))
}

// send queues a message; format has a %d for the sequence number.
func (c *Client) send(format string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.seq++
	c.queue = append(c.queue, fmt.Sprintf(format, c.seq))
	c.sentAt[c.seq] = time.Now()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// write hands the queue to the pipe; only this goroutine blocks when the
// watchdog stops reading.
func (c *Client) write(w io.WriteCloser) {
	defer w.Close()
	bw := bufio.NewWriter(w)
	for range c.wake {
		c.mu.Lock()
		q, closed := c.queue, c.closed
		c.queue = nil
		c.mu.Unlock()
		for _, l := range q {
			_, _ = bw.WriteString(l + "\n")
		}
		if err := bw.Flush(); err != nil || closed {
			return
		}
	}
}

// read follows the watchdog's reports.
func (c *Client) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		kind, arg, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "ack":
			n, err := strconv.ParseUint(arg, 10, 64)
			if err != nil {
				c.setLost(fmt.Errorf("watchdog: malformed report %q", sc.Text()))
				return
			}
			c.mu.Lock()
			for s := range c.sentAt {
				if s <= n {
					delete(c.sentAt, s)
				}
			}
			c.acked = max(c.acked, n)
			c.mu.Unlock()
		case "started":
			pid, _ := strconv.Atoi(arg)
			c.mu.Lock()
			c.childPid = pid
			c.mu.Unlock()
			c.once.started.Do(func() { close(c.started) })
		case "error":
			c.mu.Lock()
			c.startErr = arg
			c.mu.Unlock()
		case "exited":
			ws, _ := strconv.Atoi(arg)
			c.mu.Lock()
			c.status = syscall.WaitStatus(ws)
			c.mu.Unlock()
			c.once.childExit.Do(func() { close(c.childExit) })
		case "gone":
			c.once.gone.Do(func() { close(c.gone) })
		default:
			c.setLost(fmt.Errorf("watchdog: malformed report %q", sc.Text()))
			return
		}
	}
}

// monitor declares the watchdog lost once a message stays unacknowledged
// past the timeout.
func (c *Client) monitor() {
	t := time.NewTicker(c.timeout / 10)
	defer t.Stop()
	// A message overdue at two checks in a row: after this process itself
	// was stopped, the first check may run before the reader has taken in
	// the answers that arrived meanwhile.
	overdue := false
	for {
		select {
		case <-c.gone:
			return
		case <-c.lost:
			return
		case <-t.C:
		}
		c.mu.Lock()
		var oldest time.Time
		for _, at := range c.sentAt {
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
		c.mu.Unlock()
		late := !oldest.IsZero() && time.Since(oldest) > c.timeout
		if late && !overdue {
			overdue = true
			continue
		}
		overdue = late
		if late {
			c.setLost(fmt.Errorf("watchdog: process %d left a message unanswered for %v (stopped or stuck)", c.Pid(), c.timeout))
			return
		}
	}
}

func (c *Client) setLost(err error) {
	c.once.lost.Do(func() {
		c.mu.Lock()
		c.lostErr = err
		c.mu.Unlock()
		close(c.lost)
	})
}

// Started is closed once the command runs.
func (c *Client) Started() <-chan struct{} { return c.started }

// ChildPid is the command's pid, once Started.
func (c *Client) ChildPid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.childPid
}

// StartError is why the command could not start ("" if it did or has not
// tried yet).
func (c *Client) StartError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startErr
}

// ChildExited is closed once the command exited (Status says how).
func (c *Client) ChildExited() <-chan struct{} { return c.childExit }

// Status is the command's wait status, once ChildExited.
func (c *Client) Status() syscall.WaitStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Gone is closed once the watchdog reported the whole tree dead and reaped.
func (c *Client) Gone() <-chan struct{} { return c.gone }

// Lost is closed when the watchdog can no longer be relied on: it exited
// before the tree was gone, or stopped answering.
func (c *Client) Lost() <-chan struct{} { return c.lost }

// LostReason says why the watchdog is lost.
func (c *Client) LostReason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostErr
}

// Exited is closed once the watchdog process has exited and been waited for.
func (c *Client) Exited() <-chan struct{} { return c.procExited }

// Kill kills the watchdog process (also when it is stopped) and waits for
// its exit. Its tree is re-parented to the nearest subreaper above it.
func (c *Client) Kill() {
	c.shut()
	_ = c.cmd.Process.Signal(os.Kill)
	<-c.procExited
}

// Close ends a watchdog whose tree is gone: it closes the pipe, after
// which the watchdog exits; if it has not within a second (it may be
// stopped), it is killed. Close does not wait for that (Exited does): the
// tree is dead already.
func (c *Client) Close() error {
	c.shut()
	go func() {
		select {
		case <-c.procExited:
		case <-time.After(time.Second):
			_ = c.cmd.Process.Signal(os.Kill)
		}
	}()
	select {
	case <-c.gone:
		return nil
	default:
		return errors.New("watchdog: closed before the command's tree was gone")
	}
}

func (c *Client) shut() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
