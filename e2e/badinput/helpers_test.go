package badinput

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
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
	"github.com/leadership-dev/leadership/kubelease"
)

const ns = "default"

// testLease is the lease duration of the candidates here: long enough that
// "at once" and "after the lease" are told apart with room to spare on a
// loaded machine.
const testLease = 4 * time.Second

func admin(t *testing.T) kubernetes.Interface { return e2etest.Client(t, cp.Config) }

func newLog(t *testing.T) (*slog.Logger, *e2etest.SyncBuffer) {
	buf := &e2etest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("elector logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// work is one term's work as recorded by the test: when it began, when it
// returned, and the worst lateness observed, i.e. how far past the end of
// the term's validity the work was still running with its context not
// yet cancelled.
type work struct {
	who        string
	token      uint64
	start, end time.Time
	open       bool
	late       time.Duration
}

// record keeps the work of every candidate of a test, for the test's own
// questions (when did the first term begin, has it ended, did any work run
// past its validity), and records each term in a ledger.Local, which the
// chaos checker judges (check). time.Now and the ledger's CLOCK_MONOTONIC
// are the process's, shared by all candidates here.
type record struct {
	mu  sync.Mutex
	ws  []work
	led *ledger.Local
}

// ledger returns the record's ledger; one record is one Lease's fleet.
func (r *record) ledger() *ledger.Local {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.led == nil {
		r.led = ledger.NewLocal("badinput")
	}
	return r.led
}

// lead is a LeadFunc that records its work and checks every 5ms that it
// is not running on a term whose validity has run out.
func (r *record) lead(who string) leadership.LeadFunc {
	rep, err := r.ledger().Replica(who, ledger.ImplLeadership)
	return func(ctx context.Context, t leadership.Term) error {
		if err != nil {
			return err // an empty identity: the term ends at once, and the test sees no work
		}
		lt := rep.Begin(t.Token)
		lt.Unit()
		r.mu.Lock()
		r.ws = append(r.ws, work{who: who, token: t.Token, start: time.Now(), open: true})
		i := len(r.ws) - 1
		r.mu.Unlock()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				lt.End()
				r.mu.Lock()
				r.ws[i].end, r.ws[i].open = time.Now(), false
				r.mu.Unlock()
				return nil
			case <-tick.C:
				if rem := t.Remaining(); rem < 0 && ctx.Err() == nil {
					r.mu.Lock()
					r.ws[i].late = max(r.ws[i].late, -rem)
					r.mu.Unlock()
				}
			}
		}
	}
}

func (r *record) all() []work {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]work(nil), r.ws...)
}

func (r *record) terms() int { return len(r.all()) }

func (r *record) first() (work, bool) {
	ws := r.all()
	if len(ws) == 0 {
		return work{}, false
	}
	return ws[0], true
}

// lateLimit is how long past its validity a term's work may run before
// the test calls it a leader working without a valid term: the watchdog
// cancels at the end of validity, and this leaves room only for the
// scheduling of that goroutine on a loaded machine.
const lateLimit = time.Second

// check fails the test if two terms' work overlapped or tokens did not
// increase, as the chaos checker judges the ledger, or if a term worked
// past its validity.
func (r *record) check(t *testing.T) {
	t.Helper()
	ws := r.all()
	if len(ws) > 0 { // nobody led: nothing to judge
		e2etest.CheckLedger(t, r.ledger())
	}
	for _, a := range ws {
		if a.late > lateLimit {
			t.Errorf("%s (token %d) worked %v past the end of its term's validity", a.who, a.token, a.late)
		}
	}
}

// candidate is one in-process elector on its own client.
type candidate struct {
	id     string
	e      *leadership.Elector
	cancel context.CancelFunc
	done   chan error
}

// startCandidate runs an elector for Lease name through cfg, recording its
// work in rec.
func startCandidate(t *testing.T, cfg *rest.Config, name, id string, rec *record, log *slog.Logger) *candidate {
	t.Helper()
	lock, err := kubelease.New(e2etest.Client(t, cfg).CoordinationV1(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	e, err := leadership.New(lock, leadership.Config{Identity: id, LeaseDuration: testLease, Logger: log.With("candidate", id)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, e: e, cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- e.Run(ctx, rec.lead(id)) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop cancels Run and checks that it returns nil, promptly.
func (c *candidate) stop(t *testing.T) {
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("%s: Run returned %v, want nil", c.id, err)
		}
		c.done <- nil // a second stop returns at once
	case <-time.After(time.Minute):
		t.Errorf("%s: Run did not return within a minute of its context ending", c.id)
	}
}

func ptr[T any](v T) *T { return &v }

// createLease creates Lease name as the admin, with spec and annotations.
func createLease(ctx context.Context, t *testing.T, name string, spec coordinationv1.LeaseSpec, annotations map[string]string) (*coordinationv1.Lease, error) {
	t.Helper()
	return admin(t).CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec:       spec,
	}, metav1.CreateOptions{})
}

func getLease(t *testing.T, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := admin(t).CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Lease %s: %v", name, err)
	}
	return l
}

func describe(l *coordinationv1.Lease) string {
	s := l.Spec
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	i32 := func(p *int32) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("holder %s duration %s transitions %s rv %s annotations %v",
		str(s.HolderIdentity), i32(s.LeaseDurationSeconds), i32(s.LeaseTransitions), l.ResourceVersion, l.Annotations)
}
