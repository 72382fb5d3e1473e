// Command demo shows leadership at work, as an operator would run it: it
// starts a local control plane (a real kube-apiserver on an embedded etcd,
// in this process), builds the leadership command, and starts three
// `leadership run` replicas around a critical task — a credential renewal
// loop that prints its fencing token. It shows who leads, kills the
// leader's process with SIGKILL and shows the takeover and how long it took,
// performs a graceful `leadership handover`, prints a summary, stops
// everything and exits by itself.
//
//	go -C e2e run ./cmd/demo
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

const lease = "credential-renewer"

// task is the critical work: it must never run on two replicas at once.
const task = `#!/bin/sh
trap 'echo "$(date +%s%N) stop handing back credential (token $LEADERSHIP_TOKEN)"; exit 0' TERM
echo "$(date +%s%N) pid $$"
n=0
while :; do
	n=$((n+1))
	echo "$(date +%s%N) renew db credential #$n, fenced by token $LEADERSHIP_TOKEN"
	sleep 0.7
done
`

func main() {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	leaseDuration := fs.Duration("lease-duration", 4*time.Second, "lease duration of every replica")
	verbose := fs.Bool("verbose", false, "show every log line of the replicas")
	_ = fs.Parse(os.Args[1:])
	d := &demo{began: time.Now(), leaseDuration: *leaseDuration, verbose: *verbose}
	err := d.run()
	d.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// term is one leader's stretch of work, as the task's own lines show it.
type term struct {
	who        string
	token      uint64
	start, end time.Time
	endedBy    string
}

type replica struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{}
	code int
	// taskPid is the pid of this replica's current task, if it leads.
	taskPid int
}

type demo struct {
	began         time.Time
	leaseDuration time.Duration
	verbose       bool

	dir, bin, kubeconfig, script string
	cp                           *controlplane.ControlPlane

	mu       sync.Mutex
	out      sync.Mutex // one line at a time
	replicas []*replica
	terms    []*term
	started  chan struct{} // pulses when a term starts
}

func (d *demo) say(format string, args ...any) {
	d.out.Lock()
	defer d.out.Unlock()
	fmt.Printf("%6.2fs  %s\n", time.Since(d.began).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run() error {
	var err error
	if d.dir, err = os.MkdirTemp("", "leadership-demo-"); err != nil {
		return err
	}
	d.started = make(chan struct{}, 16)
	root, err := repoRoot()
	if err != nil {
		return err
	}

	d.say("building the leadership command and starting a local control plane (embedded etcd + real kube-apiserver)…")
	d.bin = filepath.Join(d.dir, "leadership")
	built := make(chan error, 1)
	go func() {
		build := exec.Command("go", "build", "-o", d.bin, "./cmd/leadership")
		build.Dir = root
		out, err := build.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build ./cmd/leadership: %v\n%s", err, out)
		}
		built <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if d.cp, err = controlplane.Start(ctx, controlplane.Options{}); err != nil {
		return err
	}
	d.kubeconfig = filepath.Join(d.dir, "kubeconfig")
	if err := d.cp.WriteKubeconfig(d.kubeconfig); err != nil {
		return err
	}
	if err := <-built; err != nil {
		return err
	}
	d.script = filepath.Join(d.dir, "renew-credentials.sh")
	if err := os.WriteFile(d.script, []byte(task), 0o755); err != nil {
		return err
	}
	ready := time.Now()
	d.say("ready. Three replicas, each `leadership run --lease %s --lease-duration %v -- renew-credentials.sh`:", lease, d.leaseDuration)

	for _, id := range []string{"replica-a", "replica-b", "replica-c"} {
		if err := d.start(id); err != nil {
			return err
		}
	}
	first, err := d.waitTerm("", 30*time.Second)
	if err != nil {
		return err
	}
	d.sleep(2500 * time.Millisecond)
	d.status()

	// A crash: the leader's process dies without releasing the Lease.
	victim := d.replica(first.who)
	d.mu.Lock()
	taskPid := victim.taskPid
	d.mu.Unlock()
	d.say("✂  kill -9 %s's `leadership run` (pid %d): a crash, no release", first.who, victim.cmd.Process.Pid)
	killedAt := time.Now()
	_ = victim.cmd.Process.Kill()
	<-victim.done
	d.endTerm(first.who, first.token, killedAt, "crash (SIGKILL)")
	if taskPid != 0 {
		gone := waitGone(taskPid, 2*time.Second)
		d.say("   its task (pid %d) died with it: %v (parent-death signal; the watchdog kills the rest of its process group)", taskPid, gone)
	}
	second, err := d.waitTerm(first.who, 30*time.Second)
	if err != nil {
		return err
	}
	crash := second.start.Sub(killedAt)
	d.say("→  %s took over %v after the crash (lease duration %v: the others waited it out, counted from the last renewal they saw)", second.who, crash.Round(time.Millisecond), d.leaseDuration)
	d.say("   %s restarts, as its Deployment would restart the pod, and follows", first.who)
	if err := d.start(first.who); err != nil {
		return err
	}
	d.sleep(2 * time.Second)

	// A graceful handover to a named replica.
	to := "replica-c"
	if second.who == to {
		to = "replica-a"
	}
	d.say("⇄  leadership handover --lease %s --to %s", lease, to)
	askedAt := time.Now()
	code, out := d.cli("handover", "--lease", lease, "--to", to)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		d.say("   │ %s", l)
	}
	if code != 0 {
		return fmt.Errorf("handover failed with exit code %d", code)
	}
	third, err := d.waitTerm(second.who, 30*time.Second)
	if err != nil {
		return err
	}
	var prevEnd time.Time
	for wait := time.Now().Add(5 * time.Second); prevEnd.IsZero() && time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		d.mu.Lock()
		prevEnd = second.end
		d.mu.Unlock()
	}
	if prevEnd.IsZero() {
		return fmt.Errorf("%s's task did not report its stop", second.who)
	}
	gap := third.start.Sub(prevEnd)
	d.say("→  %s took over %v after %s's task exited (%v after the request)", third.who, gap.Round(time.Millisecond), second.who, third.start.Sub(askedAt).Round(time.Millisecond))
	d.sleep(2 * time.Second)
	d.status()

	d.say("■  SIGTERM to every replica: the leader stops its task and releases the Lease; all exit 0")
	for _, r := range d.live() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	codes := []string{}
	for _, r := range d.live() {
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%s did not exit after SIGTERM", r.id)
		}
		codes = append(codes, fmt.Sprintf("%s %d", r.id, r.code))
	}
	d.say("   exit codes: %s", strings.Join(codes, ", "))
	d.status()
	took := time.Since(ready)
	return d.summary(crash, gap, took)
}

