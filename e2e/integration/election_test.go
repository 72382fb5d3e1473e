package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// a. Five candidates: exactly one leads, and the Lease names it.
func TestFiveCandidatesOneLeader(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "five", 5)
	l := leaderAmong(t, led, cs)
	// Stay a few renewals long: still exactly one, still named by the Lease.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if a := led.Active(); len(a) != 1 || a[0] != l.id {
			t.Fatalf("leaders now %v, want only %s", a, l.id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h := e2etest.HolderOf(getLease(t, lease)); h != l.id {
		t.Fatalf("Lease names %q, leader is %q", h, l.id)
	}
	for _, c := range cs {
		if got := c.e.Leader(); got.Identity != l.id || got.Self != (c == l) {
			t.Errorf("%s observes %+v", c.id, got)
		}
	}
	e2etest.CheckLedger(t, led)
}

// b. Graceful stop: another leads, after the old lead returned.
func TestGracefulHandover(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "grace", 3)
	var took []time.Duration
	for round := 0; round < 5; round++ {
		old := leaderAmong(t, led, cs)
		stopAt := ledger.Now()
		old.stop()
		var next ledger.Lead
		e2etest.Eventually(t, 30*time.Second, "a successor", func() bool {
			iv, ok := led.Last("")
			next = iv
			return ok && iv.Identity != old.id && iv.Start > stopAt
		})
		oldIv, _ := led.Last(old.id)
		if oldIv.Open || oldIv.End >= next.Start {
			t.Fatalf("old lead (%s) ended %v, new lead (%s) started %v", old.id, oldIv.End, next.Identity, next.Start)
		}
		took = append(took, next.Start.Sub(oldIv.End))
		// Restart the stopped replica so that the fleet stays at three.
		for i, c := range cs {
			if c == old {
				cs[i] = startCandidate(t, lease, old.id+"r", led, log, nil)
			}
		}
	}
	t.Logf("graceful handover (old work returned → new work started): %v", took)
	e2etest.CheckLedger(t, led)
}

// c. Crash: the leader's traffic is cut, no release; a successor leads after
// the lease duration, counted from the last renewal, never before.
func TestCrashTakeover(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "crash", 3)
	renewals := watchRenewals(t, lease)
	old := leaderAmong(t, led, cs)
	old.proxy.Blackhole()
	cutAt := ledger.Now()
	var next ledger.Lead
	e2etest.Eventually(t, 30*time.Second, "a successor", func() bool {
		iv, ok := led.Last("")
		next = iv
		return ok && iv.Identity != old.id
	})
	// The last renewal that reached the API server, by its send time: the
	// newest renewTime the old leader wrote, as an independent watch saw.
	lastRenew := renewals.last(old.id)
	ld := 3 * time.Second
	if since := next.Start.Time().Sub(lastRenew); since < ld {
		t.Fatalf("successor started %v after the last renewal, before the lease duration %v", since, ld)
	}
	oldIv, _ := led.Last(old.id)
	if oldIv.Open || oldIv.End >= next.Start {
		t.Fatalf("cut-off leader still worked when the successor started")
	}
	_, cause := old.ending(0)
	if !errors.Is(cause, leadership.ErrValidityExpired) {
		t.Fatalf("cut-off leader's term ended with %v", cause)
	}
	t.Logf("crash takeover: %v after the last renewal (lease %v, %v beyond it); cut-off leader stopped %v after the cut",
		next.Start.Time().Sub(lastRenew), ld, next.Start.Time().Sub(lastRenew)-ld, oldIv.End.Sub(cutAt))
	old.proxy.Restore()
	e2etest.CheckLedger(t, led)
}

// d. A leader that lost leadership campaigns again and leads again, in the
// same process.
func TestRecampaignAfterLoss(t *testing.T) {
	lease, led, log := setup(t)
	a := startCandidate(t, lease, "recamp-a", led, log, nil)
	e2etest.Eventually(t, 30*time.Second, "a leads", func() bool { return a.termCount() == 1 })
	b := startCandidate(t, lease, "recamp-b", led, log, nil)
	a.proxy.Blackhole()
	e2etest.Eventually(t, 30*time.Second, "b leads", func() bool { return b.termCount() == 1 })
	a.proxy.Restore()
	e2etest.Eventually(t, 30*time.Second, "a follows b", func() bool { return a.e.Leader().Identity == "recamp-b" })
	b.stop()
	e2etest.Eventually(t, 30*time.Second, "a leads again", func() bool { return a.termCount() == 2 })
	if h := e2etest.HolderOf(getLease(t, lease)); h != "recamp-a" {
		t.Fatalf("Lease names %q", h)
	}
	e2etest.CheckLedger(t, led)
}

// e. The Lease deleted while held: the work stops at once, and leadership is
// established again.
func TestLeaseDeletedWhileHeld(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "del", 2)
	old := leaderAmong(t, led, cs)
	tokenBefore := old.term(0).Token
	deletedAt := ledger.Now() // the request is sent after this
	if err := admin(t).CoordinationV1().Leases(ns).Delete(context.Background(), lease, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e2etest.Eventually(t, 30*time.Second, "the leader's work stops", func() bool { return old.endedCount() == 1 })
	rem, cause := old.ending(0)
	if !errors.Is(cause, leadership.ErrLockDeleted) || rem <= 0 {
		t.Fatalf("ended with %v, %v of validity left: want ErrLockDeleted well before validity ends", cause, rem)
	}
	oldIv, _ := led.Last(old.id)
	t.Logf("work stopped %v after the delete was sent, with %v of validity left", oldIv.End.Sub(deletedAt), rem)
	var next ledger.Lead
	e2etest.Eventually(t, 30*time.Second, "a leader again", func() bool {
		iv, ok := led.Last("")
		next = iv
		return ok && iv.Open && iv.Start > deletedAt
	})
	if next.Token <= tokenBefore {
		t.Fatalf("token went from %d to %d across the deletion", tokenBefore, next.Token)
	}
	if h := e2etest.HolderOf(getLease(t, lease)); h != next.Identity {
		t.Fatalf("Lease names %q, leader %q", h, next.Identity)
	}
	e2etest.CheckLedger(t, led)
}

