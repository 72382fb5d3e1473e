package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// fleet is the candidates of one Lease, which is also their resource in
// the fenced store.
type fleet struct {
	r      *Runner
	name   string // Lease name and ledger fleet
	label  string // column title in the table
	logDir string
	// denyWatch starts candidates that may not watch the Lease (they poll).
	denyWatch bool
	// rate, if set, gives the clock rate of the seq-th candidate; a
	// replacement keeps the rate of the candidate it replaces, so that the
	// fleet's mix of clocks stays the same.
	rate func(seq int) float64
	// inPlace gives every candidate a pod (a name, a directory and a UID)
	// that a restart in place keeps: leadership's candidates run with the
	// restart proof.
	inPlace bool

	mu      sync.Mutex
	members []*candidate
	gone    []*candidate
	seq     int
}

var identityPrefix = map[string]string{ledger.ImplLeadership: "lp", ledger.ImplClientGo: "cg"}

// spawn starts a new candidate of impl with a fresh identity (as a
// replaced pod gets a new name) and its own proxy.
func (f *fleet) spawn(impl string) (*candidate, error) { return f.spawnAt(impl, 0) }

// spawnAt is spawn with the clock rate given (0: the fleet's choice).
func (f *fleet) spawnAt(impl string, rate float64) (*candidate, error) {
	return f.spawnIn(impl, rate, nil)
}

// pod is what a container restart in place keeps: the pod's name (the
// identity of a leadership candidate), its emptyDir and its UID.
type pod struct {
	name, dir, uid string
}

// spawnIn is spawnAt in pod p; nil: a new pod if the fleet restarts in
// place, else none.
func (f *fleet) spawnIn(impl string, rate float64, p *pod) (*candidate, error) {
	f.mu.Lock()
	f.seq++
	seq := f.seq
	id := fmt.Sprintf("%s-%d", identityPrefix[impl], seq)
	f.mu.Unlock()
	if f.inPlace && p == nil {
		p = &pod{name: id, dir: filepath.Join(f.logDir, id+".pod"), uid: randomSuffix() + randomSuffix()}
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
	}
	if p != nil {
		// leadership's restart proof needs the identity to stay; client-go
		// would take its own identity's record back at once, proof or
		// not, so its candidates name themselves as kube-controller-manager
		// does: the pod name and a suffix of the process's own.
		id = p.name
		if impl != ledger.ImplLeadership {
			id = fmt.Sprintf("%s_%d", p.name, seq)
		}
	}
	px, err := f.r.cp.NewProxy()
	if err != nil {
		return nil, err
	}
	file := fmt.Sprintf("%s.%d", id, seq)
	kubeconfig := filepath.Join(f.logDir, file+".kubeconfig")
	if err := px.WriteKubeconfig(kubeconfig); err != nil {
		_ = px.Close()
		return nil, err
	}
	o := f.r.opts
	c := &candidate{impl: impl, identity: id, pod: p, proxy: px, logPath: filepath.Join(f.logDir, file+".log")}
	c.gone = func(at ledger.Mono) {
		// Recorded by the runner: the process cannot report its death.
		_ = f.r.ledger.AddEvent(ledger.Event{Fleet: f.name, Impl: impl, Identity: id, PID: c.pid(), Kind: ledger.EventGone, At: at})
	}
	args := []string{
		"-impl", impl,
		"-kubeconfig", kubeconfig,
		"-lease", f.name,
		"-identity", id,
		"-lease-duration", o.LeaseDuration.String(),
		"-ledger", f.r.ledger.Addr(),
		"-tick", o.Tick.String(),
		"-margin", o.Margin.String(),
	}
	if f.denyWatch {
		args = append(args, "-deny-watch")
	}
	if p != nil && impl == ledger.ImplLeadership {
		// No crash counts as quick: the scenario kills leaders that have
		// just settled, and tests the proof, not the crash-loop guard.
		args = append(args, "-restart-proof-dir", p.dir, "-pod-uid", p.uid, "-restart-min-term", "-1ns")
	}
	if f.rate != nil && impl == ledger.ImplLeadership {
		c.rate = rate
		if c.rate == 0 {
			c.rate = f.rate(seq)
		}
		args = append(args, "-clock-rate", strconv.FormatFloat(c.rate, 'f', -1, 64))
	}
	err = c.start(f.r.bin.Path, args)
	if err != nil {
		_ = px.Close()
		return nil, err
	}
	f.mu.Lock()
	f.members = append(f.members, c)
	f.mu.Unlock()
	return c, nil
}