func (d *demo) summary(crash, handover, took time.Duration) error {
	d.mu.Lock()
	ts := append([]*term(nil), d.terms...)
	d.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].start.Before(ts[j].start) })
	fmt.Println()
	fmt.Println("summary")
	fmt.Println("  term  holder      fencing token  worked from → to      ended by")
	overlaps := 0
	for i, t := range ts {
		fmt.Printf("  %-4d  %-10s  %-13d  %6.2fs → %6.2fs      %s\n", i+1, t.who, t.token,
			t.start.Sub(d.began).Seconds(), t.end.Sub(d.began).Seconds(), t.endedBy)
		if i > 0 {
			if !ts[i].start.After(ts[i-1].end) {
				overlaps++
			}
			if ts[i].token <= ts[i-1].token {
				return fmt.Errorf("fencing token did not increase: %d after %d", ts[i].token, ts[i-1].token)
			}
		}
	}
	fmt.Printf("  crash takeover %v (lease %v) · graceful handover %v · overlapping terms: %d\n",
		crash.Round(time.Millisecond), d.leaseDuration, handover.Round(time.Millisecond), overlaps)
	fmt.Printf("  the demo ran %v after the build\n", took.Round(100*time.Millisecond))
	if overlaps > 0 {
		return fmt.Errorf("%d overlapping terms", overlaps)
	}
	return nil
}

// start launches one replica, with its task's output and its logs turned
// into the demo's lines.
func (d *demo) start(id string) error {
	cmd := exec.Command(d.bin, "run", "--kubeconfig", d.kubeconfig, "--lease", lease, "--identity", id,
		"--lease-duration", d.leaseDuration.String(), "--log-format", "json", "--", d.script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r := &replica{id: id, cmd: cmd, done: make(chan struct{})}
	d.mu.Lock()
	d.replicas = append(d.replicas, r)
	d.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { d.taskLines(r, stdout) })
	wg.Go(func() { d.logLines(r, stderr) })
	go func() {
		wg.Wait()
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		}
		close(r.done)
	}()
	d.say("   started %s (pid %d)", id, cmd.Process.Pid)
	return nil
}

// taskLines reads the task's output: "NANOS text".
func (d *demo) taskLines(r *replica, rd io.Reader) {
	sc := bufio.NewScanner(rd)
	var current *term
	for sc.Scan() {
		stamp, text, _ := strings.Cut(sc.Text(), " ")
		ns, err := strconv.ParseInt(stamp, 10, 64)
		if err != nil {
			d.say("   %-9s │ %s", r.id, sc.Text())
			continue
		}
		at := time.Unix(0, ns)
		if pid, ok := strings.CutPrefix(text, "pid "); ok {
			n, _ := strconv.Atoi(pid)
			d.mu.Lock()
			r.taskPid = n
			d.mu.Unlock()
			continue
		}
		if i := strings.LastIndex(text, "token "); i >= 0 {
			tok, _ := strconv.ParseUint(strings.TrimRight(text[i+len("token "):], ")"), 10, 64)
			d.mu.Lock()
			if current == nil || current.token != tok {
				current = &term{who: r.id, token: tok, start: at}
				d.terms = append(d.terms, current)
				select {
				case d.started <- struct{}{}:
				default:
				}
			}
			if strings.HasPrefix(text, "stop") {
				current.end, current.endedBy = at, "its term ended (SIGTERM)"
			}
			d.mu.Unlock()
		}
		d.say("   %-9s │ %s", r.id, text)
	}
}

