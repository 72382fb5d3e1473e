package leadership

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPingTarget(t *testing.T) {
	for _, c := range []struct {
		ping, id string
		ok       bool
	}{
		{"renewer-5d8f-2a91/0f3c9a7e", "renewer-5d8f-2a91", true},
		{"ns/pod/0f3c", "ns/pod", true}, // the nonce is after the last slash
		{"nonce-only", "", false},
		{"/0f3c", "", false},
		{"id/", "", false},
		{"", "", false},
	} {
		id, ok := PingTarget(c.ping)
		if id != c.id || ok != c.ok {
			t.Errorf("PingTarget(%q) = %q, %v; want %q, %v", c.ping, id, ok, c.id, c.ok)
		}
	}
}

// pong is the probe's answer on the lock, and how many answers were written.
func pong(ml *memLock) (string, int) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.rec.Pong, ml.pongs
}

// writePing writes a probe as `leadership handover --to` does: metadata
// only, over the current record.
func writePing(ml *memLock, ping string) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	r := ml.rec
	r.Ping, r.Pong = ping, ""
	ml.put(r)
}

// A follower answers a probe naming it, once; nobody else answers; and
// neither the probe nor the answer moves anyone's countdown or ends the
// leader's term.
func TestFollowerAnswersPing(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	a, b, c, la, lb, lc := ledByA(t, h, ml)
	ob, oc := b.snapshot(), c.snapshot()
	// Later than the observations, so that a probe taken for a renewal
	// would restart the countdowns; earlier than a's renewal.
	h.fc.Step(time.Second)

	writePing(ml, "nobody/1")
	writePing(ml, "b/2")
	eventually(t, "b answered", func() bool { p, _ := pong(ml); return p == "b/2" })
	settle(t, ml, a, b, c)
	if _, n := pong(ml); n != 1 {
		t.Fatalf("%d answers, want 1 (b's alone)", n)
	}
	// Still before a's first renewal, which publishes the token: the
	// followers know it from the acquiring write, whose version the probe
	// and its answer moved.
	for name, e := range map[string]*Elector{"b": b, "c": c} {
		if got, want := e.Leader(), la.term(0).Token; got.Identity != "a" || got.Token != want {
			t.Errorf("%s's Leader() = %+v; want a with token %d", name, got, want)
		}
	}
	for name, o := range map[string][2]observation{"b": {ob, b.snapshot()}, "c": {oc, c.snapshot()}} {
		before, after := o[0], o[1]
		if !after.at.Equal(before.at) || !after.heldUntil.Equal(before.heldUntil) || after.holderMax != before.holderMax {
			t.Errorf("%s's countdown moved: before at %v until %v, after at %v until %v", name, before.at, before.heldUntil, after.at, after.heldUntil)
		}
	}

	// a renews over the probe and its answer, in the same term, and keeps
	// them (only the handover command removes them).
	h.fc.Step(3 * time.Second)
	r := renewedAfter(t, h, ml, h.start)
	if la.ended() != 0 || la.count() != 1 || r.HolderIdentity != "a" || r.Token != la.term(0).Token {
		t.Fatalf("a's term: %d started, %d ended (cause %v); record %+v", la.count(), la.ended(), causeOrNil(la), r)
	}
	if r.Ping != "b/2" || r.Pong != "b/2" {
		t.Fatalf("probe after the renewal: ping %q pong %q", r.Ping, r.Pong)
	}
	if lb.count()+lc.count() != 0 {
		t.Fatal("a follower led")
	}
	renewedAfter(t, h, ml, r.RenewTime) // another renewal: no second answer
	settle(t, ml, a, b, c)
	if _, n := pong(ml); n != 1 {
		t.Fatalf("%d answers after renewals, want 1", n)
	}
}

