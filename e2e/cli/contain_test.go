package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// daemonScript is the leader's work with descendants that leave its
// process group every way a program can: a daemon started with setsid,
// and a double fork whose grandchild, in a session of its own, is orphaned
// at once. Both ignore SIGTERM, SIGINT and SIGHUP and append a line tagged
// with the term's token every 20 ms; the script itself writes "end" on
// SIGTERM and works on, so only a kill ends any of them.
const daemonScript = `#!/bin/sh
f=$1
echo "$LEADERSHIP_TOKEN start $LEADERSHIP_IDENTITY $$ $(date +%s%N)" >> "$f"
loop='trap "" TERM INT HUP; while :; do echo "$LEADERSHIP_TOKEN $1 $LEADERSHIP_IDENTITY $$" >> "$2"; sleep 0.02; done'
setsid sh -c "$loop" sh setsid "$f" </dev/null >/dev/null 2>&1 &
( setsid sh -c "$loop" sh doublefork "$f" </dev/null >/dev/null 2>&1 & )
trap 'echo "$LEADERSHIP_TOKEN end $LEADERSHIP_IDENTITY $$ $(date +%s%N)" >> "$f"' TERM
while :; do echo "$LEADERSHIP_TOKEN tick $LEADERSHIP_IDENTITY $$" >> "$f"; sleep 0.02; done
`

// daemonWork writes daemonScript to a temporary directory and returns the
// command that runs it and the file it writes.
func daemonWork(t *testing.T) (cmd []string, work string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "work.sh")
	if err := os.WriteFile(script, []byte(daemonScript), 0o755); err != nil {
		t.Fatal(err)
	}
	work = filepath.Join(dir, "work.log")
	return []string{"sh", script, work}, work
}

// waitDaemons waits until both daemons of the term with this token write.
func waitDaemons(t *testing.T, work string, token uint64) {
	t.Helper()
	e2etest.Eventually(t, time.Minute, "the daemons of token "+strconv.FormatUint(token, 10)+" to work", func() bool {
		var setsid, double bool
		for _, l := range readWork(t, work) {
			if l.token == token {
				setsid = setsid || l.kind == "setsid"
				double = double || l.kind == "doublefork"
			}
		}
		return setsid && double
	})
}

// deadBy fails unless every process that wrote a line for a token up to
// this one is gone (not even a zombie) now.
func deadBy(t *testing.T, work string, token uint64, when string) {
	t.Helper()
	seen := map[int]bool{}
	for _, l := range readWork(t, work) {
		if l.token <= token && l.pid != 0 && !seen[l.pid] && exists(l.pid) {
			seen[l.pid] = true
			t.Errorf("process %d (%s) of token %d still exists %s", l.pid, l.kind, l.token, when)
		}
	}
}

// exists reports whether pid is in /proc at all, zombie or not.
func exists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// launchDaemonReplicas starts `leadership run` replicas around daemonScript,
// with the --containment given.
func launchDaemonReplicas(t *testing.T, lease, containment string, ids ...string) (map[string]*proc, string) {
	t.Helper()
	cmd, work := daemonWork(t)
	procs := map[string]*proc{}
	for _, id := range ids {
		args := append([]string{"run", "--lease", lease, "--identity", id, "--lease-duration", "3s", "--grace", "500ms", "--containment", containment, "--"}, cmd...)
		procs[id] = start(t, id, args...)
	}
	return procs, work
}

// stopAll sends SIGTERM to the replicas still running and checks that each
// exits 0 and the Lease ends up released.
func stopAll(t *testing.T, lease string, procs map[string]*proc) {
	t.Helper()
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		default:
		}
		p.signal(t, syscall.SIGCONT)
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, time.Minute); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM, want 0", p.name, code)
		}
	}
	if h := holderNow(t, lease); h != "" {
		t.Errorf("Lease still held by %q after every replica stopped", h)
	}
}

// TestDaemonsDieOnHandover: a handover moves the Lease while the leader's
// work has daemonized; the daemons are dead before the next leader's work
// starts, and none of them wrote after it did. The process tree alone
// (--containment tree) must do: many hosts have no writable cgroup.
func TestDaemonsDieOnHandover(t *testing.T) {
	lease := e2etest.LeaseName(t)
	procs, work := launchDaemonReplicas(t, lease, "tree", "a", "b")
	first := waitStart(t, work, 0, time.Minute)
	waitDaemons(t, work, first.token)
	if code, _, stderr := run(t, "handover", "--lease", lease); code != 0 {
		t.Fatalf("handover: exit %d: %s", code, stderr)
	}
	second := waitStart(t, work, first.token, time.Minute)
	deadBy(t, work, first.token, "when the next term's work started")
	waitDaemons(t, work, second.token)
	stopAll(t, lease, procs)
	lines := readWork(t, work)
	checkNoOverlap(t, lines)
	deadBy(t, work, second.token, "after every replica stopped")
}

