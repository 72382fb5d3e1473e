package cli

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// restartLease is short so that the case that must wait it out stays
// short; the fast takeover does not depend on it.
const restartLease = 4 * time.Second

// restartArgs runs the daemon script as replica pod-a of one pod (uid-a,
// dir), with the restart proof.
func restartArgs(lease, dir string, cmd []string) []string {
	return append([]string{"run", "--lease", lease, "--identity", "pod-a", "--lease-duration", restartLease.String(),
		"--grace", "500ms", "--containment", "auto",
		"--restart-proof-dir", dir, "--pod-uid", "uid-a", "--restart-min-term", "1ms", "--"}, cmd...)
}

// TestRunKilledAndRestartedInPlaceLeadsAtOnce: kill -9 of the leader's
// `leadership run`, restarted at once with the same identity, pod UID and
// directory. Its watchdog kills the old tree (daemons included) and only
// then lets the lock file go; the new `run` takes over at once, long before
// the lease would have run out, and the old term's daemons are gone before
// the new term's work starts.
func TestRunKilledAndRestartedInPlaceLeadsAtOnce(t *testing.T) {
	lease := e2etest.LeaseName(t)
	dir := t.TempDir()
	cmd, work := daemonWork(t)
	old := start(t, "pod-a", restartArgs(lease, dir, cmd)...)
	first := waitStart(t, work, 0, time.Minute)
	waitDaemons(t, work, first.token)
	old.signal(t, syscall.SIGKILL)
	killed := time.Now()
	old.wait(t, time.Minute)
	p := start(t, "pod-a restarted", restartArgs(lease, dir, cmd)...)
	second := waitStart(t, work, first.token, time.Minute)
	took := time.Since(killed)
	deadBy(t, work, first.token, "when the restarted run's work started")
	if took >= restartLease/2 {
		t.Fatalf("the restarted run's work started %v after the kill; the lease is %v: it waited instead of taking over", took, restartLease)
	}
	t.Logf("kill -9 of run to the restarted run's work: %v (token %d → %d)", took.Round(time.Millisecond), first.token, second.token)
	waitDaemons(t, work, second.token)
	stopAll(t, lease, map[string]*proc{"pod-a": p})
	checkNoOverlap(t, readWork(t, work))
}

// TestRunOrphanHoldingTheLockIsWaitedOut: `leadership run` and its
// watchdog are killed at once, so nothing kills the daemons that left
// CMD's session; they inherited the term's lock file. The restarted run
// cannot take the lock and waits the lease out like any candidate.
func TestRunOrphanHoldingTheLockIsWaitedOut(t *testing.T) {
	lease := e2etest.LeaseName(t)
	dir := t.TempDir()
	cmd, work := daemonWork(t)
	old := start(t, "pod-a", append([]string{"run", "--lease", lease, "--identity", "pod-a", "--lease-duration", restartLease.String(),
		"--grace", "500ms", "--containment", "tree",
		"--restart-proof-dir", dir, "--pod-uid", "uid-a", "--restart-min-term", "1ms", "--"}, cmd...)...)
	first := waitStart(t, work, 0, time.Minute)
	waitDaemons(t, work, first.token)
	wd := watchdogOf(t, old)
	t.Cleanup(func() {
		// The orphans outlive everything of the test's own.
		for _, l := range readWork(t, work) {
			if l.token == first.token && l.pid != 0 {
				_ = syscall.Kill(l.pid, syscall.SIGKILL)
			}
		}
	})
	if err := syscall.Kill(wd, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	old.signal(t, syscall.SIGKILL)
	old.wait(t, time.Minute)
	restarted := time.Now()
	start(t, "pod-a restarted", restartArgs(lease, dir, cmd)...)
	waitStart(t, work, first.token, 3*restartLease+time.Minute)
	if took := time.Since(restarted); took < restartLease {
		t.Fatalf("the restarted run led %v after its start, before the lease %v ran out, while orphans of the old term held the lock file", took, restartLease)
	}
}

// TestServeKilledAndRestartedInPlaceLeadsAtOnce: the sidecar, killed with
// SIGKILL and restarted at once in the same pod, answers "leader" again on
// /leader long before the lease would have run out, with a higher token.
func TestServeKilledAndRestartedInPlaceLeadsAtOnce(t *testing.T) {
	lease := e2etest.LeaseName(t)
	dir := t.TempDir()
	args := []string{"serve", "--lease", lease, "--identity", "pod-a", "--lease-duration", restartLease.String(), "--http-addr", "127.0.0.1:0",
		"--restart-proof-dir", dir, "--pod-uid", "uid-a", "--restart-min-term", "1ms"}
	leads := func(p *proc) func() bool {
		addr := p.httpAddr(t)
		return func() bool {
			var l leaderJSON
			getJSON(t, "http://"+addr+"/leader", &l)
			return l.Leader
		}
	}
	old := start(t, "pod-a", args...)
	e2etest.Eventually(t, time.Minute, "the sidecar leads", leads(old))
	first := resourceVersion(t, lease)
	old.signal(t, syscall.SIGKILL)
	killed := time.Now()
	old.wait(t, time.Minute)
	p := start(t, "pod-a restarted", args...)
	e2etest.Eventually(t, time.Minute, "the restarted sidecar leads", leads(p))
	took := time.Since(killed)
	if took >= restartLease/2 {
		t.Fatalf("the restarted sidecar led %v after the kill; the lease is %v: it waited instead of taking over", took, restartLease)
	}
	if now := resourceVersion(t, lease); now <= first {
		t.Fatalf("resourceVersion %d after the dead term's %d", now, first)
	}
	t.Logf("kill -9 of serve to /leader saying leader again: %v", took.Round(time.Millisecond))
}

func resourceVersion(t *testing.T, lease string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(getLease(t, lease).ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