// renewedAfter steps the fake clock in 100ms steps until the lock records a
// renewal later than after, and returns it. Steps, not one jump: the renewal
// timer may be armed a moment after the term began, and a renewal that met
// a conflict is retried at the next step.
func renewedAfter(t *testing.T, h *harness, ml *memLock, after time.Time) Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, _ := ml.get(); r.RenewTime.After(after) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal after %v (fake clock at %v)", after, h.fc.Now())
		}
		h.fc.Step(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

func causeOrNil(l *lead) error {
	if l.ended() == 0 {
		return nil
	}
	return l.cause(0)
}

// The leader answers a probe of its own identity too, and its term goes on:
// the answer is metadata, and the renewal that conflicts with it re-reads
// and carries on.
func TestLeaderAnswersPingAndKeepsTerm(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	a := h.elector("a", ml, nil)
	la := newLead()
	run(t, a, la)
	eventually(t, "a elected", func() bool { return la.count() == 1 })
	tm := la.term(0)
	h.fc.Step(time.Second)
	writePing(ml, "a/3")
	eventually(t, "a answered", func() bool { p, _ := pong(ml); return p == "a/3" })
	h.fc.Step(3 * time.Second)
	r := renewedAfter(t, h, ml, h.start)
	eventually(t, "validity extended by the renewal", func() bool {
		return tm.Remaining() == r.RenewTime.Add(14750*time.Millisecond).Sub(h.fc.Now())
	})
	if la.ended() != 0 || r.HolderIdentity != "a" || r.Token != tm.Token {
		t.Fatalf("term ended (%v), or record %+v", causeOrNil(la), r)
	}
}

// conflictingLock makes the first answer to a probe meet a concurrent write
// (the leader's renewal), as on a busy Lease.
type conflictingLock struct {
	*memLock
	conflicts atomic.Int32
}

func (l *conflictingLock) AnswerPing(ctx context.Context, version uint64, ping string) (Record, error) {
	if l.conflicts.Add(1) == 1 {
		l.mu.Lock()
		l.put(l.rec) // someone's write, e.g. a label
		l.mu.Unlock()
		return Record{}, ErrConflict
	}
	return l.memLock.AnswerPing(ctx, version, ping)
}

func TestPingAnswerRetriesOnConflict(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	a := h.elector("a", ml, nil)
	la := newLead()
	run(t, a, la)
	eventually(t, "a elected", func() bool { return la.count() == 1 })
	cl := &conflictingLock{memLock: ml}
	b := h.elector("b", cl, nil)
	run(t, b, newLead())
	eventually(t, "b observes a", func() bool { return b.Leader().Identity == "a" })
	writePing(ml, "b/4")
	eventually(t, "b answered on the newer version", func() bool { p, _ := pong(ml); return p == "b/4" })
	if n := cl.conflicts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2 (a conflict, then the answer)", n)
	}
}

// forbiddenWatch makes an elector poll, as when RBAC forbids watching.
type forbiddenWatch struct{ *memLock }

func (forbiddenWatch) Watch(context.Context, uint64) (<-chan Event, error) {
	return nil, ErrForbidden
}

