package integration

// Paths to two leaders that a naive elector leaves open, each against the
// real API server. Every test judges the work intervals themselves (the
// ledger, on CLOCK_MONOTONIC, judged by the checker), not a fenced store.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
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
func nextLeader(t *testing.T, led *ledger.Local, old string, since ledger.Mono) ledger.Lead {
	t.Helper()
	var next ledger.Lead
	e2etest.Eventually(t, 30*time.Second, "another replica leads", func() bool {
		iv, ok := led.Last("")
		next = iv
		return ok && iv.Identity != old && iv.Start > since
	})
	return next
}

// Path 1. A hand edit that keeps the holder and the annotations but shortens
// leaseDurationSeconds, while the leader is partitioned and never sees it:
// the followers must still wait out the duration the holder announced.
func TestHandEditShorterLeaseWhileLeaderPartitioned(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "short", 2)
	old := leaderAmong(t, led, cs)
	partition(t, old)
	edited := ledger.Now()
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
	t.Logf("successor %s started %v after the edit", next.Identity, next.Start.Sub(edited))
	e2etest.CheckLedger(t, led)
}

// Path 1, the leader connected: an edit of anything the protocol reads ends
// its term at once, since others may act on the edited record; a change of
// metadata only (a label) does not.
func TestHandEditEndsTermButLabelDoesNot(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "edit2", 2)
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
	e2etest.Eventually(t, 30*time.Second, "a leader again", func() bool { return len(led.Active()) == 1 })
	e2etest.CheckLedger(t, led)
}

// Path 2. An empty holder written by an operator (keeping the annotations)
// while the leader is partitioned is not a release: its work has not
// returned, so it is waited out like an expiry.
func TestUnmarkedEmptyHolderIsWaitedOut(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "empty", 2)
	old := leaderAmong(t, led, cs)
	partition(t, old)
	edited := ledger.Now()
	editLease(t, lease, func(l *coordinationv1.Lease) {
		empty, one := "", int32(1) // what client-go's release writes
		l.Spec.HolderIdentity = &empty
		l.Spec.LeaseDurationSeconds = &one
	})
	next := nextLeader(t, led, old.id, edited)
	t.Logf("successor %s started %v after the edit", next.Identity, next.Start.Sub(edited))
	e2etest.CheckLedger(t, led)
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
	lease, led, log := setup(t)
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
	deleted := ledger.Now()
	if err := admin(t).CoordinationV1().Leases(ns).Delete(context.Background(), lease, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	b.proxy.Restore()
	next := nextLeader(t, led, a.id, deleted)
	t.Logf("b re-created the Lease %v after the deletion", next.Start.Sub(deleted))
	e2etest.CheckLedger(t, led)
}

// Liveness. A watch that was forbidden is tried again: once the permission
// is there, the elector watches instead of polling.
func TestPollingReturnsToWatching(t *testing.T) {
	lease, led, log := setup(t)
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
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "ghost", 3)
	leaderAmong(t, led, cs)
	asked := ledger.Now()
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
		return renewals.last(next.Identity).After(settled.Add(4 * time.Second))
	})
	terms := 0
	for _, iv := range led.Leads() {
		if iv.Start > asked {
			terms++
		}
	}
	if cur, _ := led.Last(""); terms != 1 || !cur.Open || cur.Identity != next.Identity {
		t.Fatalf("%d terms since the request (want 1: the handover, then calm); current %+v", terms, cur)
	}
	e2etest.CheckLedger(t, led)
}

// acquisitionGate holds the first acquiring update of two followers until
// the second one is sent, so that both are sent from the same observed
// version; then it lets the first through, deletes the Lease as an
// operator would, and lets the second through.
type acquisitionGate struct {
	t      *testing.T
	lease  string
	armed  atomic.Bool
	mu     sync.Mutex
	sent   map[string]bool // followers whose acquisition arrived
	second chan struct{}   // closed when the second acquisition arrives
	first  chan struct{}   // closed when the first has been applied and the Lease deleted
	// The first acquirer's watch stream lags, as a loaded API server's
	// can: events reach it only after stallUntil.
	stallID    string
	stallUntil time.Time
}

