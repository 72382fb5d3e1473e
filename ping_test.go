package leadership_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/leadershiptest"
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
		id, ok := leadership.PingTarget(c.ping)
		if id != c.id || ok != c.ok {
			t.Errorf("PingTarget(%q) = %q, %v; want %q, %v", c.ping, id, ok, c.id, c.ok)
		}
	}
}

// counting is a lock that counts the probe answers written through it.
type counting struct {
	*leadershiptest.Lock
	answers *atomic.Int32
}

func (l counting) AnswerPing(ctx context.Context, version uint64, ping string) (leadership.Record, error) {
	r, err := l.Lock.AnswerPing(ctx, version, ping)
	if err == nil {
		l.answers.Add(1)
	}
	return r, err
}

// writePing writes a probe as `leadership handover --to` does: metadata
// only, over the current record.
func writePing(ml *leadershiptest.Lock, ping string) {
	ml.Edit(func(r *leadership.Record) { r.Ping, r.Pong = ping, "" })
}

func pong(ml *leadershiptest.Lock) string { return record(ml).Pong }

func causeOrNil(l *lead) error {
	if l.ended() == 0 {
		return nil
	}
	return l.cause(0)
}

// A follower answers a probe naming it, once; nobody else answers; and
// neither the probe nor the answer moves anyone's countdown or ends the
// leader's term.
func TestFollowerAnswersPing(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		var answers atomic.Int32
		_, b, c, la, lb, lc := ledByA(t, h, counting{ml, &answers})
		ob, oc := b.Observed(), c.Observed()
		// Later than the observations, so that a probe taken for a renewal
		// would restart the countdowns; earlier than a's renewal at 5s.
		sleep(time.Second)
		writePing(ml, "nobody/1")
		writePing(ml, "b/2")
		synctest.Wait()
		if p, n := pong(ml), answers.Load(); p != "b/2" || n != 1 {
			t.Fatalf("pong %q after %d answers; want b's alone", p, n)
		}
		// Still before a's first renewal, which publishes the token: the
		// followers know it from the acquiring write, whose version the
		// probe and its answer moved.
		for name, e := range map[string]*leadership.Elector{"b": b, "c": c} {
			if got, want := e.Leader(), la.term(0).Token; got.Identity != "a" || got.Token != want {
				t.Errorf("%s's Leader() = %+v; want a with token %d", name, got, want)
			}
		}
		for name, o := range map[string][2]leadership.Observed{"b": {ob, b.Observed()}, "c": {oc, c.Observed()}} {
			before, after := o[0], o[1]
			if !after.At.Equal(before.At) || !after.HeldUntil.Equal(before.HeldUntil) || after.HolderMax != before.HolderMax {
				t.Errorf("%s's countdown moved: before at %v until %v, after at %v until %v", name, before.At, before.HeldUntil, after.At, after.HeldUntil)
			}
		}

		// a renews at 5s over the probe and its answer, in the same term,
		// and keeps them (only the handover command removes them).
		sleep(4 * time.Second)
		r := record(ml)
		if !r.RenewTime.Equal(h.at(5 * time.Second)) {
			t.Fatalf("no renewal at 5s: %+v", r)
		}
		if la.ended() != 0 || la.count() != 1 || r.HolderIdentity != "a" || r.Token != la.term(0).Token {
			t.Fatalf("a's term: %d started, %d ended (cause %v); record %+v", la.count(), la.ended(), causeOrNil(la), r)
		}
		if r.Ping != "b/2" || r.Pong != "b/2" {
			t.Fatalf("probe after the renewal: ping %q pong %q", r.Ping, r.Pong)
		}
		if lb.count()+lc.count() != 0 {
			t.Fatal("a follower led")
		}
		sleep(5 * time.Second) // another renewal: no second answer
		if r := record(ml); !r.RenewTime.Equal(h.at(10 * time.Second)) {
			t.Fatalf("no renewal at 10s: %+v", r)
		}
		if n := answers.Load(); n != 1 {
			t.Fatalf("%d answers after renewals, want 1", n)
		}
	})
}

// The leader answers a probe of its own identity too, and its term goes on:
// the answer is metadata, and the renewal that conflicts with it re-reads
// and carries on.
func TestLeaderAnswersPingAndKeepsTerm(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		a := h.elector("a", ml, nil)
		la, _ := elected(t, a)
		tm := la.term(0)
		sleep(time.Second)
		writePing(ml, "a/3")
		synctest.Wait()
		if p := pong(ml); p != "a/3" {
			t.Fatalf("pong %q; want a's answer", p)
		}
		sleep(4 * time.Second)
		r := record(ml)
		if !r.RenewTime.Equal(h.at(5*time.Second)) || tm.Remaining() != validity {
			t.Fatalf("renewal at %v, remaining %v; want a renewal at 5s extending validity", r.RenewTime.Sub(h.start), tm.Remaining())
		}
		if la.ended() != 0 || r.HolderIdentity != "a" || r.Token != tm.Token {
			t.Fatalf("term ended (%v), or record %+v", causeOrNil(la), r)
		}
	})
}

