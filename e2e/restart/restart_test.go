package restart

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// lease is short so that the cases that must wait it out stay short; the
// fast takeover does not depend on it.
const lease = 4 * time.Second

// proc is one candidate process.
type proc struct {
	cmd     *exec.Cmd
	started time.Duration // CLOCK_MONOTONIC just before exec
	mu      sync.Mutex
	lines   []string
	stderr  *e2etest.SyncBuffer
	exited  chan struct{}
}

type spec struct {
	lease, identity, podUID, dir string
	minTerm                      string
	grandchild                   bool
}

func start(t *testing.T, kubeconfig string, s spec) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		candidateEnv+"=1",
		"KUBECONFIG="+kubeconfig,
		"LEASE="+s.lease,
		"IDENTITY="+s.identity,
		"LEASE_DURATION="+lease.String(),
		"RESTART_DIR="+s.dir,
		"POD_UID="+s.podUID,
		"RESTART_MIN_TERM="+s.minTerm,
	)
	if s.grandchild {
		cmd.Env = append(cmd.Env, "GRANDCHILD=1")
	}
	p := &proc{cmd: cmd, stderr: &e2etest.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.started = time.Duration(mono())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.exited
		if gc := p.field("grandchild", 1); gc != "" {
			if pid, err := strconv.Atoi(gc); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("candidate %d (%s in %s) stderr:\n%s", cmd.Process.Pid, s.podUID, s.dir, p.stderr.String())
		}
	})
	return p
}

// field returns field i of the first line starting with key, "" if none.
func (p *proc) field(key string, i int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		f := strings.Fields(l)
		if len(f) > i && f[0] == key {
			return f[i]
		}
	}
	return ""
}

// leading waits until p leads and returns its token and when it began to
// lead, counted from just before p was started.
func (p *proc) leading(t *testing.T, timeout time.Duration) (token uint64, after time.Duration) {
	t.Helper()
	e2etest.Eventually(t, timeout, "the candidate leads", func() bool { return p.field("leading", 1) != "" })
	token, err := strconv.ParseUint(p.field("leading", 1), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	at, err := strconv.ParseInt(p.field("leading", 2), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return token, time.Duration(at) - p.started
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

type env struct {
	kubeconfig, lease string
}

func setup(t *testing.T) env {
	t.Helper()
	t.Parallel()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	return env{kubeconfig: kc, lease: e2etest.LeaseName(t)}
}

// leader starts the first process of replica "pod-0", which leads, and
// returns it with its token.
func (e env) leader(t *testing.T, s spec) (*proc, uint64) {
	t.Helper()
	s.lease, s.identity = e.lease, "pod-0"
	p := start(t, e.kubeconfig, s)
	// The first election of a new Lease holds the created Lease a lease
	// duration before leading.
	tok, _ := p.leading(t, 4*lease+30*time.Second)
	return p, tok
}

// restarted starts the replica's next process, as the kubelet restarts a
// container.
func (e env) restarted(t *testing.T, s spec) *proc {
	t.Helper()
	s.lease, s.identity = e.lease, "pod-0"
	return start(t, e.kubeconfig, s)
}

// waitsOut checks that p leads only after the lease ran out, counted from
// its start (it cannot have seen the dead term's record earlier), and then
// does.
func waitsOut(t *testing.T, p *proc, deadToken uint64) {
	t.Helper()
	tok, after := p.leading(t, 3*lease+30*time.Second)
	if after < lease {
		t.Fatalf("led %v after its start, before the lease duration %v ran out: the dead term was not proven dead", after, lease)
	}
	if tok <= deadToken {
		t.Fatalf("token %d after the dead term's %d", tok, deadToken)
	}
	t.Logf("waited the lease out: led %v after its start", after.Round(time.Millisecond))
}

func TestKilledLeaderRestartedInPlaceLeadsAtOnce(t *testing.T) {
	e := setup(t)
	s := spec{podUID: "uid-1", dir: t.TempDir(), minTerm: "1ns"}
	old, deadToken := e.leader(t, s)
	old.kill(t)
	p := e.restarted(t, s)
	tok, after := p.leading(t, 3*lease+30*time.Second)
	if tok <= deadToken {
		t.Fatalf("token %d after the dead term's %d", tok, deadToken)
	}
	// The promise is ~100ms; the bound is generous for a loaded machine
	// under -race, and still far below the lease duration the normal
	// path waits. The figure is for the report.
	if after >= lease/2 {
		t.Fatalf("led %v after its start; the lease duration is %v: it waited instead of taking over", after, lease)
	}
	started, _ := strconv.ParseInt(p.field("started", 1), 10, 64)
	leadAt, _ := strconv.ParseInt(p.field("leading", 2), 10, 64)
	t.Logf("restart to leading: %v from exec (%v from main)", after.Round(time.Millisecond), time.Duration(leadAt-started).Round(time.Millisecond))
}

func TestFrozenLeaderIsNotTakenOver(t *testing.T) {
	e := setup(t)
	s := spec{podUID: "uid-1", dir: t.TempDir(), minTerm: "1ns"}
	old, deadToken := e.leader(t, s)
	if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitsOut(t, e.restarted(t, s), deadToken)
}

func TestOrphanHoldingTheLockIsNotTakenOver(t *testing.T) {
	e := setup(t)
	s := spec{podUID: "uid-1", dir: t.TempDir(), minTerm: "1ns", grandchild: true}
	old, deadToken := e.leader(t, s)
	e2etest.Eventually(t, 10*time.Second, "the grandchild started", func() bool { return old.field("grandchild", 1) != "" })
	old.kill(t)
	s.grandchild = false
	waitsOut(t, e.restarted(t, s), deadToken)
}

func TestAnotherPodIsNotTakenOver(t *testing.T) {
	e := setup(t)
	s := spec{podUID: "uid-1", dir: t.TempDir(), minTerm: "1ns"}
	old, deadToken := e.leader(t, s)
	old.kill(t)
	s.podUID = "uid-2" // same name and directory, a new pod
	waitsOut(t, e.restarted(t, s), deadToken)
}

func TestFreshDirectoryIsNotTakenOver(t *testing.T) {
	e := setup(t)
	s := spec{podUID: "uid-1", dir: t.TempDir(), minTerm: "1ns"}
	old, deadToken := e.leader(t, s)
	old.kill(t)
	s.dir = t.TempDir() // a wiped volume, another node
	waitsOut(t, e.restarted(t, s), deadToken)
}

func TestQuickCrashIsNotTakenOver(t *testing.T) {
	e := setup(t)
	s := spec{podUID: "uid-1", dir: t.TempDir()} // MinTerm: the default 30s
	old, deadToken := e.leader(t, s)
	old.kill(t)
	waitsOut(t, e.restarted(t, s), deadToken)
}
