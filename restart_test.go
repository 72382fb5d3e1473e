package leadership_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/internal/podlock"
	"github.com/leadership-dev/leadership/leadershiptest"
)

// restartCfg configures an elector of replica "a" in pod uid with dir.
func restartCfg(dir, uid string, mod func(*leadership.RestartProof)) func(*leadership.Config) {
	return func(c *leadership.Config) {
		c.KeepLockOnStop = true // a crash does not release
		c.Restart = leadership.RestartProof{Dir: dir, PodUID: uid, MinTerm: leadership.None}
		if mod != nil {
			mod(&c.Restart)
		}
	}
}

// leadThenCrash runs an elector of replica "a" until it leads, then stops
// it without a release: to its successor in the pod, exactly what a crash
// leaves behind (the record, the lock file free). It returns the term.
func leadThenCrash(t *testing.T, h *harness, ml leadership.Lock, mod func(*leadership.Config)) leadership.Term {
	t.Helper()
	l, stop := elected(t, h.elector("a", ml, mod))
	stop()
	return l.term(0)
}

func TestRestartInPlaceTakesOverAtOnce(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		first := leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		rec := record(ml)
		if rec.PodUID != "uid-1" || rec.Proof == "" {
			t.Fatalf("the term published pod UID %q, proof %q", rec.PodUID, rec.Proof)
		}
		// The restarted process: same identity, same pod, same directory,
		// a new instance. No time passes: it must not wait.
		l, _ := elected(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
		if tok := l.term(0).Token; tok <= first.Token {
			t.Fatalf("token %d after the dead term's %d", tok, first.Token)
		}
		if l.term(0).RestartLock() == nil {
			t.Fatal("the new term has no lock file to pass on")
		}
	})
}

// waitsTheLeaseOut checks that e does not lead until exactly a lease
// duration after it first saw the dead term's record, and then does.
func waitsTheLeaseOut(t *testing.T, e *leadership.Elector) *lead {
	t.Helper()
	l := newLead()
	run(t, e, l)
	synctest.Wait()
	if !e.Observed().Known {
		t.Fatal("the record not observed")
	}
	happensAfter(t, 15*time.Second, "takeover of the dead term's lock", func() bool { return l.count() == 1 })
	return l
}

func TestRestartWaitsWhileAProcessOfTheTermHoldsTheLock(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		// A process of the dead term still holds the lock file (an
		// orphaned child that inherited it, or the old leader frozen).
		held, err := podlock.Acquire(filepath.Join(dir, podlock.FileName(ml.String())))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
	})
}

func TestRestartWaitsInAnotherPod(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		// Same name and directory (as a StatefulSet pod re-created would
		// look), another UID.
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-2", nil)))
	})
}

func TestRestartWaitsWithAnotherFile(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		leadThenCrash(t, h, ml, restartCfg(t.TempDir(), "uid-1", nil))
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(t.TempDir(), "uid-1", nil)))
	})
}

func TestRestartWaitsWhenTheFileWasWiped(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		if err := os.Remove(filepath.Join(dir, podlock.FileName(ml.String()))); err != nil {
			t.Fatal(err)
		}
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
	})
}

func TestRestartWaitsWithACopiedFile(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir, other := t.TempDir(), t.TempDir()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		// The same content (nonce, token, start) in another file, as a
		// copied or restored volume would have: another inode, so another
		// proof.
		name := podlock.FileName(ml.String())
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(other, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(other, "uid-1", nil)))
	})
}

func TestRestartAfterAQuickCrashWaits(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		def := func(r *leadership.RestartProof) { r.MinTerm = 0 } // the default, 30s
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", def))
		sleep(10 * time.Second)
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", def)))
	})
}

func TestRestartForgivesQuickCrashesUpToTheLimit(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		// MinTerm 2s: a term of 3s, inside its validity and before its
		// first renewal, is a long one.
		two := func(r *leadership.RestartProof) { r.MinTerm, r.MaxQuickCrashes = 2*time.Second, 2 }
		// A long term, then a crash: taken over at once.
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two)) // the first term, judged by nobody
		_, stop := elected(t, h.elector("a", ml, restartCfg(dir, "uid-1", two)))
		sleep(3 * time.Second)
		stop()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two)) // that was not quick
		// This one crashed at once: the first quick crash is forgiven...
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two))
		// ...the second in a row is not.
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", two)))
	})
}

func TestRestartLongTermEndsARunOfQuickCrashes(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		two := func(r *leadership.RestartProof) { r.MinTerm, r.MaxQuickCrashes = 0, 2 }
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", two))
		// A quick crash, forgiven (the first of two allowed in a row)...
		c := ml.Conn()
		l, stop := elected(t, h.elector("a", c, restartCfg(dir, "uid-1", two)))
		// ...then that process's term lasts about a minute (renewals
		// until 45s, then a cut: validity runs out at 59.75s) and ends
		// without a crash; the connection mended, the process takes its
		// own record back at once, a new term, and crashes quickly...
		sleep(45 * time.Second)
		c.Cut(true)
		sleep(validity)
		endedBy(t, l, leadership.ErrValidityExpired)
		c.Cut(false)
		sleep(2400 * time.Millisecond) // its next attempt, RetryPeriod plus jitter later
		if l.count() != 2 {
			t.Fatalf("%d terms; want a second term of the same process", l.count())
		}
		stop()
		// ...which is the first quick crash of a new run: forgiven.
		elected(t, h.elector("a", ml, restartCfg(dir, "uid-1", two)))
	})
}

