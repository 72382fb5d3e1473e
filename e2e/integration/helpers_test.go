package integration

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
	"github.com/leadership-dev/leadership/kubelease"
)

const ns = "default"

func admin(t *testing.T) kubernetes.Interface { return e2etest.Client(t, cp.Config) }

func getLease(t *testing.T, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := admin(t).CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Lease %s: %v", name, err)
	}
	return l
}

// setup returns what every test here starts from: a Lease of its own, an
// empty ledger for it, and a logger whose output the test prints if it
// fails.
func setup(t *testing.T) (lease string, led *ledger.Local, log *slog.Logger) {
	lease = e2etest.LeaseName(t)
	return lease, ledger.NewLocal(lease), testLogger(t)
}

func testLogger(t *testing.T) *slog.Logger {
	buf := &e2etest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("elector logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// candidate is one replica: an elector on its own connection (through its
// own proxy, so that a test can cut it off) recording into a shared ledger:
// each term as a lead interval, with one unit of work under its token as
// it begins (so that the checker judges the tokens too).
type candidate struct {
	id     string
	e      *leadership.Elector
	proxy  *controlplane.Proxy
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	terms  []leadership.Term
	causes []error
	// remainingAtEnd is Term.Remaining when lead saw its context end.
	remainingAtEnd []time.Duration
}

var fastTimings = func(c *leadership.Config) { c.LeaseDuration = 3 * time.Second }

func startCandidate(t *testing.T, lease, id string, led *ledger.Local, log *slog.Logger, mod func(*leadership.Config)) *candidate {
	t.Helper()
	return startCandidateWith(t, lease, id, led, log, mod, nil)
}

// startCandidateWith is startCandidate with the lock wrapped by wrap (when
// not nil), for a candidate whose view of the Lease a test shapes.
func startCandidateWith(t *testing.T, lease, id string, led *ledger.Local, log *slog.Logger, mod func(*leadership.Config), wrap func(leadership.Lock) leadership.Lock) *candidate {
	t.Helper()
	p, err := cp.NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	lock, err := kubelease.New(e2etest.Client(t, p.Config()).CoordinationV1(), ns, lease)
	if err != nil {
		t.Fatal(err)
	}
	cfg := leadership.Config{Identity: id, Logger: log.With("candidate", id)}
	fastTimings(&cfg)
	if mod != nil {
		mod(&cfg)
	}
	var l leadership.Lock = lock
	if wrap != nil {
		l = wrap(lock)
	}
	e, err := leadership.New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := led.Replica(id, ledger.ImplLeadership)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, e: e, proxy: p, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := e.Run(ctx, c.lead(rec)); err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *candidate) lead(rec *ledger.Replica) leadership.LeadFunc {
	return func(ctx context.Context, term leadership.Term) error {
		lt := rec.Begin(term.Token)
		lt.Unit()
		c.mu.Lock()
		c.terms = append(c.terms, term)
		c.mu.Unlock()
		<-ctx.Done()
		rem := term.Remaining()
		lt.End()
		c.mu.Lock()
		c.causes = append(c.causes, context.Cause(ctx))
		c.remainingAtEnd = append(c.remainingAtEnd, rem)
		c.mu.Unlock()
		return nil
	}
}

// stop cancels the candidate's Run and waits for it to return (after its
// work returned and the release was written).
func (c *candidate) stop() {
	c.cancel()
	<-c.done
}

func (c *candidate) termCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.terms)
}

func (c *candidate) term(i int) leadership.Term {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.terms[i]
}

func (c *candidate) endedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.causes)
}

func (c *candidate) ending(i int) (remaining time.Duration, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remainingAtEnd[i], c.causes[i]
}

// leaderAmong waits until exactly one candidate works and returns it.
func leaderAmong(t *testing.T, led *ledger.Local, cs []*candidate) *candidate {
	t.Helper()
	var who string
	e2etest.Eventually(t, 30*time.Second, "exactly one leader", func() bool {
		a := led.Active()
		if len(a) == 1 {
			who = a[0]
			return true
		}
		return false
	})
	for _, c := range cs {
		if c.id == who {
			return c
		}
	}
	t.Fatalf("leader %q is not among the candidates", who)
	return nil
}

// startCandidates starts n candidates with the default configuration,
// named prefix-0, prefix-1, ...
func startCandidates(t *testing.T, lease string, led *ledger.Local, log *slog.Logger, prefix string, n int) []*candidate {
	t.Helper()
	cs := make([]*candidate, n)
	for i := range cs {
		cs[i] = startCandidate(t, lease, fmt.Sprintf("%s-%d", prefix, i), led, log, nil)
	}
	return cs
}

func metav1ObjectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}

// renewalLog records, through the admin client's own watch, the newest
// renewTime each holder wrote to a Lease.
type renewalLog struct {
	mu     sync.Mutex
	newest map[string]time.Time
}

func watchRenewals(t *testing.T, lease string) *renewalLog {
	t.Helper()
	r := &renewalLog{newest: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := admin(t).CoordinationV1().Leases(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + lease})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			l, ok := ev.Object.(*coordinationv1.Lease)
			if !ok || l.Spec.RenewTime == nil {
				continue
			}
			r.mu.Lock()
			if h := e2etest.HolderOf(l); l.Spec.RenewTime.After(r.newest[h]) {
				r.newest[h] = l.Spec.RenewTime.Time
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return r
}

func (r *renewalLog) last(holder string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newest[holder]
}
