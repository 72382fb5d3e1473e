package integration

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/e2e/e2etest"
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

// interval is one stretch of leader work, with times on this process's
// monotonic clock, shared by every candidate in the test.
type interval struct {
	who        string
	token      uint64
	start, end time.Time
	open       bool
}

// ledger records every candidate's work so that a test can judge, after the
// fact, that no two terms ever overlapped.
type ledger struct {
	mu sync.Mutex
	iv []interval
}

func (l *ledger) begin(who string, token uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.iv = append(l.iv, interval{who: who, token: token, start: time.Now(), open: true})
	return len(l.iv) - 1
}

func (l *ledger) finish(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.iv[i].end, l.iv[i].open = time.Now(), false
}

func (l *ledger) intervals() []interval {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]interval(nil), l.iv...)
}

// active returns who is working right now.
func (l *ledger) active() []string {
	var out []string
	for _, iv := range l.intervals() {
		if iv.open {
			out = append(out, iv.who)
		}
	}
	return out
}

// last returns the most recent interval begun by who, or of anyone if who
// is empty.
func (l *ledger) last(who string) (interval, bool) {
	ivs := l.intervals()
	for i := len(ivs) - 1; i >= 0; i-- {
		if who == "" || ivs[i].who == who {
			return ivs[i], true
		}
	}
	return interval{}, false
}

// check fails the test on any two intervals that overlap, and on tokens
// that do not strictly increase in order of start (for electors that carry
// tokens: 0 marks a client-go term).
func (l *ledger) check(t *testing.T) {
	t.Helper()
	ivs := l.intervals()
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
	now := time.Now()
	var lastToken uint64
	for i, a := range ivs {
		aEnd := a.end
		if a.open {
			aEnd = now
		}
		if i+1 < len(ivs) {
			b := ivs[i+1]
			if !b.start.After(aEnd) {
				t.Errorf("overlap: %s (token %d) worked until %v after %s (token %d) started", a.who, a.token, aEnd.Sub(b.start), b.who, b.token)
			}
		}
		if a.token != 0 {
			if a.token <= lastToken {
				t.Errorf("token did not increase: %d after %d (%s)", a.token, lastToken, a.who)
			}
			lastToken = a.token
		}
	}
	if len(ivs) == 0 {
		t.Error("no leader work was recorded")
	}
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
// own proxy, so that a test can cut it off) recording into a shared ledger.
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

func startCandidate(t *testing.T, lease, id string, led *ledger, log *slog.Logger, mod func(*leadership.Config)) *candidate {
	t.Helper()
	return startCandidateWith(t, lease, id, led, log, mod, nil)
}

// startCandidateWith is startCandidate with the lock wrapped by wrap (when
// not nil), for a candidate whose view of the Lease a test shapes.
func startCandidateWith(t *testing.T, lease, id string, led *ledger, log *slog.Logger, mod func(*leadership.Config), wrap func(leadership.Lock) leadership.Lock) *candidate {
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
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, e: e, proxy: p, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := e.Run(ctx, c.lead(led)); err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *candidate) lead(led *ledger) leadership.LeadFunc {
	return func(ctx context.Context, term leadership.Term) error {
		i := led.begin(c.id, term.Token)
		c.mu.Lock()
		c.terms = append(c.terms, term)
		c.mu.Unlock()
		<-ctx.Done()
		rem := term.Remaining()
		led.finish(i)
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
func leaderAmong(t *testing.T, led *ledger, cs []*candidate) *candidate {
	t.Helper()
	var who string
	e2etest.Eventually(t, 30*time.Second, "exactly one leader", func() bool {
		a := led.active()
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

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
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