// TestDaemonsDieWhenRunIsKilled: kill -9 of the leader's `leadership run`;
// its work's daemons die with it, before the next leader's work starts;
// with the process tree alone and with a cgroup where one can be made.
func TestDaemonsDieWhenRunIsKilled(t *testing.T) {
	for _, containment := range []string{"tree", "auto"} {
		t.Run(containment, func(t *testing.T) {
			lease := e2etest.LeaseName(t)
			procs, work := launchDaemonReplicas(t, lease, containment, "a", "b")
			first := waitStart(t, work, 0, time.Minute)
			waitDaemons(t, work, first.token)
			procs[first.who].signal(t, syscall.SIGKILL)
			second := waitStart(t, work, first.token, time.Minute)
			deadBy(t, work, first.token, "when the next term's work started")
			waitDaemons(t, work, second.token)
			stopAll(t, lease, procs)
			checkNoOverlap(t, readWork(t, work))
			deadBy(t, work, second.token, "after every replica stopped")
		})
	}
}

// TestLostLeaseKillsAtOnce: someone else writes the Lease while the leader
// works. A successor may be working already, so the leader's whole tree
// gets SIGKILL at once: no SIGTERM (the script would write "end"), no
// grace, and it is gone before the next replica's work starts.
func TestLostLeaseKillsAtOnce(t *testing.T) {
	lease := e2etest.LeaseName(t)
	cmd, work := daemonWork(t)
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		// A long grace, which a foreign write must not wait for.
		args := append([]string{"run", "--lease", lease, "--identity", id, "--lease-duration", "6s", "--grace", "2s", "--"}, cmd...)
		procs[id] = start(t, id, args...)
	}
	first := waitStart(t, work, 0, time.Minute)
	waitDaemons(t, work, first.token)

	leases := admin(t).CoordinationV1().Leases(ns)
	l := getLease(t, lease)
	intruder, secs, now := "intruder", int32(2), metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime, l.Spec.AcquireTime = &intruder, &secs, &now, &now
	if _, err := leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("intruder's write: %v", err)
	}
	written := time.Now()
	leader := procs[first.who]
	e2etest.Eventually(t, time.Minute, first.who+" to see its Lease taken", func() bool {
		return strings.Contains(leader.stderr.String(), "taken over")
	})
	var pids []int
	for _, w := range readWork(t, work) {
		if w.token == first.token && w.pid != 0 {
			pids = append(pids, w.pid)
		}
	}
	e2etest.Eventually(t, time.Minute, "the lost leader's command to be gone", func() bool { return !exists(first.pid) })
	for _, w := range readWork(t, work) {
		if w.token == first.token && w.kind == "end" {
			t.Errorf("the lost leader's work got SIGTERM (an end line): it must be killed at once, without --grace")
		}
	}
	e2etest.Eventually(t, time.Minute, "token "+strconv.FormatUint(first.token, 10)+"'s processes to be gone", func() bool {
		for _, pid := range pids {
			if exists(pid) {
				return false
			}
		}
		return true
	})
	t.Logf("the lost leader's tree was gone %v after the foreign write", time.Since(written).Round(time.Millisecond))
	second := waitStart(t, work, first.token, time.Minute)
	deadBy(t, work, first.token, "when the next term's work started")
	t.Logf("%s leads with token %d", second.who, second.token)
	stopAll(t, lease, procs)
	checkNoOverlap(t, readWork(t, work))
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procStat(p)
		if ok && st.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

type stat struct {
	state byte
	ppid  int
}

func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return stat{}, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 2 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return stat{state: f[0][0], ppid: ppid}, true
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// watchdogOf finds the watchdog process of a `leadership run`.
func watchdogOf(t *testing.T, p *proc) int {
	t.Helper()
	var pid int
	e2etest.Eventually(t, time.Minute, p.name+"'s watchdog process", func() bool {
		for _, c := range childrenOf(t, p.cmd.Process.Pid) {
			if strings.Contains(cmdline(c), "internal-watchdog") {
				pid = c
				return true
			}
		}
		return false
	})
	return pid
}

// TestStoppedWatchdogIsLost: the watchdog is stopped with SIGSTOP and kept
// stopped, while the leader renews every 100 ms. The leader must not wait
// on it: it treats the silent watchdog as lost, kills its work (daemons
// included) and steps down, and the other replica takes over without
// overlap. The leader then still exits cleanly on SIGTERM.
func TestStoppedWatchdogIsLost(t *testing.T) {
	lease := e2etest.LeaseName(t)
	cmd, work := daemonWork(t)
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		args := append([]string{"run", "--lease", lease, "--identity", id, "--lease-duration", "3s", "--renew-interval", "100ms", "--grace", "500ms", "--"}, cmd...)
		procs[id] = start(t, id, args...)
	}
	first := waitStart(t, work, 0, time.Minute)
	waitDaemons(t, work, first.token)
	leader := procs[first.who]
	wd := watchdogOf(t, leader)
	if err := syscall.Kill(wd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(wd, syscall.SIGCONT) })
	second := waitStart(t, work, first.token, time.Minute)
	deadBy(t, work, first.token, "when the next term's work started")
	if !strings.Contains(leader.stderr.String(), "watchdog") {
		t.Errorf("%s did not say its watchdog was lost", first.who)
	}
	t.Logf("%s leads with token %d after %s's watchdog was stopped", second.who, second.token, first.who)
	stopAll(t, lease, procs)
	checkNoOverlap(t, readWork(t, work))
}

