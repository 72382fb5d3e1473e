package leadership

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/internal/podlock"
)

// restartCfg configures an elector of replica "a" in pod uid with dir.
func restartCfg(dir, uid string, mod func(*RestartProof)) func(*Config) {
	return func(c *Config) {
		c.KeepLockOnStop = true // a crash does not release
		c.Restart = RestartProof{Dir: dir, PodUID: uid, MinTerm: None}
		if mod != nil {
			mod(&c.Restart)
		}
	}
}

// leadThenCrash runs an elector of replica "a" until it leads, then stops
// it without a release: to its successor in the pod, exactly what a crash
// leaves behind (the record, the lock file free). It returns the term.
func leadThenCrash(t *testing.T, h *harness, ml *memLock, mod func(*Config)) Term {
	t.Helper()
	e := h.elector("a", ml, mod)
	l := newLead()
	stop := run(t, e, l)
	eventually(t, "a leads", func() bool { return l.count() == 1 })
	stop()
	return l.term(0)
}

func TestRestartInPlaceTakesOverAtOnce(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	first := leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	rec, _ := ml.get()
	if rec.PodUID != "uid-1" || rec.Proof == "" {
		t.Fatalf("the term published pod UID %q, proof %q", rec.PodUID, rec.Proof)
	}
	// The restarted process: same identity, same pod, same directory, a
	// new instance. The fake clock does not move: it must not wait.
	e := h.elector("a", ml, restartCfg(dir, "uid-1", nil))
	l := newLead()
	run(t, e, l)
	eventually(t, "the restarted process leads at once", func() bool { return l.count() == 1 })
	if tok := l.term(0).Token; tok <= first.Token {
		t.Fatalf("token %d after the dead term's %d", tok, first.Token)
	}
	if l.term(0).RestartLock() == nil {
		t.Fatal("the new term has no lock file to pass on")
	}
}

// waitsTheLeaseOut checks that e does not lead until a lease duration after
// it first saw the dead term's record, and then does.
func waitsTheLeaseOut(t *testing.T, h *harness, e *Elector) *lead {
	t.Helper()
	l := newLead()
	run(t, e, l)
	eventually(t, "the record observed", func() bool { return e.snapshot().known })
	h.fc.Step(15*time.Second - time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if l.count() != 0 {
		t.Fatal("took over before the lease ran out")
	}
	h.fc.Step(time.Millisecond)
	eventually(t, "leads once the lease ran out", func() bool { return l.count() == 1 })
	return l
}

func TestRestartWaitsWhileAProcessOfTheTermHoldsTheLock(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	// A process of the dead term still holds the lock file (an orphaned
	// child that inherited it, or the old leader frozen).
	held, err := podlock.Acquire(filepath.Join(dir, podlock.FileName(ml.String())))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
}

func TestRestartWaitsInAnotherPod(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	// Same name and directory (as a StatefulSet pod re-created would
	// look), another UID.
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-2", nil)))
}

func TestRestartWaitsWithAnotherFile(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	leadThenCrash(t, h, ml, restartCfg(t.TempDir(), "uid-1", nil))
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(t.TempDir(), "uid-1", nil)))
}

func TestRestartWaitsWhenTheFileWasWiped(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	if err := os.Remove(filepath.Join(dir, podlock.FileName(ml.String()))); err != nil {
		t.Fatal(err)
	}
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
}

func TestRestartWaitsWithACopiedFile(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir, other := t.TempDir(), t.TempDir()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	// The same content (nonce, token, start) in another file, as a copied
	// or restored volume would have: another inode, so another proof.
	name := podlock.FileName(ml.String())
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(other, "uid-1", nil)))
}

func TestRestartAfterAQuickCrashWaits(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	def := func(r *RestartProof) { r.MinTerm = 0 } // the default, 30s
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", def))
	h.fc.Step(10 * time.Second) // it led for 10s
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", def)))
}

func TestRestartForgivesQuickCrashesUpToTheLimit(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	// MinTerm 2s: a term of 3s, well inside its validity (no renewal
	// needed on the fake clock), is a long one.
	two := func(r *RestartProof) { r.MinTerm, r.MaxQuickCrashes = 2*time.Second, 2 }
	// A long term, then a crash: taken over at once.
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two)) // the first term, judged by nobody
	e := h.elector("a", ml, restartCfg(dir, "uid-1", two))
	l := newLead()
	stop := run(t, e, l)
	eventually(t, "the second process leads at once", func() bool { return l.count() == 1 })
	h.fc.Step(3 * time.Second)
	stop()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two)) // that was not quick
	// This one crashed at once: the first quick crash is forgiven...
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two))
	// ...the second in a row is not.
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", two)))
}

func TestRestartLongTermEndsARunOfQuickCrashes(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	two := func(r *RestartProof) { r.MinTerm, r.MaxQuickCrashes = 0, 2 }
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two))
	// A quick crash, forgiven (the first of two allowed in a row)...
	e := h.elector("a", ml, restartCfg(dir, "uid-1", two))
	l := newLead()
	stop := run(t, e, l)
	eventually(t, "leads at once after the first quick crash", func() bool { return l.count() == 1 })
	// ...then that process's term lasts a minute and ends without a
	// crash (the clock jumps: its validity runs out), it takes its own
	// record back at once, a new term, and crashes quickly...
	h.fc.Step(time.Minute)
	eventually(t, "a second term of the same process", func() bool { return l.count() == 2 })
	stop()
	// ...which is the first quick crash of a new run: forgiven.
	e = h.elector("a", ml, restartCfg(dir, "uid-1", two))
	l = newLead()
	run(t, e, l)
	eventually(t, "leads at once: the quick crashes were not in a row", func() bool { return l.count() == 1 })
}