// lag is how long an event for id waits before delivery (0: none).
func (a *acquisitionGate) lag(id string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stallID != id {
		return 0
	}
	return time.Until(a.stallUntil)
}

type gatedLock struct {
	leadership.Lock
	id      string
	gate    *acquisitionGate
	once    sync.Once
	deleted chan struct{} // closed once this lock's watch has passed on a deletion
}

func (g *gatedLock) Watch(ctx context.Context, from uint64) (<-chan leadership.Event, error) {
	in, err := g.Lock.Watch(ctx, from)
	if err != nil {
		return nil, err
	}
	out := make(chan leadership.Event)
	go func() {
		defer close(out)
		for ev := range in {
			if ev.Type == leadership.Deleted {
				g.once.Do(func() { close(g.deleted) })
			}
			if d := g.gate.lag(g.id); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (g *gatedLock) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	a := g.gate
	if !a.armed.Load() || r.HolderIdentity != g.id {
		return g.Lock.Update(ctx, r)
	}
	a.mu.Lock()
	if a.sent[g.id] {
		a.mu.Unlock()
		return g.Lock.Update(ctx, r)
	}
	a.sent[g.id] = true
	isFirst := len(a.sent) == 1
	if !isFirst {
		close(a.second)
	}
	a.mu.Unlock()
	if !isFirst {
		<-a.first
		// The deletion has reached this replica's Lock, not yet its
		// elector (whose acquisition is already on its way).
		select {
		case <-g.deleted:
		case <-time.After(20 * time.Second):
			a.t.Errorf("inconclusive: %s's watch never passed on the deletion", g.id)
		}
		return g.Lock.Update(ctx, r)
	}
	select {
	case <-a.second:
	case <-time.After(20 * time.Second):
		a.t.Errorf("inconclusive: the second follower never tried to acquire from the same version")
	}
	a.mu.Lock()
	a.stallID, a.stallUntil = g.id, time.Now().Add(3*time.Second)
	a.mu.Unlock()
	res, err := g.Lock.Update(ctx, r)
	if err := admin(a.t).CoordinationV1().Leases(ns).Delete(context.Background(), a.lease, metav1.DeleteOptions{}); err != nil {
		a.t.Errorf("delete: %v", err)
	}
	close(a.first)
	return res, err
}

// An update is a compare-and-swap only while the Lease exists: the API
// server creates a Lease that an update names but that does not exist
// (Leases allow create-on-update), whatever resourceVersion the update
// carries. Two followers acquire from the same version; an operator deletes
// the Lease between the two writes. The second write must not re-create the
// Lease and lead beside the first.
func TestDeletionBetweenTwoAcquisitions(t *testing.T) {
	lease, led, log := setup(t)
	gate := &acquisitionGate{t: t, lease: lease, sent: map[string]bool{}, second: make(chan struct{}), first: make(chan struct{})}
	a := startCandidate(t, lease, "del-a", led, log, nil)
	leaderAmong(t, led, []*candidate{a})
	var fs []*candidate
	for _, id := range []string{"del-b", "del-c"} {
		fs = append(fs, startCandidateWith(t, lease, id, led, log, nil, func(l leadership.Lock) leadership.Lock {
			return &gatedLock{Lock: l, id: id, gate: gate, deleted: make(chan struct{})}
		}))
	}
	for _, f := range fs {
		e2etest.Eventually(t, 30*time.Second, f.id+" sees the leader", func() bool { return f.e.Leader().Identity == a.id })
	}
	gate.armed.Store(true)
	partition(t, a)
	since := ledger.Now()
	nextLeader(t, led, a.id, since)
	e2etest.Eventually(t, 30*time.Second, "both followers tried to acquire", func() bool {
		select {
		case <-gate.first:
			return true
		default:
			return false
		}
	})
	// Both acquisitions are decided; give a wrongly re-created Lease's
	// holder the time to begin and the other the time to notice it.
	e2etest.Eventually(t, 30*time.Second, "one leader after the deletion, and its term under way", func() bool {
		iv, ok := led.Last("")
		return ok && iv.Start > since && ledger.Now().Sub(iv.Start) > 3*time.Second
	})
	e2etest.CheckLedger(t, led)
}
