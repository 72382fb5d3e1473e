package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// workScript is the leader's critical work: it appends lines tagged with
// its term's token to a shared file, from the shell, from a background
// grandchild and from a daemon that left for a session of its own, every
// 20 ms. On SIGTERM it notes "end" and keeps working, like a task slow to
// stop, so only the SIGKILL at the deadline ends it — the hardest case for
// the rule that it must be dead before the next term.
const workScript = `#!/bin/sh
f=$1
echo "$LEADERSHIP_TOKEN start $LEADERSHIP_IDENTITY $$ $(date +%s%N)" >> "$f"
( trap '' TERM; while :; do echo "$LEADERSHIP_TOKEN tick-bg $LEADERSHIP_IDENTITY $$" >> "$f"; sleep 0.02; done ) &
setsid sh -c 'trap "" TERM INT HUP; while :; do echo "$LEADERSHIP_TOKEN daemon $LEADERSHIP_IDENTITY $$" >> "$1"; sleep 0.02; done' sh "$f" </dev/null >/dev/null 2>&1 &
echo "$LEADERSHIP_TOKEN child $! " >> "$f"
trap 'echo "$LEADERSHIP_TOKEN end $LEADERSHIP_IDENTITY $$ $(date +%s%N)" >> "$f"' TERM
while :; do echo "$LEADERSHIP_TOKEN tick $LEADERSHIP_IDENTITY $$" >> "$f"; sleep 0.02; done
`

type workLine struct {
	token uint64
	kind  string
	who   string
	pid   int
}

func readWork(t *testing.T, path string) []workLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []workLine
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		tok, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatalf("work line %q: %v", l, err)
		}
		w := workLine{token: tok, kind: f[1]}
		if len(f) >= 3 {
			if f[1] == "child" {
				w.pid, _ = strconv.Atoi(f[2])
			} else {
				w.who = f[2]
			}
		}
		if len(f) >= 4 && f[1] != "child" {
			w.pid, _ = strconv.Atoi(f[3])
		}
		out = append(out, w)
	}
	return out
}

// starts returns the start lines in order.
func starts(lines []workLine) []workLine {
	var s []workLine
	for _, l := range lines {
		if l.kind == "start" {
			s = append(s, l)
		}
	}
	return s
}

// checkNoOverlap fails on any line of a term written after a later term's
// first line: appends to one file are ordered in real time, so such a line
// means two terms' work ran at once.
func checkNoOverlap(t *testing.T, lines []workLine) {
	t.Helper()
	var newest uint64
	for i, l := range lines {
		switch {
		case l.token > newest:
			if l.kind != "start" {
				t.Errorf("line %d: token %d wrote %q before its start line", i+1, l.token, l.kind)
			}
			newest = l.token
		case l.token < newest:
			t.Errorf("overlap: line %d: token %d (%s) still working after token %d started", i+1, l.token, l.kind, newest)
		}
	}
}

// waitStart waits for a start line of a token above after and returns it.
func waitStart(t *testing.T, path string, after uint64, timeout time.Duration) workLine {
	t.Helper()
	var got workLine
	e2etest.Eventually(t, timeout, "a new term's work to start", func() bool {
		for _, l := range starts(readWork(t, path)) {
			if l.token > after {
				got = l
				return true
			}
		}
		return false
	})
	return got
}