// freeze stops c's whole process (SIGSTOP) and records the freeze, so that
// the checker tells its overlaps apart.
func (f *fleet) freeze(c *candidate) error {
	at := ledger.Now()
	f.r.ledger.AddFreeze(ledger.Freeze{Fleet: f.name, Identity: c.identity, PID: c.pid(), From: at})
	return c.signal(syscall.SIGSTOP)
}

// thaw lets c continue (SIGCONT) and records the end of its freeze.
func (f *fleet) thaw(c *candidate) error {
	err := c.signal(syscall.SIGCONT)
	f.r.ledger.Thaw(f.name, c.pid(), ledger.Now())
	return err
}

// all returns the current members.
func (f *fleet) all() []*candidate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fleet) member(id string, pid int) *candidate {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.members {
		if c.identity == id && c.pid() == pid {
			return c
		}
	}
	return nil
}

// remove takes an exited candidate out of the fleet.
func (f *fleet) remove(c *candidate) {
	f.mu.Lock()
	f.members = slices.DeleteFunc(f.members, func(m *candidate) bool { return m == c })
	f.gone = append(f.gone, c)
	f.mu.Unlock()
	_ = c.proxy.Close()
}

// replace waits for c to exit, removes it and starts a candidate of the
// same implementation in its place, returning once the new one follows.
func (f *fleet) replace(ctx context.Context, c *candidate) error {
	wctx, cancel := context.WithTimeout(ctx, f.r.opts.WaitTimeout)
	defer cancel()
	if err := c.waitExit(wctx); err != nil {
		return f.fail(err, c)
	}
	f.remove(c)
	n, err := f.spawnAt(c.impl, c.rate)
	if err != nil {
		return err
	}
	return f.awaitEvent(ctx, n, ledger.EventReady, 0)
}

// stopAll stops every member, gracefully if they let it.
func (f *fleet) stopAll() {
	var wg sync.WaitGroup
	for _, c := range f.all() {
		wg.Go(func() { c.stop(f.r.opts.WaitTimeout / 2) })
	}
	wg.Wait()
	for _, c := range f.all() {
		f.remove(c)
	}
}

// fail adds the state of the fleet and the tails of the logs of the
// candidates concerned to err.
func (f *fleet) fail(err error, cs ...*candidate) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", f.label, err)
	h := f.r.ledger.History(f.name)
	if rec, ok := lastAccepted(h.Records); ok {
		fmt.Fprintf(&b, "\nlast accepted write: %s pid %d term %d token %d, %v ago",
			rec.Identity, rec.PID, rec.Term, rec.Token, ledger.Now().Sub(rec.At).Round(time.Millisecond))
	}
	if len(cs) == 0 {
		cs = f.all()
	}
	for _, c := range cs {
		fmt.Fprintf(&b, "\n--- %s, log %s (tail):\n%s", c, c.logPath, c.logTail(15))
	}
	return fmt.Errorf("%s", b.String())
}

func lastAccepted(rs []ledger.Record) (ledger.Record, bool) {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Accepted {
			return rs[i], true
		}
	}
	return ledger.Record{}, false
}

func termOf(r ledger.Record) checker.TermKey {
	return checker.TermKey{Identity: r.Identity, PID: r.PID, Term: r.Term}
}

// freshness is how recent a leader's last accepted write must be for it to
// count as leading now: a few units of work.
const freshness = 300 * time.Millisecond