func TestRestartDelay(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		delay := func(r *leadership.RestartProof) { r.Delay = 2 * time.Second }
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", delay))
		e := h.elector("a", ml, restartCfg(dir, "uid-1", delay))
		l := newLead()
		run(t, e, l)
		synctest.Wait()
		if !e.Observed().Known {
			t.Fatal("the record not observed")
		}
		happensAfter(t, 2*time.Second, "takeover after the restart delay", func() bool { return l.count() == 1 })
	})
}

func TestRestartWaitsForAnOlderTermOfThePod(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		old := record(ml)
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil)) // a later term of the pod
		// The store goes back to the older term's record (a restore from a
		// backup): the lock file's last term is not the one recorded.
		ml.Put(old)
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
	})
}

func TestRestartTermWithoutTheLockPublishesNoProof(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		held, err := podlock.Acquire(filepath.Join(dir, podlock.FileName(ml.String())))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		l, _ := elected(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
		rec := record(ml)
		if rec.Proof != "" || rec.PodUID != "uid-1" {
			t.Fatalf("a term without its lock published pod UID %q, proof %q", rec.PodUID, rec.Proof)
		}
		if l.term(0).RestartLock() != nil {
			t.Fatal("a term without its lock hands out a lock file")
		}
	})
}

func TestRestartOffByDefault(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		l, _ := elected(t, h.elector("a", ml, nil))
		rec := record(ml)
		if rec.Proof != "" || rec.PodUID != "" || l.term(0).RestartLock() != nil {
			t.Fatalf("restart proof without Config.Restart: %q %q", rec.PodUID, rec.Proof)
		}
	})
}

func TestRestartConfigErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r     leadership.RestartProof
		field string
	}{
		{leadership.RestartProof{Dir: dir}, "Restart.PodUID"},
		{leadership.RestartProof{Dir: "relative", PodUID: "u"}, "Restart.Dir"},
		{leadership.RestartProof{Dir: filepath.Join(dir, "missing"), PodUID: "u"}, "Restart.Dir"},
		{leadership.RestartProof{Dir: file, PodUID: "u"}, "Restart.Dir"},
		{leadership.RestartProof{Dir: dir, PodUID: " u"}, "Restart.PodUID"},
		{leadership.RestartProof{Dir: dir, PodUID: "u", MinTerm: -2}, "Restart.MinTerm"},
		{leadership.RestartProof{Dir: dir, PodUID: "u", MaxQuickCrashes: -1}, "Restart.MaxQuickCrashes"},
		{leadership.RestartProof{Dir: dir, PodUID: "u", Delay: 15 * time.Second}, "Restart.Delay"},
		{leadership.RestartProof{Dir: dir, PodUID: "u", Delay: -time.Second}, "Restart.Delay"},
	} {
		_, err := leadership.New(leadershiptest.NewLock(), leadership.Config{Identity: "a", Restart: c.r})
		var ce *leadership.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%+v: error %v, want a ConfigError on %s", c.r, err, c.field)
		}
	}
	e, err := leadership.New(leadershiptest.NewLock(), leadership.Config{Identity: "a", Restart: leadership.RestartProof{Dir: dir, PodUID: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Config().Restart; r.MinTerm != leadership.DefaultRestartMinTerm || r.MaxQuickCrashes != leadership.DefaultMaxQuickCrashes || r.Delay != 0 {
		t.Fatalf("defaults: %+v", r)
	}
}

// The store goes back (a restore from a backup) to the record of a term
// of this pod that had released the lock: a successor may have led since,
// on the release, and the record says nothing of it. The released term is
// not a dead one: the restarted process must wait like any candidate.
func TestRestartWaitsForATermThatReleased(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		cfg := restartCfg(dir, "uid-1", nil)
		l, stop := elected(t, h.elector("a", ml, func(c *leadership.Config) {
			cfg(c)
			c.KeepLockOnStop = false // a graceful stop releases
		}))
		// A renewal publishes the token in the record itself, so that the
		// record restored below names the term whatever version the
		// in-memory store gives it (a real restore keeps the versions too).
		sleep(5 * time.Second)
		held := record(ml)
		if held.Token != l.term(0).Token {
			t.Fatalf("no renewal at 5s: %+v", held)
		}
		stop()
		if r := record(ml); r.Released == 0 {
			t.Fatalf("the stop did not release: %+v", r)
		}
		ml.Put(held) // restored: the term as it was before its release
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
	})
}

// A process restarted after the dead term's validity had run out proves
// nothing about the time since: other replicas may have taken the lock
// over meanwhile (and a restored store may hide it). Fast takeover is for
// a restart within the validity; after it, wait like any candidate.
func TestRestartWaitsAfterTheDeadTermsValidity(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		dir := t.TempDir()
		leadThenCrash(t, h, ml, restartCfg(dir, "uid-1", nil))
		sleep(15 * time.Second) // the term's validity (14.75 s) has run out
		waitsTheLeaseOut(t, h.elector("a", ml, restartCfg(dir, "uid-1", nil)))
	})
}
