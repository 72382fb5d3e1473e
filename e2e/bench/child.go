package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
)

// childEnv carries a child's spec (JSON). A process started with it is a
// candidate process, not the bench: the bench re-executes its own binary so
// that each candidate's CPU and memory are its own process's.
const childEnv = "LEADERSHIP_BENCH_CHILD"

// IsChild reports whether this process was started by the bench as a
// candidate process. A main or TestMain that runs the bench must call
// ChildMain first when it is, before anything else.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// childSpec is what a candidate process runs: Count electors of one
// implementation, on Leases Prefix-0 … Prefix-(Count-1).
type childSpec struct {
	Config     ImplConfig `json:"config"`
	Kubeconfig string     `json:"kubeconfig"`
	Namespace  string     `json:"namespace"`
	Prefix     string     `json:"prefix"`
	Count      int        `json:"count"`
	Identity   string     `json:"identity"`
	// RestartDir, PodUID and RestartMinTerm configure leadership's fast
	// takeover after a restart in place (Config.Restart).
	RestartDir     string        `json:"restart_dir,omitempty"`
	PodUID         string        `json:"pod_uid,omitempty"`
	RestartMinTerm time.Duration `json:"restart_min_term,omitempty"`
}

// childMsg is one line a candidate process writes on its stdout.
type childMsg struct {
	Type    string           `json:"type"` // ready, lead, snap, final
	Lease   int              `json:"lease,omitempty"`
	On      bool             `json:"on,omitempty"`
	Leading int              `json:"leading"`
	Counts  map[string]int64 `json:"counts,omitempty"`
}

// ChildMain runs a candidate process and returns its exit code. It reads
// commands on stdin ("snap": report the request counts so far) and stops
// its electors gracefully (releasing) when stdin closes.
func ChildMain() int {
	if err := childMain(); err != nil {
		fmt.Fprintln(os.Stderr, "bench candidate process:", err)
		return 1
	}
	return 0
}

func childMain() error {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &spec); err != nil {
		return fmt.Errorf("bad %s: %w", childEnv, err)
	}
	silenceKlog()
	rc, err := clientcmd.BuildConfigFromFlags("", spec.Kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS = -1 // no client-side throttling: measure the electors, not the limiter
	cnt := newCounts()
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, c: cnt} })
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}

	// Warnings go to the process's stderr, which the bench keeps in a file.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	send := func(m childMsg) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(m)
		_ = out.Flush()
	}
	var leading atomic.Int64
	lead := func(i int) func(ctx context.Context) {
		return func(ctx context.Context) {
			send(childMsg{Type: "lead", Lease: i, On: true, Leading: int(leading.Add(1))})
			<-ctx.Done()
			send(childMsg{Type: "lead", Lease: i, On: false, Leading: int(leading.Add(-1))})
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range spec.Count {
		name := fmt.Sprintf("%s-%d", spec.Prefix, i)
		switch {
		case spec.Config.Impl == idle:
		case spec.Config.Impl.ours():
			lock, err := kubelease.New(cs.CoordinationV1(), spec.Namespace, name)
			if err != nil {
				return err
			}
			cfg := spec.Config.ours(spec.Identity, log)
			if spec.RestartDir != "" {
				cfg.Restart = leadership.RestartProof{Dir: spec.RestartDir, PodUID: spec.PodUID, MinTerm: spec.RestartMinTerm}
			}
			e, err := leadership.New(lock, cfg)
			if err != nil {
				return err
			}
			work := lead(i)
			wg.Go(func() {
				_ = e.Run(ctx, func(ctx context.Context, _ leadership.Term) error { work(ctx); return nil })
			})
		default:
			lock := &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: spec.Namespace, Name: name},
				Client:     cs.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: spec.Identity},
			}
			cb := leaderelection.LeaderCallbacks{OnStartedLeading: lead(i), OnStoppedLeading: func() {}}
			wg.Go(func() {
				// client-go's elector is single-use; a replica that lost its
				// Lease would restart, so this starts a new elector.
				for ctx.Err() == nil {
					le, err := spec.Config.clientGo(lock, spec.Identity, cb)
					if err != nil {
						fmt.Fprintln(os.Stderr, err)
						return
					}
					le.Run(ctx)
				}
			})
		}
	}
	send(childMsg{Type: "ready"})
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "snap" {
			send(childMsg{Type: "snap", Leading: int(leading.Load()), Counts: cnt.snapshot()})
		}
	}
	cancel()
	wg.Wait()
	send(childMsg{Type: "final", Leading: int(leading.Load()), Counts: cnt.snapshot()})
	return nil
}