// A polling follower answers at its next read.
func TestPollingFollowerAnswersPing(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	a := h.elector("a", ml, nil)
	run(t, a, newLead())
	eventually(t, "a leads", func() bool { r, _ := ml.get(); return r.HolderIdentity == "a" })
	b := h.elector("b", forbiddenWatch{ml}, nil)
	run(t, b, newLead())
	eventually(t, "b observes a", func() bool { return b.Leader().Identity == "a" })
	writePing(ml, "b/5")
	// b reads every RetryPeriod (2s, ±20%); a renews every 5s meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for p, _ := pong(ml); p != "b/5"; p, _ = pong(ml) {
		if time.Now().After(deadline) {
			t.Fatal("the polling follower did not answer")
		}
		h.fc.Step(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if h.fc.Since(h.start) > 3*time.Second {
		t.Fatalf("answered after %v of polling, want within one retry period (2.4s)", h.fc.Since(h.start))
	}
}

// A lock without PingAnswerer is left alone.
func TestNoAnswerWithoutPingAnswerer(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	type plain struct{ Lock }
	b := h.elector("b", plain{ml}, nil)
	if _, ok := Lock(plain{ml}).(PingAnswerer); ok {
		t.Fatal("plain lock answers pings")
	}
	run(t, b, newLead())
	eventually(t, "b leads", func() bool { r, _ := ml.get(); return r.HolderIdentity == "b" })
	writePing(ml, "b/6")
	settle(t, ml, b)
	if p, n := pong(ml); p != "" || n != 0 {
		t.Fatalf("answered through a lock that cannot: %q, %d", p, n)
	}
}

// settle writes a metadata-only change and waits until every elector has
// observed it: each observer answers a probe right after observing it, on
// its own goroutine, so any answer to an earlier probe has been written.
func settle(t *testing.T, ml *memLock, es ...*Elector) {
	t.Helper()
	ml.mu.Lock()
	v := ml.put(ml.rec).Version
	ml.mu.Unlock()
	eventually(t, "the electors observed the marker", func() bool {
		for _, e := range es {
			if e.snapshot().version < v {
				return false
			}
		}
		return true
	})
}

// deafWatch delivers no events: its elector learns of other writes only
// through its own writes' conflicts.
type deafWatch struct{ *memLock }

func (deafWatch) Watch(ctx context.Context, _ uint64) (<-chan Event, error) {
	ch := make(chan Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
}

// A leader that did not see a probe arrive meets it as a conflict of its
// renewal: it re-reads, finds only metadata changed, renews on the new
// version, and keeps its term and validity.
func TestRenewalOverProbeConflictsOnceAndGoesOn(t *testing.T) {
	h := newHarness(t)
	ml := newMemLock()
	var conflicts, successes atomic.Int32
	a := h.elector("a", deafWatch{ml}, func(c *Config) {
		c.Hooks.OnRenew = func(_ time.Duration, err error) {
			if errors.Is(err, ErrConflict) {
				conflicts.Add(1)
			} else if err == nil {
				successes.Add(1)
			}
		}
	})
	la := newLead()
	run(t, a, la)
	eventually(t, "a elected", func() bool { return la.count() == 1 })
	tm := la.term(0)
	writePing(ml, "b/7")
	h.fc.Step(4 * time.Second)
	r := renewedAfter(t, h, ml, h.start)
	eventually(t, "the renewal reported", func() bool { return successes.Load() == 1 })
	if la.ended() != 0 || conflicts.Load() != 1 {
		t.Fatalf("term ended: %v; %d conflicts (want 1)", causeOrNil(la), conflicts.Load())
	}
	if r.HolderIdentity != "a" || r.Ping != "b/7" || r.Token != tm.Token {
		t.Fatalf("record after the renewal: %+v", r)
	}
	eventually(t, "validity extended", func() bool {
		return tm.Remaining() == r.RenewTime.Add(14750*time.Millisecond).Sub(h.fc.Now())
	})
}

// A probe (or a label) on the record a replica created and holds before
// leading leaves it that replica's own record: no warning about another
// process writing under its identity.
func TestProbeOnCreatedRecordIsStillOurs(t *testing.T) {
	h := newHarness(t)
	ml := newEmptyMemLock()
	e := h.elector("a", ml, nil)
	run(t, e, newLead())
	eventually(t, "created", func() bool { r, ok := ml.get(); return ok && r.HolderIdentity == "a" })
	eventually(t, "the create recorded", func() bool { r, _ := ml.get(); return e.createdByUs(r) })
	writePing(ml, "b/8")
	r, _ := ml.get()
	if !e.createdByUs(r) {
		t.Fatalf("the created record with a probe on it is taken for someone else's: %+v", r)
	}
	r.Instance = "other"
	if e.createdByUs(r) {
		t.Fatal("a record of another instance is taken for ours")
	}
}
