package integration

// Paths to two leaders that a naive elector leaves open, each against the
// real API server. Every test judges the work intervals themselves (the
// ledger, on this process's monotonic clock), not a fenced store.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// editLease applies edit to the Lease as an operator's read-modify-write
// would (kubectl edit, a patch): every annotation is kept.
func editLease(t *testing.T, lease string, edit func(*coordinationv1.Lease)) {
	t.Helper()
	for range 10 {
		l := getLease(t, lease)
		edit(l)
		_, err := admin(t).CoordinationV1().Leases(ns).Update(context.Background(), l, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue // the leader renewed in between: edit the newer one
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("could not edit the Lease: it kept changing")
}

// partition cuts c off from the API server until the test ends (before the
// candidate is stopped, so that its final release can be written).
func partition(t *testing.T, c *candidate) {
	c.proxy.Blackhole()
	t.Cleanup(c.proxy.Restore)
}

// nextLeader waits for a term begun after since by someone other than old
// (anyone, if old is empty).
func nextLeader(t *testing.T, led *ledger, old string, since time.Time) interval {
	t.Helper()
	var next interval
	e2etest.Eventually(t, 30*time.Second, "another replica leads", func() bool {
		iv, ok := led.last("")
		next = iv
		return ok && iv.who != old && iv.start.After(since)
	})
	return next
}

// Path 1. A hand edit that keeps the holder and the annotations but shortens
// leaseDurationSeconds, while the leader is partitioned and never sees it:
// the followers must still wait out the duration the holder announced.
func TestHandEditShorterLeaseWhileLeaderPartitioned(t *testing.T) {
	lease, led, log := e2etest.LeaseName(t), &ledger{}, testLogger(t)
	cs := []*candidate{
		startCandidate(t, lease, "short-a", led, log, nil),
		startCandidate(t, lease, "short-b", led, log, nil),
	}
	old := leaderAmong(t, led, cs)
	partition(t, old)
	edited := time.Now()
	editLease(t, lease, func(l *coordinationv1.Lease) {
		one := int32(1)
		l.Spec.LeaseDurationSeconds = &one
	})
	next := nextLeader(t, led, old.id, edited)
	e2etest.Eventually(t, 30*time.Second, "the partitioned leader's work stops", func() bool { return old.endedCount() == 1 })
	_, cause := old.ending(0)
	if !errors.Is(cause, leadership.ErrValidityExpired) {
		t.Errorf("the partitioned leader ended with %v, want ErrValidityExpired", cause)
	}
	t.Logf("successor %s started %v after the edit", next.who, next.start.Sub(edited))
	led.check(t)
}

// Path 1, the leader connected: an edit of anything the protocol reads ends
// its term at once, since others may act on the edited record; a change of
// metadata only (a label) does not.
func TestHandEditEndsTermButLabelDoesNot(t *testing.T) {
	lease, led, log := e2etest.LeaseName(t), &ledger{}, testLogger(t)
	cs := []*candidate{
		startCandidate(t, lease, "edit2-a", led, log, nil),
		startCandidate(t, lease, "edit2-b", led, log, nil),
	}
	old := leaderAmong(t, led, cs)
	renewals := watchRenewals(t, lease)

	editLease(t, lease, func(l *coordinationv1.Lease) {
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		l.Labels["team"] = "payments"
	})
	labelled := time.Now()
	e2etest.Eventually(t, 30*time.Second, "two renewals after the label", func() bool {
		return renewals.last(old.id).After(labelled.Add(time.Second))
	})
	if n := old.endedCount(); n != 0 {
		_, cause := old.ending(0)
		t.Fatalf("a label ended the term: %v", cause)
	}

	editLease(t, lease, func(l *coordinationv1.Lease) {
		one := int32(1)
		l.Spec.LeaseDurationSeconds = &one
	})
	e2etest.Eventually(t, 30*time.Second, "the leader's work stops", func() bool { return old.endedCount() == 1 })
	rem, cause := old.ending(0)
	if !errors.Is(cause, leadership.ErrLockLost) || !strings.Contains(cause.Error(), "leaseDuration") || rem <= 0 {
		t.Fatalf("ended with %v, %v of validity left: want ErrLockLost naming leaseDuration, before validity ends", cause, rem)
	}
	e2etest.Eventually(t, 30*time.Second, "a leader again", func() bool { return len(led.active()) == 1 })
	led.check(t)
}

// Path 2. An empty holder written by an operator (keeping the annotations)
// while the leader is partitioned is not a release: its work has not
// returned, so it is waited out like an expiry.
func TestUnmarkedEmptyHolderIsWaitedOut(t *testing.T) {
	lease, led, log := e2etest.LeaseName(t), &ledger{}, testLogger(t)
	cs := []*candidate{
		startCandidate(t, lease, "empty-a", led, log, nil),
		startCandidate(t, lease, "empty-b", led, log, nil),
	}
	old := leaderAmong(t, led, cs)
	partition(t, old)
	edited := time.Now()
	editLease(t, lease, func(l *coordinationv1.Lease) {
		empty, one := "", int32(1) // what client-go's release writes
		l.Spec.HolderIdentity = &empty
		l.Spec.LeaseDurationSeconds = &one
	})
	next := nextLeader(t, led, old.id, edited)
	t.Logf("successor %s started %v after the edit", next.who, next.start.Sub(edited))
	led.check(t)
}

// pollingLock refuses watches, as an API server does when RBAC does not
// grant "watch": the elector then learns everything, deletions included,
// by reading. allow lets watches through again.
type pollingLock struct {
	leadership.Lock
	allow   atomic.Bool
	watches atomic.Int64
}

func (p *pollingLock) Watch(ctx context.Context, from uint64) (<-chan leadership.Event, error) {
	if !p.allow.Load() {
		return nil, leadership.ErrForbidden
	}
	p.watches.Add(1)
	return p.Lock.Watch(ctx, from)
}

// Path 3. A deletion learned by a read says nothing about when the Lease
// went away or what it held last. Here the follower polls; its view is
// stale (it was cut off while the leader renewed); the leader renews, is
// partitioned, and the Lease is deleted. The follower must count a full
// lease from the read that found nothing.
func TestDeletionLearnedByReadCountsFromNow(t *testing.T) {
	lease, led, log := e2etest.LeaseName(t), &ledger{}, testLogger(t)
	a := startCandidate(t, lease, "poll-a", led, log, nil)
	leaderAmong(t, led, []*candidate{a})
	b := startCandidateWith(t, lease, "poll-b", led, log, nil, func(l leadership.Lock) leadership.Lock { return &pollingLock{Lock: l} })
	e2etest.Eventually(t, 30*time.Second, "the poller sees the leader", func() bool { return b.e.Leader().Identity == a.id })
	renewals := watchRenewals(t, lease)

	b.proxy.Blackhole() // b's view goes stale
	cut := time.Now()
	e2etest.Eventually(t, 30*time.Second, "two renewals b did not see", func() bool {
		return renewals.last(a.id).After(cut.Add(1500 * time.Millisecond))
	})
	// Right after a renewal, so that a's validity runs nearly a full lease.
	last := renewals.last(a.id)
	e2etest.Eventually(t, 30*time.Second, "the next renewal", func() bool { return renewals.last(a.id).After(last) })
	partition(t, a)
	deleted := time.Now()
	if err := admin(t).CoordinationV1().Leases(ns).Delete(context.Background(), lease, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	b.proxy.Restore()
	next := nextLeader(t, led, a.id, deleted)
	t.Logf("b re-created the Lease %v after the deletion", next.start.Sub(deleted))
	led.check(t)
}

// Liveness. A watch that was forbidden is tried again: once the permission
// is there, the elector watches instead of polling.
func TestPollingReturnsToWatching(t *testing.T) {
	lease, led, log := e2etest.LeaseName(t), &ledger{}, testLogger(t)
	var pl *pollingLock
	c := startCandidateWith(t, lease, "rewatch", led, log, func(c *leadership.Config) {
		c.RetryPeriod = 200 * time.Millisecond // retries the watch every 5s
	}, func(l leadership.Lock) leadership.Lock { pl = &pollingLock{Lock: l}; return pl })
	leaderAmong(t, led, []*candidate{c})
	pl.allow.Store(true)
	e2etest.Eventually(t, 30*time.Second, "watching again", func() bool { return pl.watches.Load() > 0 })
}

// Liveness. A handover requested to a replica that is not running must not
// make leadership flap: the request is void once someone acquires.
func TestHandoverToAbsentReplicaSettles(t *testing.T) {
	lease, led, log := e2etest.LeaseName(t), &ledger{}, testLogger(t)
	var cs []*candidate
	for _, id := range ids("ghost", 3) {
		cs = append(cs, startCandidate(t, lease, id, led, log, nil))
	}
	leaderAmong(t, led, cs)
	asked := time.Now()
	editLease(t, lease, func(l *coordinationv1.Lease) {
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations["leadership.dev/preferred-holder"] = "not-running"
	})
	renewals := watchRenewals(t, lease)
	// The leader hands over once; after the absent replica's head start
	// anyone may win, the old leader included.
	next := nextLeader(t, led, "", asked)
	// The replica that took over goes on renewing for longer than a lease
	// duration: before the fix, its own acquisition carried the request on
	// and it handed over again within a renewal interval.
	settled := time.Now()
	e2etest.Eventually(t, 30*time.Second, "renewals for over a lease duration", func() bool {
		return renewals.last(next.who).After(settled.Add(4 * time.Second))
	})
	terms := 0
	for _, iv := range led.intervals() {
		if iv.start.After(asked) {
			terms++
		}
	}
	if cur, _ := led.last(""); terms != 1 || !cur.open || cur.who != next.who {
		t.Fatalf("%d terms since the request (want 1: the handover, then calm); current %+v", terms, cur)
	}
	led.check(t)
}