// stableLeader waits until a live member is leading (its work was accepted
// within freshness) and returns it with its term. A fleet whose new leader
// has a token below one the store already accepted (client-go's
// leaseTransitions restart at 0 when the Lease is re-created) does work
// that the store refuses; its leader is then the member whose refused work
// is fresh, so that the scenario can go on.
func (f *fleet) stableLeader(ctx context.Context) (*candidate, checker.TermKey, error) {
	wctx, cancel := context.WithTimeout(ctx, f.r.opts.WaitTimeout)
	defer cancel()
	var after ledger.Mono
	for {
		var rec ledger.Record
		err := f.r.ledger.Wait(wctx, f.name, func(v ledger.View) bool {
			now := ledger.Now()
			if r, ok := v.LastAccepted(); ok && r.At > after && now.Sub(r.At) <= freshness {
				rec = r
				return true
			}
			rs := v.Records()
			if len(rs) == 0 {
				return false
			}
			if r := rs[len(rs)-1]; r.At > after && now.Sub(r.At) <= freshness {
				if a, ok := v.LastAccepted(); !ok || now.Sub(a.At) > 2*freshness {
					rec = r
					return true
				}
			}
			return false
		})
		if err != nil {
			return nil, checker.TermKey{}, f.fail(fmt.Errorf("waiting for a leader: %w", err))
		}
		if c := f.member(rec.Identity, rec.PID); c != nil {
			return c, termOf(rec), nil
		}
		after = rec.At // a write of a process no longer in the fleet
	}
}

// wroteWithin waits up to within for an accepted write of term decided
// after at, and reports whether one came.
func (f *fleet) wroteWithin(ctx context.Context, term checker.TermKey, at ledger.Mono, within time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := f.r.ledger.Wait(wctx, f.name, func(v ledger.View) bool {
		rs := v.Records()
		for i := len(rs) - 1; i >= 0 && rs[i].At > at; i-- {
			if rs[i].Accepted && termOf(rs[i]) == term {
				return true
			}
		}
		return false
	})
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	return false, nil
}

// takeover waits up to within for work of a term other than old, begun
// after at, to reach the store. It reports whether that happened. Refused
// work counts: the successor works, whatever the store makes of its token
// (client-go's may be lower than one accepted before, see stableLeader).
func (f *fleet) takeover(ctx context.Context, at ledger.Mono, old checker.TermKey, within time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := f.r.ledger.Wait(wctx, f.name, func(v ledger.View) bool {
		rs := v.Records()
		for i := len(rs) - 1; i >= 0 && rs[i].At > at; i-- {
			if rs[i].Begin > at && termOf(rs[i]) != old {
				return true
			}
		}
		return false
	})
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	return false, nil
}

// awaitTakeover is takeover that must happen within WaitTimeout.
func (f *fleet) awaitTakeover(ctx context.Context, at ledger.Mono, old checker.TermKey) error {
	ok, err := f.takeover(ctx, at, old, f.r.opts.WaitTimeout)
	if err != nil {
		return err
	}
	if !ok {
		return f.fail(fmt.Errorf("no new leader %v after the fault on %v", f.r.opts.WaitTimeout, old))
	}
	return nil
}

// awaitEvent waits for an event of kind from c (of term, if not 0).
func (f *fleet) awaitEvent(ctx context.Context, c *candidate, kind string, term int) error {
	wctx, cancel := context.WithTimeout(ctx, f.r.opts.WaitTimeout)
	defer cancel()
	pid := c.pid()
	err := f.r.ledger.Wait(wctx, f.name, func(v ledger.View) bool {
		es := v.Events()
		for i := len(es) - 1; i >= 0; i-- {
			e := es[i]
			if e.Identity == c.identity && e.PID == pid && e.Kind == kind && (term == 0 || e.Term == term) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return f.fail(fmt.Errorf("waiting for %q from %s: %w", kind, c, err), c)
	}
	return nil
}