// TestNoOverlapWhenSupervisorKilledOrStopped runs three `leadership run`
// processes around the work script, kills the leader's supervisor with
// SIGKILL, then stops the next leader's with SIGSTOP past its lease, and
// finds no overlap between the terms' work: the child of a killed or paused
// supervisor is dead before the next term's child starts.
func TestNoOverlapWhenSupervisorKilledOrStopped(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "work.sh")
	if err := os.WriteFile(script, []byte(workScript), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work.log")
	lease := e2etest.LeaseName(t)
	procs := map[string]*proc{}
	launch := func(id string) {
		procs[id] = start(t, id, "run", "--lease", lease, "--identity", id, "--lease-duration", "3s", "--", "sh", script, work)
	}
	for _, id := range []string{"a", "b", "c"} {
		launch(id)
	}

	first := waitStart(t, work, 0, time.Minute)
	t.Logf("%s leads with token %d; kill -9 its supervisor", first.who, first.token)
	procs[first.who].signal(t, syscall.SIGKILL)
	second := waitStart(t, work, first.token, time.Minute)
	if second.who == first.who {
		t.Fatalf("the killed replica %s led again", first.who)
	}
	launch("d") // a replacement, as a Deployment would start

	t.Logf("%s leads with token %d; SIGSTOP its supervisor past the lease", second.who, second.token)
	stopped := procs[second.who]
	stopped.signal(t, syscall.SIGSTOP)
	third := waitStart(t, work, second.token, time.Minute)
	if third.who == second.who {
		t.Fatalf("the stopped replica %s led again", second.who)
	}
	// Its work was killed while its supervisor stayed stopped.
	for _, l := range readWork(t, work) {
		if l.token <= second.token && l.pid != 0 && alive(l.pid) {
			t.Errorf("process %d of token %d is alive after token %d started", l.pid, l.token, third.token)
		}
	}
	stopped.signal(t, syscall.SIGCONT)
	e2etest.Eventually(t, time.Minute, second.who+" to notice its term is over", func() bool {
		return strings.Contains(stopped.stderr.String(), "term ended")
	})
	t.Logf("%s leads with token %d; %s resumed as a follower", third.who, third.token, second.who)

	// SIGTERM: each stops its work, releases if it leads, and exits 0.
	for id, p := range procs {
		if id == first.who {
			continue
		}
		p.signal(t, syscall.SIGTERM)
	}
	for id, p := range procs {
		if id == first.who {
			continue
		}
		if code := p.wait(t, time.Minute); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM, want 0", id, code)
		}
	}
	if h := e2etest.HolderOf(getLease(t, lease)); h != "" {
		t.Errorf("Lease still held by %q after every replica stopped; want it released", h)
	}

	lines := readWork(t, work)
	checkNoOverlap(t, lines)
	if n := len(starts(lines)); n < 3 {
		t.Errorf("%d terms worked, want at least 3", n)
	}
	ended := false
	for _, l := range lines {
		if l.token == third.token && l.kind == "end" {
			ended = true
		}
	}
	if !ended {
		t.Errorf("the last leader's work got no SIGTERM (no end line for token %d)", third.token)
	}
	// Nothing of any term survives.
	for _, l := range lines {
		if l.pid != 0 {
			pid := l.pid
			e2etest.Eventually(t, 10*time.Second, "process "+strconv.Itoa(pid)+" of token "+strconv.FormatUint(l.token, 10)+" to be gone", func() bool { return !alive(pid) })
		}
	}
}

// TestExitWithChild: the child's exit releases the Lease and becomes the
// command's exit status.
func TestExitWithChild(t *testing.T) {
	lease := e2etest.LeaseName(t)
	code, _, stderr := run(t, "run", "--lease", lease, "--lease-duration", "2s", "--exit-with-child", "--", "sh", "-c", "exit 7")
	if code != 7 {
		t.Fatalf("exit code %d, want the child's 7; stderr:\n%s", code, stderr)
	}
	if h := e2etest.HolderOf(getLease(t, lease)); h != "" {
		t.Fatalf("Lease held by %q after run exited; want released", h)
	}
}

// TestRestartsChildWhileLeading: a child that exits is restarted in the
// same term.
func TestRestartsChildWhileLeading(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	lease := e2etest.LeaseName(t)
	p := start(t, "a", "run", "--lease", lease, "--lease-duration", "3s", "--grace", "300ms", "--", "sh", "-c", `echo "$LEADERSHIP_TOKEN" >> `+log)
	e2etest.Eventually(t, time.Minute, "the child to run twice", func() bool {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "\n") >= 2
	})
	b, _ := os.ReadFile(log)
	runs := strings.Fields(string(b))
	if runs[0] != runs[1] {
		t.Errorf("restarted in another term: tokens %v", runs)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}