// silenceKlog stops client-go's elector logging to stderr.
func silenceKlog() {
	fs := flag.NewFlagSet("bench-klog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
}

// childProc is the bench's handle on a candidate process.
type childProc struct {
	name   string
	impl   Impl
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	pid    int
	errLog string

	ready  chan struct{}
	snaps  chan childMsg
	exited chan struct{}

	mu      sync.Mutex
	leading int
	starts  int       // terms begun
	leadAt  time.Time // when the last term's work began, as reported
	final   *childMsg
	waitErr error
}

func (e *env) spawn(name string, spec childSpec) (*childProc, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	// A bench that dies must not leave candidates behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errPath := filepath.Join(e.dir, name+".stderr")
	ef, err := os.Create(errPath)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	cmd.Stderr = ef
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start candidate process %s: %w", name, err)
	}
	c := &childProc{
		name: name, impl: spec.Config.Impl, cmd: cmd, stdin: stdin, pid: cmd.Process.Pid, errLog: errPath,
		ready: make(chan struct{}), snaps: make(chan childMsg, 1), exited: make(chan struct{}),
	}
	go c.read(stdout)
	return c, nil
}

func (c *childProc) read(stdout io.Reader) {
	defer close(c.exited)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	readyClosed := false
	for sc.Scan() {
		var m childMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		switch m.Type {
		case "ready":
			if !readyClosed {
				close(c.ready)
				readyClosed = true
			}
		case "lead":
			c.mu.Lock()
			c.leading = m.Leading
			if m.On {
				c.starts++
				c.leadAt = time.Now()
			}
			c.mu.Unlock()
		case "snap":
			c.snaps <- m
		case "final":
			c.mu.Lock()
			c.final = &m
			c.mu.Unlock()
		}
	}
	err := c.cmd.Wait()
	c.mu.Lock()
	c.waitErr = err
	c.mu.Unlock()
}

// lastLeadStart is when the process last reported that its work began
// (zero: never).
func (c *childProc) lastLeadStart() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leadAt
}

func (c *childProc) state() (leading, starts int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading, c.starts
}

// snapshot is a candidate process's accounting at one moment.
type snapshot struct {
	proc    procSample
	counts  map[string]int64
	leading int
	starts  int
}

func (c *childProc) snap(timeout time.Duration) (snapshot, error) {
	var s snapshot
	if _, err := io.WriteString(c.stdin, "snap\n"); err != nil {
		return s, fmt.Errorf("candidate process %s: %w (see %s)", c.name, err, c.errLog)
	}
	select {
	case m := <-c.snaps:
		s.counts = m.Counts
	case <-c.exited:
		return s, fmt.Errorf("candidate process %s exited (see %s)", c.name, c.errLog)
	case <-time.After(timeout):
		return s, fmt.Errorf("candidate process %s did not answer within %v", c.name, timeout)
	}
	s.leading, s.starts = c.state()
	p, err := readProc(c.pid)
	s.proc = p
	return s, err
}

// stop closes the process's stdin, which makes it stop its electors
// gracefully, and waits for it to exit; it is killed after timeout.
func (c *childProc) stop(timeout time.Duration) (*childMsg, error) {
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return nil, fmt.Errorf("candidate process %s did not stop within %v; killed", c.name, timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waitErr != nil || c.final == nil {
		return nil, errors.Join(fmt.Errorf("candidate process %s ended badly (see %s)", c.name, c.errLog), c.waitErr)
	}
	return c.final, nil
}

// stopAll stops processes in parallel and returns their final reports.
func stopAll(cs []*childProc, timeout time.Duration) ([]*childMsg, error) {
	out := make([]*childMsg, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { out[i], errs[i] = c.stop(timeout) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// snapAll takes a snapshot of every process, as close together as it can.
func snapAll(cs []*childProc) ([]snapshot, error) {
	out := make([]snapshot, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { out[i], errs[i] = c.snap(30 * time.Second) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func awaitReady(ctx context.Context, cs []*childProc, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, c := range cs {
		select {
		case <-c.ready:
		case <-c.exited:
			return fmt.Errorf("candidate process %s exited at start (see %s)", c.name, c.errLog)
		case <-t.C:
			return fmt.Errorf("candidate process %s not ready within %v", c.name, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// awaitLeaders waits until the processes together lead exactly want Leases.
func awaitLeaders(ctx context.Context, cs []*childProc, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, c := range cs {
			l, _ := c.state()
			n += l
		}
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v the candidate processes lead %d Leases, want %d", timeout, n, want)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}
