package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
	"github.com/leadership-dev/leadership/kubelease"
)

// candidate is one in-process replica with its own connection to the API
// server through its own proxy, so that a scenario can cut it off.
type candidate struct {
	id     string
	proxy  *controlplane.Proxy
	cancel context.CancelFunc
	done   chan struct{}
	// leader is the holder as this candidate last observed it.
	leader func() string
}

func startCandidate(cp *controlplane.ControlPlane, cfg ImplConfig, ns, lease, id string, led *ledger.Local) (*candidate, error) {
	p, err := cp.NewProxy()
	if err != nil {
		return nil, err
	}
	rc := p.Config()
	rc.QPS = -1 // no client-side throttling: measure the electors, not the limiter
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, proxy: p, cancel: cancel, done: make(chan struct{})}
	fail := func(err error) (*candidate, error) {
		cancel()
		_ = p.Close()
		return nil, err
	}
	if cfg.Impl.ours() {
		rec, err := led.Replica(id, ledger.ImplLeadership)
		if err != nil {
			return fail(err)
		}
		lock, err := kubelease.New(cs.CoordinationV1(), ns, lease)
		if err != nil {
			return fail(err)
		}
		e, err := leadership.New(lock, cfg.ours(id, nil))
		if err != nil {
			return fail(err)
		}
		c.leader = func() string { return e.Leader().Identity }
		go func() {
			defer close(c.done)
			_ = e.Run(ctx, func(ctx context.Context, term leadership.Term) error {
				lt := rec.Begin(term.Token)
				<-ctx.Done()
				lt.End() // the work has returned
				return nil
			})
		}()
		return c, nil
	}
	rec, err := led.Replica(id, ledger.ImplClientGo)
	if err != nil {
		return fail(err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: lease},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	le, err := cfg.clientGo(lock, id, leaderelection.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			lt := rec.Begin(0)
			<-ctx.Done()
			lt.End()
		},
		OnStoppedLeading: func() {},
	})
	if err != nil {
		return fail(err)
	}
	c.leader = le.GetLeader
	go func() {
		defer close(c.done)
		le.Run(ctx)
	}()
	return c, nil
}

// stop ends the candidate gracefully: its elector's context is cancelled
// and stop returns once the elector has returned (for leadership: the work
// returned and the release was written; for client-go: the release was
// attempted).
func (c *candidate) stop(timeout time.Duration) error {
	c.cancel()
	defer func() { _ = c.proxy.Close() }()
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("candidate %s did not stop within %v", c.id, timeout)
	}
}

// kill cuts the candidate's connection for good, then cancels it, as a
// crashed process would never release.
func (c *candidate) kill(timeout time.Duration) error {
	_ = c.proxy.Close()
	return c.stop(timeout)
}

// slots keeps three candidates on one Lease, restarting one under a new
// identity when a scenario stops it, as a Deployment replaces a pod.
type slots struct {
	cp   *controlplane.ControlPlane
	cfg  ImplConfig
	ns   string
	name string
	led  *ledger.Local
	gen  int
	c    []*candidate
}

func newSlots(cp *controlplane.ControlPlane, cfg ImplConfig, ns, lease string, n int) (*slots, error) {
	s := &slots{cp: cp, cfg: cfg, ns: ns, name: lease, led: ledger.NewLocal(lease), c: make([]*candidate, n)}
	for i := range s.c {
		if err := s.restart(i); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *slots) restart(i int) error {
	id := fmt.Sprintf("%s-%d", shortName(s.cfg.Impl), s.gen)
	s.gen++
	c, err := startCandidate(s.cp, s.cfg, s.ns, s.name, id, s.led)
	if err != nil {
		return err
	}
	s.c[i] = c
	return nil
}

func (s *slots) close() {
	var wg sync.WaitGroup
	for _, c := range s.c {
		if c != nil {
			wg.Go(func() { _ = c.stop(time.Minute) })
		}
	}
	wg.Wait()
}

func shortName(i Impl) string {
	if i.ours() {
		return "ours"
	}
	return "cg"
}

// settled waits until exactly one candidate works and every candidate has
// observed some holder (so all three are up and campaigning), and returns
// the slot of the leader and its term.
func (s *slots) settled(ctx context.Context, timeout time.Duration) (int, ledger.Lead, error) {
	slot, lead := -1, ledger.Lead{}
	err := s.led.Await(ctx, timeout, 10*time.Millisecond, "one settled leader", func(ls []ledger.Lead) bool {
		var open []ledger.Lead
		for _, l := range ls {
			if l.Open {
				open = append(open, l)
			}
		}
		if len(open) != 1 {
			return false
		}
		slot = -1
		for i, c := range s.c {
			if c.leader() == "" {
				return false
			}
			if c.id == open[0].Identity {
				slot = i
			}
		}
		lead = open[0]
		return slot >= 0
	})
	return slot, lead, err
}

// nextStart waits for a term begun after 'after' by anyone but 'not', and
// returns it.
func (s *slots) nextStart(ctx context.Context, not string, after ledger.Mono, timeout time.Duration) (ledger.Lead, error) {
	var found ledger.Lead
	err := s.led.Await(ctx, timeout, 50*time.Millisecond, "a new leader", func(ls []ledger.Lead) bool {
		for _, l := range ls {
			if l.Identity != not && l.Start > after {
				found = l
				return true
			}
		}
		return false
	})
	return found, err
}

// ended returns the last term of who once its work has returned.
func (s *slots) ended(ctx context.Context, who string, timeout time.Duration) (ledger.Lead, error) {
	var found ledger.Lead
	err := s.led.Await(ctx, timeout, 50*time.Millisecond, who+"'s work to return", func(ls []ledger.Lead) bool {
		for i := len(ls) - 1; i >= 0; i-- {
			if ls[i].Identity == who {
				found = ls[i]
				return !ls[i].Open
			}
		}
		return false
	})
	if err == nil && found.Identity == "" {
		err = errors.New("no work recorded for " + who)
	}
	return found, err
}

// overlaps counts the pairs of lead intervals that intersect, by the
// checker's judgement: two leaders working at once.
func (s *slots) overlaps() int {
	r := checker.Check(s.led.History())
	return len(r.LeadOverlaps) + len(r.FrozenOverlaps)
}