// conflictingLock makes the first answer to a probe meet a concurrent write
// (the leader's renewal), as on a busy Lease.
type conflictingLock struct {
	*leadershiptest.Lock
	conflicts atomic.Int32
}

func (l *conflictingLock) AnswerPing(ctx context.Context, version uint64, ping string) (leadership.Record, error) {
	if l.conflicts.Add(1) == 1 {
		l.Edit(func(*leadership.Record) {}) // someone's write, e.g. a label
		return leadership.Record{}, leadership.ErrConflict
	}
	return l.Lock.AnswerPing(ctx, version, ping)
}

func TestPingAnswerRetriesOnConflict(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		elected(t, h.elector("a", ml, nil))
		cl := &conflictingLock{Lock: ml}
		b := h.elector("b", cl, nil)
		following(t, b, "a")
		writePing(ml, "b/4")
		synctest.Wait()
		if p := pong(ml); p != "b/4" {
			t.Fatalf("pong %q; want b's answer on the newer version", p)
		}
		if n := cl.conflicts.Load(); n != 2 {
			t.Fatalf("%d attempts, want 2 (a conflict, then the answer)", n)
		}
	})
}

// forbiddenWatch makes an elector poll, as when RBAC forbids watching.
type forbiddenWatch struct{ *leadershiptest.Lock }

func (forbiddenWatch) Watch(context.Context, uint64) (<-chan leadership.Event, error) {
	return nil, leadership.ErrForbidden
}

// A polling follower answers at its next read.
func TestPollingFollowerAnswersPing(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		elected(t, h.elector("a", ml, nil))
		b := h.elector("b", forbiddenWatch{ml}, nil)
		following(t, b, "a")
		writePing(ml, "b/5")
		// b reads every RetryPeriod (2s, plus up to 20% jitter).
		sleep(2400 * time.Millisecond)
		if p := pong(ml); p != "b/5" {
			t.Fatalf("pong %q; want the polling follower's answer within one retry period (2.4s)", p)
		}
	})
}

// A lock without PingAnswerer is left alone.
func TestNoAnswerWithoutPingAnswerer(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		type plain struct{ leadership.Lock }
		if _, ok := leadership.Lock(plain{ml}).(leadership.PingAnswerer); ok {
			t.Fatal("plain lock answers pings")
		}
		elected(t, h.elector("b", plain{ml}, nil))
		writePing(ml, "b/6")
		synctest.Wait()
		if p := pong(ml); p != "" {
			t.Fatalf("answered %q through a lock that cannot", p)
		}
	})
}

// deafWatch delivers no events: its elector learns of other writes only
// through its own writes' conflicts.
type deafWatch struct{ *leadershiptest.Lock }

func (deafWatch) Watch(ctx context.Context, _ uint64) (<-chan leadership.Event, error) {
	ch := make(chan leadership.Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
}

// A leader that did not see a probe arrive meets it as a conflict of its
// renewal: it re-reads, finds only metadata changed, renews on the new
// version, and keeps its term and validity.
func TestRenewalOverProbeConflictsOnceAndGoesOn(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := newLock()
		var conflicts, successes atomic.Int32
		a := h.elector("a", deafWatch{ml}, func(c *leadership.Config) {
			c.Hooks.OnRenew = func(_ time.Duration, err error) {
				if errors.Is(err, leadership.ErrConflict) {
					conflicts.Add(1)
				} else if err == nil {
					successes.Add(1)
				}
			}
		})
		la, _ := elected(t, a)
		tm := la.term(0)
		writePing(ml, "b/7")
		sleep(5 * time.Second)
		r := record(ml)
		if !r.RenewTime.Equal(h.at(5 * time.Second)) {
			t.Fatalf("no renewal at 5s: %+v", r)
		}
		if la.ended() != 0 || conflicts.Load() != 1 || successes.Load() != 1 {
			t.Fatalf("term ended: %v; %d conflicts, %d successes (want 1 each)", causeOrNil(la), conflicts.Load(), successes.Load())
		}
		if r.HolderIdentity != "a" || r.Ping != "b/7" || r.Token != tm.Token {
			t.Fatalf("record after the renewal: %+v", r)
		}
		if tm.Remaining() != validity {
			t.Fatalf("remaining %v; want validity extended from the renewal at 5s", tm.Remaining())
		}
	})
}

// A probe (or a label) on the record a replica created and holds before
// leading leaves it that replica's own record: no warning about another
// process writing under its identity.
func TestProbeOnCreatedRecordIsStillOurs(t *testing.T) {
	bubble(t, func(t *testing.T, h *harness) {
		ml := leadershiptest.NewLock()
		e := h.elector("a", ml, nil)
		run(t, e, newLead())
		synctest.Wait()
		if r, ok := ml.Record(); !ok || r.HolderIdentity != "a" || !e.CreatedByUs(r) {
			t.Fatalf("the create not recorded: %+v", r)
		}
		writePing(ml, "b/8")
		r := record(ml)
		if !e.CreatedByUs(r) {
			t.Fatalf("the created record with a probe on it is taken for someone else's: %+v", r)
		}
		r.Instance = "other"
		if e.CreatedByUs(r) {
			t.Fatal("a record of another instance is taken for ours")
		}
	})
}