func TestRestartDelay(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	delay := func(r *RestartProof) { r.Delay = 2 * time.Second }
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", delay))
	e := h.elector("a", ml, restartCfg(dir, "uid-1", delay))
	l := newLead()
	run(t, e, l)
	eventually(t, "the record observed", func() bool { return e.snapshot().known })
	time.Sleep(20 * time.Millisecond)
	h.fc.Step(2*time.Second - time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if l.count() != 0 {
		t.Fatal("led before the delay")
	}
	h.fc.Step(time.Millisecond)
	eventually(t, "leads after the delay", func() bool { return l.count() == 1 })
}

func TestRestartWaitsForAnOlderTermOfThePod(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	old, _ := ml.get()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil)) // a later term of the pod
	// The store goes back to the older term's record (a restore from a
	// backup): the lock file's last term is not the one recorded.
	ml.apply(old)
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
}

func TestRestartTermWithoutTheLockPublishesNoProof(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	held, err := podlock.Acquire(filepath.Join(dir, podlock.FileName(ml.String())))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e := h.elector("a", ml, restartCfg(dir, "uid-1", nil))
	l := newLead()
	run(t, e, l)
	eventually(t, "a leads", func() bool { return l.count() == 1 })
	rec, _ := ml.get()
	if rec.Proof != "" || rec.PodUID != "uid-1" {
		t.Fatalf("a term without its lock published pod UID %q, proof %q", rec.PodUID, rec.Proof)
	}
	if l.term(0).RestartLock() != nil {
		t.Fatal("a term without its lock hands out a lock file")
	}
}

func TestRestartOffByDefault(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	e := h.elector("a", ml, nil)
	l := newLead()
	run(t, e, l)
	eventually(t, "a leads", func() bool { return l.count() == 1 })
	rec, _ := ml.get()
	if rec.Proof != "" || rec.PodUID != "" || l.term(0).RestartLock() != nil {
		t.Fatalf("restart proof without Config.Restart: %q %q", rec.PodUID, rec.Proof)
	}
}

func TestRestartConfigErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r     RestartProof
		field string
	}{
		{RestartProof{Dir: dir}, "Restart.PodUID"},
		{RestartProof{Dir: "relative", PodUID: "u"}, "Restart.Dir"},
		{RestartProof{Dir: filepath.Join(dir, "missing"), PodUID: "u"}, "Restart.Dir"},
		{RestartProof{Dir: file, PodUID: "u"}, "Restart.Dir"},
		{RestartProof{Dir: dir, PodUID: " u"}, "Restart.PodUID"},
		{RestartProof{Dir: dir, PodUID: "u", MinTerm: -2}, "Restart.MinTerm"},
		{RestartProof{Dir: dir, PodUID: "u", MaxQuickCrashes: -1}, "Restart.MaxQuickCrashes"},
		{RestartProof{Dir: dir, PodUID: "u", Delay: 15 * time.Second}, "Restart.Delay"},
		{RestartProof{Dir: dir, PodUID: "u", Delay: -time.Second}, "Restart.Delay"},
	} {
		_, err := New(newMemLock(), Config{Identity: "a", Restart: c.r})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%+v: error %v, want a ConfigError on %s", c.r, err, c.field)
		}
	}
	e, err := New(newMemLock(), Config{Identity: "a", Restart: RestartProof{Dir: dir, PodUID: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Config().Restart; r.MinTerm != DefaultRestartMinTerm || r.MaxQuickCrashes != DefaultMaxQuickCrashes || r.Delay != 0 {
		t.Fatalf("defaults: %+v", r)
	}
}

// The store goes back (a restore from a backup) to the record of a term
// of this pod that had released the lock: a successor may have led since,
// on the release, and the record says nothing of it. The released term is
// not a dead one: the restarted process must wait like any candidate.
func TestRestartWaitsForATermThatReleased(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	cfg := restartCfg(dir, "uid-1", nil)
	e := h.elector("a", ml, func(c *Config) {
		cfg(c)
		c.KeepLockOnStop = false // a graceful stop releases
	})
	l := newLead()
	stop := run(t, e, l)
	eventually(t, "a leads", func() bool { return l.count() == 1 })
	// A renewal publishes the token in the record itself, so that the
	// record restored below names the term whatever version the in-memory
	// store gives it (a real restore keeps the versions too).
	h.fc.Step(5 * time.Second)
	eventually(t, "a renewal", func() bool { r, _ := ml.get(); return r.Token == l.term(0).Token })
	held, _ := ml.get()
	stop()
	if r, _ := ml.get(); r.Released == 0 {
		t.Fatalf("the stop did not release: %+v", r)
	}
	ml.apply(held) // restored: the term as it was before its release
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
}

// A process restarted after the dead term's validity had run out proves
// nothing about the time since: other replicas may have taken the lock
// over meanwhile (and a restored store may hide it). Fast takeover is for
// a restart within the validity; after it, wait like any candidate.
func TestRestartWaitsAfterTheDeadTermsValidity(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	dir := t.TempDir()
	leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
	h.fc.Step(15 * time.Second) // the term's validity (14.75 s) has run out
	waitsTheLeaseOut(t, h, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
}