// TestStopBeforeArming: `leadership run` is stopped with SIGSTOP between
// starting its child and arming the watchdog (a test-only hook widens that
// moment). The child must not have run a single instruction of the
// command: nothing of that term may be written, before or after the next
// leader starts.
func TestStopBeforeArming(t *testing.T) {
	lease := e2etest.LeaseName(t)
	cmd, work := daemonWork(t)
	args := append([]string{"run", "--lease", lease, "--identity", "a", "--lease-duration", "3s", "--grace", "500ms", "--"}, cmd...)
	a := startEnv(t, "a", []string{"LEADERSHIP_TEST_PAUSE_BEFORE_ARMING=3s"}, args...)
	e2etest.Eventually(t, time.Minute, "a to reach the test hook", func() bool {
		return strings.Contains(a.stderr.String(), "test hook")
	})
	a.signal(t, syscall.SIGSTOP)
	args = append([]string{"run", "--lease", lease, "--identity", "b", "--lease-duration", "3s", "--grace", "500ms", "--"}, cmd...)
	b := start(t, "b", args...)
	bStart := waitStart(t, work, 0, time.Minute)
	for bStart.who != "b" {
		bStart = waitStart(t, work, bStart.token, time.Minute)
	}
	waitDaemons(t, work, bStart.token)
	for _, l := range readWork(t, work) {
		if l.who == "a" {
			t.Errorf("a's command ran although its watchdog was never armed: %+v", l)
		}
	}
	a.signal(t, syscall.SIGCONT)
	stopAll(t, lease, map[string]*proc{"a": a, "b": b})
	checkNoOverlap(t, readWork(t, work))
}

// TestRunAsPID1 runs `leadership run` as PID 1 of a new PID namespace (as
// in a container without an init): processes orphaned inside the namespace
// (here by a shell that enters it, as kubectl exec does, and leaves a
// background process behind) are re-parented to it and must be reaped, not
// left as zombies; and a signal it does not handle itself (SIGUSR1) is
// forwarded to the command.
func TestRunAsPID1(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("nsenter (util-linux) is not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a PID namespace")
	}
	lease := e2etest.LeaseName(t)
	out := filepath.Join(t.TempDir(), "out")
	script := `trap 'echo usr1 >> "$1"' USR1; echo ready >> "$1"; while :; do sleep 0.05; done`
	u := startProgram(t, "pid1", nil, unshare, "--pid", "--fork", "--mount-proc", "--kill-child",
		bin, "run", "--kubeconfig", adminKubeconfig, "--lease", lease, "--lease-duration", "3s", "--", "sh", "-c", script, "sh", out)
	e2etest.Eventually(t, time.Minute, "the command to run", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "ready")
	})
	var pid1 int
	e2etest.Eventually(t, time.Minute, "leadership run as PID 1", func() bool {
		for _, c := range childrenOf(t, u.cmd.Process.Pid) {
			if strings.Contains(cmdline(c), " run ") {
				pid1 = c
				return true
			}
		}
		return false
	})
	// Enter the namespace and orphan ten short-lived processes there.
	enter := exec.Command(nsenter, "--target", strconv.Itoa(pid1), "--pid", "--mount", "sh", "-c",
		`for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 2 </dev/null >/dev/null 2>&1 &); done`)
	if b, err := enter.CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v: %s", err, b)
	}
	orphans := func() (alive, zombies int) {
		for _, c := range childrenOf(t, pid1) {
			if comm(c) != "sleep" {
				continue
			}
			if st, ok := procStat(c); ok && st.state == 'Z' {
				zombies++
			} else {
				alive++
			}
		}
		return alive, zombies
	}
	e2etest.Eventually(t, time.Minute, "the orphans to be re-parented to PID 1", func() bool {
		a, z := orphans()
		return a+z > 0
	})
	e2etest.Eventually(t, time.Minute, "the orphans to exit and be reaped by PID 1", func() bool {
		a, z := orphans()
		return a == 0 && z == 0
	})

	if err := syscall.Kill(pid1, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	e2etest.Eventually(t, time.Minute, "SIGUSR1 to reach the command", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "usr1")
	})
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := u.wait(t, time.Minute); code != 0 {
		t.Errorf("exit code %d after SIGTERM to PID 1, want 0", code)
	}
	if h := holderNow(t, lease); h != "" {
		t.Errorf("Lease still held by %q", h)
	}
}

// comm is a process's name, also for a zombie (whose cmdline is empty).
func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}
