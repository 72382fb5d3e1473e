package integration

import (
	"context"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// clientGoCandidate runs client-go's elector on the same Lease. Its work
// returns before its elector is cancelled (and releases): that is how a
// careful client-go user hands over, since client-go itself releases
// without waiting for the work.
type clientGoCandidate struct {
	id       string
	cancel   context.CancelFunc
	done     chan struct{}
	stopWork chan struct{}
	started  chan struct{}
}

func startClientGo(t *testing.T, lease, id string, led *ledger.Local) *clientGoCandidate {
	t.Helper()
	cs := admin(t)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(lease),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	rec, err := led.Replica(id, ledger.ImplClientGo)
	if err != nil {
		t.Fatal(err)
	}
	c := &clientGoCandidate{id: id, done: make(chan struct{}), stopWork: make(chan struct{}), started: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   3 * time.Second,
		RenewDeadline:   2 * time.Second,
		RetryPeriod:     300 * time.Millisecond,
		ReleaseOnCancel: true,
		Name:            id,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				lt := rec.Begin(0)
				close(c.started)
				select {
				case <-ctx.Done():
				case <-c.stopWork:
				}
				lt.End()
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		le.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// handBack stops the work, then cancels the elector, which releases.
func (c *clientGoCandidate) handBack() {
	close(c.stopWork)
	c.cancel()
	<-c.done
}

// h. A mixed fleet: client-go's elector and ours on one Lease, 20 handovers
// each way, never two leaders at once by the recorded work intervals.
func TestMixedFleetWithClientGo(t *testing.T) {
	lease, led, log := setup(t)
	ours := startCandidate(t, lease, "ours-0", led, log, nil)
	e2etest.Eventually(t, 30*time.Second, "ours leads", func() bool { return ours.termCount() == 1 })
	var toClientGo, toOurs []time.Duration
	for i := 0; i < 20; i++ {
		cg := startClientGo(t, lease, "client-go-"+strconv.Itoa(i), led)
		stopAt := time.Now()
		ours.stop() // releases once its work returned
		select {
		case <-cg.started:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: client-go did not take over", i)
		}
		toClientGo = append(toClientGo, time.Since(stopAt))
		ours = startCandidate(t, lease, "ours-"+strconv.Itoa(i+1), led, log, nil)
		// Ours must respect client-go's lease while it renews.
		e2etest.Eventually(t, 30*time.Second, "ours observes client-go", func() bool { return ours.e.Leader().Identity == cg.id })
		n := ours.termCount()
		stopAt = time.Now()
		cg.handBack()
		e2etest.Eventually(t, 30*time.Second, "ours takes over from client-go", func() bool { return ours.termCount() == n+1 })
		toOurs = append(toOurs, time.Since(stopAt))
	}
	t.Logf("handover ours→client-go: %v", toClientGo)
	t.Logf("handover client-go→ours: %v", toOurs)
	e2etest.CheckLedger(t, led)
}