// f. The holder overwritten by hand: the leader notices through its watch
// and stops before its validity ends.
func TestHolderOverwrittenByHand(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "edit", 2)
	old := leaderAmong(t, led, cs)
	l := getLease(t, lease)
	intruder := "kubectl-edit"
	l.Spec.HolderIdentity = &intruder
	if _, err := admin(t).CoordinationV1().Leases(ns).Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e2etest.Eventually(t, 30*time.Second, "the leader's work stops", func() bool { return old.endedCount() == 1 })
	rem, cause := old.ending(0)
	if !errors.Is(cause, leadership.ErrLockLost) || rem <= 0 {
		t.Fatalf("ended with %v, %v of validity left: want ErrLockLost before validity ends", cause, rem)
	}
	// The hand-written holder never renews: after its lease someone leads.
	e2etest.Eventually(t, 30*time.Second, "a leader again", func() bool { return len(led.Active()) == 1 })
	e2etest.CheckLedger(t, led)
}

// g. Fencing tokens strictly increase over 50 transitions, whoever wins,
// including the same identity winning again.
func TestTokensIncreaseOver50Transitions(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "tok", 3)
	for i := 0; i < 50; i++ {
		l := leaderAmong(t, led, cs)
		n := l.termCount()
		before := len(led.Leads())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if i%10 == 9 {
			// Now and then, delete the Lease instead: tokens must still grow.
			if err := admin(t).CoordinationV1().Leases(ns).Delete(ctx, lease, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e2etest.Eventually(t, 30*time.Second, "work stopped", func() bool { return l.endedCount() == n })
		} else if err := l.e.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		e2etest.Eventually(t, 30*time.Second, "next term", func() bool { return len(led.Leads()) > before })
	}
	ivs := led.Leads()
	if len(ivs) < 51 {
		t.Fatalf("%d terms", len(ivs))
	}
	t.Logf("%d terms, tokens %d … %d", len(ivs), ivs[0].Token, ivs[len(ivs)-1].Token)
	e2etest.CheckLedger(t, led)
}

// Values proclaimed in a term are stored on the Lease, carried into the next
// term, and cannot be moved by a term that has ended.
func TestProclaimAcrossHandover(t *testing.T) {
	lease, led, log := setup(t)
	a := startCandidate(t, lease, "vals-a", led, log, nil)
	e2etest.Eventually(t, 30*time.Second, "a leads", func() bool { return a.termCount() == 1 })
	ta := a.term(0)
	ctx := context.Background()
	if err := a.e.Proclaim(ctx, ta, map[string]string{"last-run": "run-1"}); err != nil {
		t.Fatal(err)
	}
	if got := getLease(t, lease).Annotations["values.leadership.dev/last-run"]; got != "run-1" {
		t.Fatalf("annotation %q", got)
	}
	b := startCandidate(t, lease, "vals-b", led, log, nil)
	e2etest.Eventually(t, 30*time.Second, "b follows", func() bool { return b.e.Leader().Identity == "vals-a" })
	if err := a.e.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	e2etest.Eventually(t, 30*time.Second, "b leads", func() bool { return b.termCount() == 1 })
	if got := b.term(0).Values["last-run"]; got != "run-1" {
		t.Fatalf("b's term starts with %v", b.term(0).Values)
	}
	if err := a.e.Proclaim(ctx, ta, map[string]string{"last-run": "stale"}); !errors.Is(err, leadership.ErrNotLeader) {
		t.Fatalf("ended term proclaimed: %v", err)
	}
	if got := getLease(t, lease).Annotations["values.leadership.dev/last-run"]; got != "run-1" {
		t.Fatalf("annotation moved to %q", got)
	}
	e2etest.CheckLedger(t, led)
}

// A handover requested on the Lease (what `leadership handover --to`
// writes) moves leadership to the named replica.
func TestHandoverToNamedReplica(t *testing.T) {
	lease, led, log := setup(t)
	cs := startCandidates(t, lease, led, log, "hand", 3)
	for round := 0; round < 3; round++ {
		old := leaderAmong(t, led, cs)
		var to *candidate
		for _, c := range cs {
			if c != old && (to == nil || c.termCount() < to.termCount()) {
				to = c
			}
		}
		n := to.termCount()
		l := getLease(t, lease)
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations["leadership.dev/preferred-holder"] = to.id
		if _, err := admin(t).CoordinationV1().Leases(ns).Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		e2etest.Eventually(t, 30*time.Second, "the named replica leads", func() bool { return to.termCount() == n+1 })
		if _, ok := getLease(t, lease).Annotations["leadership.dev/preferred-holder"]; ok {
			t.Fatal("request not cleared by the successor's acquisition")
		}
	}
	e2etest.CheckLedger(t, led)
}