// logLines reads a replica's JSON logs and shows the notable ones.
func (d *demo) logLines(r *replica, rd io.Reader) {
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			// The shell's "Terminated" when its sleep gets SIGTERM is noise.
			if t := strings.TrimSpace(sc.Text()); d.verbose || (t != "" && t != "Terminated") {
				d.say("   %-9s ! %s", r.id, t)
			}
			continue
		}
		msg, _ := l["msg"].(string)
		switch msg {
		case "became leader":
			valid, _ := l["validFor"].(float64) // slog's JSON writes durations in nanoseconds
			token, _ := l["token"].(float64)
			d.say("★  %s leads: fencing token %.0f, valid for %v unless renewed", r.id, token, time.Duration(valid).Round(time.Millisecond))
		case "term ended; lead has returned":
			cause, _ := l["cause"].(string)
			d.say("   %s's term ended (%s); its task has exited", r.id, cause)
			token, _ := l["token"].(float64)
			d.mu.Lock()
			for _, t := range d.terms {
				if t.who == r.id && t.token == uint64(token) {
					t.endedBy = endedBy(cause)
				}
			}
			d.mu.Unlock()
		case "released the lock":
			d.say("   %s released the Lease", r.id)
		case "handover requested; stepping down":
			d.say("   %s saw the handover request (successor %v): stopping its task", r.id, l["successor"])
		default:
			if d.verbose || l["level"] == "ERROR" {
				d.say("   %-9s · %s %v", r.id, msg, l)
			}
		}
	}
}

// endedBy says in a few words why a term ended.
func endedBy(cause string) string {
	switch {
	case strings.Contains(cause, "handover"):
		return "handover (SIGTERM, then release)"
	case strings.Contains(cause, "context canceled"):
		return "shutdown (SIGTERM, then release)"
	case strings.Contains(cause, "validity"):
		return "validity ran out"
	}
	return cause
}

// waitTerm waits for a term of another replica than not to start.
func (d *demo) waitTerm(not string, timeout time.Duration) (*term, error) {
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		if n := len(d.terms); n > 0 && d.terms[n-1].who != not && d.terms[n-1].end.IsZero() {
			t := d.terms[n-1]
			d.mu.Unlock()
			return t, nil
		}
		d.mu.Unlock()
		select {
		case <-d.started:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return nil, fmt.Errorf("no new leader within %v", timeout)
		}
	}
}

func (d *demo) endTerm(who string, token uint64, at time.Time, by string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.terms {
		if t.who == who && t.token == token && t.end.IsZero() {
			t.end, t.endedBy = at, by
		}
	}
}

func (d *demo) status() {
	d.say("$ leadership status --lease %s", lease)
	_, out := d.cli("status", "--lease", lease)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		d.say("   │ %s", l)
	}
}

// cli runs a one-shot leadership command.
func (d *demo) cli(args ...string) (int, string) {
	args = append(args, "--kubeconfig", d.kubeconfig)
	cmd := exec.Command(d.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, out.String()
}

func (d *demo) replica(id string) *replica {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.replicas) - 1; i >= 0; i-- {
		if d.replicas[i].id == id {
			return d.replicas[i]
		}
	}
	return nil
}

func (d *demo) live() []*replica {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*replica
	for _, r := range d.replicas {
		select {
		case <-r.done:
		default:
			out = append(out, r)
		}
	}
	return out
}

func (d *demo) sleep(t time.Duration) { time.Sleep(t) } // pacing for the audience, not a condition

// cleanup leaves nothing running: replicas, their tasks and watchdogs, the
// control plane, the temp dir.
func (d *demo) cleanup() {
	for _, r := range d.live() {
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	if d.cp != nil {
		d.cp.Stop()
	}
	if d.dir != "" {
		left := processesUnder(d.dir)
		if len(left) == 0 {
			d.say("checked: no process of the demo is left running")
		} else {
			d.say("left running (killing them): %v", left)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.RemoveAll(d.dir)
	}
}

// processesUnder lists live processes whose command line mentions dir (the
// replicas, their watchdogs and their tasks).
func processesUnder(dir string) []int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
				continue
			}
			if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
				if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
					continue // a zombie is dead, waiting for its reaper
				}
			}
			pids = append(pids, pid)
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// repoRoot finds the root module: up from the working directory (go -C e2e
// run puts it in e2e/), else from this source file.
func repoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.HasPrefix(b, []byte("module github.com/leadership-dev/leadership\n")) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("cannot find the repository root (the go.mod of github.com/leadership-dev/leadership); run the demo from the repository: go -C e2e run ./cmd/demo")
}
