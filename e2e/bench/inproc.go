package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/kubelease"
)

// interval is one stretch of a candidate's leader work, on this process's
// monotonic clock.
type interval struct {
	who        string
	start, end time.Time
	open       bool
}

// ledger records the work of the in-process candidates of one Lease. Each
// change wakes waiters, so a scenario waits for events instead of polling.
type ledger struct {
	mu      sync.Mutex
	iv      []interval
	changed chan struct{}
}

func newLedger() *ledger { return &ledger{changed: make(chan struct{})} }

func (l *ledger) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *ledger) begin(who string) int {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.iv = append(l.iv, interval{who: who, start: now, open: true})
	l.notify()
	return len(l.iv) - 1
}

func (l *ledger) finish(i int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.iv[i].end, l.iv[i].open = now, false
	l.notify()
}

// await returns the first result of find that is ok, re-checking on every
// change of the ledger and every poll (for conditions outside the ledger),
// or an error after timeout.
func (l *ledger) await(ctx context.Context, timeout, poll time.Duration, what string, find func([]interval) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		l.mu.Lock()
		ok := find(l.iv)
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// overlaps counts pairs of consecutive work intervals (by start) where the
// later began before the earlier ended: two leaders at once.
func (l *ledger) overlaps() int {
	l.mu.Lock()
	ivs := append([]interval(nil), l.iv...)
	l.mu.Unlock()
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
	n := 0
	now := time.Now()
	for i := 0; i+1 < len(ivs); i++ {
		end := ivs[i].end
		if ivs[i].open {
			end = now
		}
		if !ivs[i+1].start.After(end) {
			n++
		}
	}
	return n
}

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

func startCandidate(cp *controlplane.ControlPlane, cfg ImplConfig, ns, lease, id string, led *ledger) (*candidate, error) {
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
			_ = e.Run(ctx, func(ctx context.Context, _ leadership.Term) error {
				i := led.begin(id)
				<-ctx.Done()
				led.finish(i) // the work has returned
				return nil
			})
		}()
		return c, nil
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: lease},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	le, err := cfg.clientGo(lock, id, leaderelection.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			i := led.begin(id)
			<-ctx.Done()
			led.finish(i)
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
	led  *ledger
	gen  int
	c    []*candidate
}

func newSlots(cp *controlplane.ControlPlane, cfg ImplConfig, ns, lease string, n int) (*slots, error) {
	s := &slots{cp: cp, cfg: cfg, ns: ns, name: lease, led: newLedger(), c: make([]*candidate, n)}
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
// the slot of the leader and its work interval.
func (s *slots) settled(ctx context.Context, timeout time.Duration) (int, interval, error) {
	slot, iv := -1, interval{}
	err := s.led.await(ctx, timeout, 10*time.Millisecond, "one settled leader", func(ivs []interval) bool {
		var open []interval
		for _, v := range ivs {
			if v.open {
				open = append(open, v)
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
			if c.id == open[0].who {
				slot = i
			}
		}
		iv = open[0]
		return slot >= 0
	})
	return slot, iv, err
}

// nextStart waits for a work interval begun after 'after' by anyone but
// 'not', and returns it.
func (s *slots) nextStart(ctx context.Context, not string, after time.Time, timeout time.Duration) (interval, error) {
	var found interval
	err := s.led.await(ctx, timeout, 50*time.Millisecond, "a new leader", func(ivs []interval) bool {
		for _, v := range ivs {
			if v.who != not && v.start.After(after) {
				found = v
				return true
			}
		}
		return false
	})
	return found, err
}

// ended returns the last interval of who once it has ended.
func (s *slots) ended(ctx context.Context, who string, timeout time.Duration) (interval, error) {
	var found interval
	err := s.led.await(ctx, timeout, 50*time.Millisecond, who+"'s work to return", func(ivs []interval) bool {
		for i := len(ivs) - 1; i >= 0; i-- {
			if ivs[i].who == who {
				found = ivs[i]
				return !ivs[i].open
			}
		}
		return false
	})
	if err == nil && found.who == "" {
		err = errors.New("no work recorded for " + who)
	}
	return found, err
}
