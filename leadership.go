// Package leadership elects one leader among replicas that share a Lock (a
// Kubernetes Lease, through package kubelease) and runs the leader's work
// under a term that is cancelled by a timer before any other replica could
// take the lock.
//
// The promise: no two replicas act as leader at the same moment, as long as
// their clock rates differ by less than Config.MaxClockDrift. The leader
// counts its validity from the moment it sent its last successful write; a
// candidate counts the holder's lease from the moment it observed the record
// change; every write is a compare-and-swap; the release is written only
// after the work has returned; and each term carries a fencing token that
// strictly increases. See DESIGN.md for the argument.
package leadership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	"github.com/leadership-dev/leadership/internal/bootclock"
)

// LeadFunc is the leader's work. It runs while this replica leads and must
// return promptly once ctx is done: ctx is cancelled when the term's validity
// runs out, when the lock is taken, deleted or resigned, and when Run's
// context is done. The lock is released only after LeadFunc has returned.
type LeadFunc func(ctx context.Context, t Term) error

// Leader is the holder of a lock as this elector last observed it.
type Leader struct {
	// Identity of the holder; empty when the lock is free or unknown.
	Identity string
	// Token is the holder's fencing token: this replica's own term token
	// when Self, else what the holder published (0 if it has not yet).
	Token uint64
	// Self is true while this elector leads.
	Self bool
}

// ErrAlreadyRunning is returned by Run on an Elector that is already running.
var ErrAlreadyRunning = errors.New("leadership: Run called twice on one Elector")

// Elector campaigns for one lock on behalf of one replica.
type Elector struct {
	cfg      Config
	lock     Lock
	log      *slog.Logger
	clock    clock.WithTicker
	boot     func() time.Duration
	instance string
	// suspendCheck is how often a leader compares its validity with the boot
	// clock, which is what bounds acting on a term after a suspend.
	suspendCheck time.Duration

	running atomic.Bool
	// notify wakes the Run loop when the observed state changed.
	notify    chan struct{}
	resign    chan struct{}
	proclaims chan proclaimReq

	mu         sync.Mutex
	obs        observation
	writeEpoch uint64 // incremented by each successful write of ours
	leading    *leaderState
	stopping   time.Time // when a term ended whose lead has not returned
	leader     Leader
	subs       map[chan Leader]struct{}
	lastToken  uint64
}

// observation is the lock as last seen, and when it was first seen in that
// version: a candidate's countdown runs from that moment, on its own clock.
type observation struct {
	known  bool
	exists bool
	rec    Record
	// version of the record, or of its deletion (0: unknown).
	version uint64
	at      time.Time
	// For a lock seen deleted: until when the last holder seen may still
	// act, and who it was.
	heldUntil time.Time
	prevOwn   bool
}

type leaderState struct {
	term      Term
	last      Record // our last successful write
	lastRenew time.Time
	// done is closed once lead has returned and the release is written.
	done chan struct{}
}

// New returns an Elector for lock with cfg, or the *ConfigError of the first
// invalid field.
func New(lock Lock, cfg Config) (*Elector, error) {
	return newElector(lock, cfg, clock.RealClock{}, bootclock.Now)
}

func newElector(lock Lock, cfg Config, clk clock.WithTicker, boot func() time.Duration) (*Elector, error) {
	if lock == nil {
		return nil, &ConfigError{Field: "Lock", Value: nil, Rule: "required"}
	}
	cfg, err := cfg.validated()
	if err != nil {
		return nil, err
	}
	inst := DefaultIdentity()
	if i := len(inst) - 8; i > 0 {
		inst = inst[i:] // just the random part
	}
	return &Elector{
		cfg:          cfg,
		lock:         lock,
		log:          cfg.Logger.With("lock", lock.String(), "identity", cfg.Identity),
		clock:        clk,
		boot:         boot,
		instance:     inst,
		suspendCheck: 250 * time.Millisecond,
		notify:       make(chan struct{}, 1),
		resign:       make(chan struct{}, 1),
		proclaims:    make(chan proclaimReq),
		subs:         map[chan Leader]struct{}{},
	}, nil
}

// Config returns the configuration in force, defaults filled in.
func (e *Elector) Config() Config { return e.cfg }

// Run campaigns for the lock until ctx is done. Each time it wins, it calls
// lead with a new Term; when lead returns or the term ends it steps down
// (releasing the lock once lead has returned, unless the term was lost) and
// campaigns again, in the same process. Run returns after ctx is done and
// any running lead has returned and the lock has been released. It returns
// nil then, or ErrAlreadyRunning.
func (e *Elector) Run(ctx context.Context, lead LeadFunc) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer e.running.Store(false)
	obsCtx, stopObs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { e.observeLoop(obsCtx) })
	defer func() {
		stopObs()
		wg.Wait()
	}()
	for {
		t, rec, err := e.campaign(ctx)
		if err != nil {
			return nil // ctx is done
		}
		voluntary := e.leadTerm(ctx, t, rec, lead)
		if ctx.Err() != nil {
			return nil
		}
		if voluntary {
			// Give the others the first chance at the lock just released.
			if !e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2)) {
				return nil
			}
		}
	}
}

// Leader returns the holder as last observed.
func (e *Elector) Leader() Leader {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Observe returns a channel that receives the holder each time it changes,
// starting with the current one. A slow reader sees only the latest holder.
// The channel is closed when ctx is done.
func (e *Elector) Observe(ctx context.Context) <-chan Leader {
	ch := make(chan Leader, 1)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	ch <- e.leader
	e.mu.Unlock()
	context.AfterFunc(ctx, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.subs, ch)
		close(ch)
	})
	return ch
}

// Resign ends the current term, if any: lead's context is cancelled, and
// Resign returns once lead has returned and the lock has been released (or
// ctx is done). The elector then campaigns again after RetryPeriod, giving
// the other replicas the first chance.
func (e *Elector) Resign(ctx context.Context) error {
	e.mu.Lock()
	ls := e.leading
	e.mu.Unlock()
	if ls == nil {
		return nil
	}
	select {
	case e.resign <- struct{}{}:
	default:
	}
	select {
	case <-ls.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Healthy returns nil unless the elector is wedged: Run is not running, a
// leader's renewals are overdue beyond the lease duration, or lead has not
// returned long after its term ended. Wire it to a liveness probe.
func (e *Elector) Healthy() error {
	if !e.running.Load() {
		return errors.New("leadership: elector is not running")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	if !e.stopping.IsZero() {
		if d := now.Sub(e.stopping); d > e.cfg.LeaseDuration {
			return fmt.Errorf("leadership: lead has not returned %v after its term ended; it must return when its context is cancelled", d.Round(time.Millisecond))
		}
	}
	if ls := e.leading; ls != nil {
		if d := now.Sub(ls.lastRenew); d > e.cfg.LeaseDuration {
			return fmt.Errorf("leadership: leader's last successful renewal was %v ago, beyond the lease duration %v: renewals are overdue", d.Round(time.Millisecond), e.cfg.LeaseDuration)
		}
	}
	return nil
}

// sleep waits d on the elector's clock; false if ctx ended first.
func (e *Elector) sleep(ctx context.Context, d time.Duration) bool {
	t := e.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

func (e *Elector) wake() {
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *Elector) snapshot() observation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.obs
}

// see records a read or watched record. Older versions than the one known
// are ignored; re-reading the same version keeps the time it was first seen,
// so a relist never restarts a countdown.
func (e *Elector) see(r Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.obs
	if o.known && r.Version != 0 && r.Version <= o.version {
		return
	}
	e.obs = observation{known: true, exists: true, rec: r, version: r.Version, at: e.clock.Now()}
	e.changed()
}

// seeMissing records that the lock does not exist. version is the deletion's
// revision, or 0 when unknown (a read that found nothing); such a read counts
// only if no write of ours succeeded since it was sent (epoch), since it may
// otherwise predate our own create.
func (e *Elector) seeMissing(version, epoch uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.obs
	if version == 0 && epoch != e.writeEpoch {
		return
	}
	if o.known && version != 0 && version <= o.version {
		return
	}
	if o.known && !o.exists {
		return
	}
	now := e.clock.Now()
	n := observation{known: true, version: max(version, o.version), at: now}
	if o.exists && o.rec.HolderIdentity != "" {
		// Whoever held it may still be acting on its term: a deletion does
		// not end that, so a candidate waits it out as if the record stood.
		n.heldUntil = o.at.Add(e.leaseOf(o.rec))
		n.prevOwn = e.isOwn(o.rec)
	}
	e.obs = n
	e.changed()
}

// changed notifies the Run loop and observers. Called with mu held.
func (e *Elector) changed() {
	e.wake()
	l := Leader{}
	if e.leading != nil {
		l = Leader{Identity: e.cfg.Identity, Token: e.leading.term.Token, Self: true}
	} else if e.obs.exists {
		l = Leader{Identity: e.obs.rec.HolderIdentity, Token: e.obs.rec.Token}
	}
	if l == e.leader {
		return
	}
	e.leader = l
	if h := e.cfg.Hooks.OnLeader; h != nil {
		h(l)
	}
	for ch := range e.subs {
		select {
		case <-ch: // drop the unread older value: latest wins
		default:
		}
		ch <- l
	}
}

func (e *Elector) isOwn(r Record) bool {
	return r.HolderIdentity == e.cfg.Identity && r.Instance == e.instance
}

// leaseOf is how long a record's holder may act: its own lease duration, or
// ours when the record's is missing or nonsensical (a hand edit), which is
// the conservative reading.
func (e *Elector) leaseOf(r Record) time.Duration {
	if r.LeaseDuration > 0 {
		return r.LeaseDuration
	}
	return e.cfg.LeaseDuration
}

// observeLoop keeps e.obs current: read, then watch from the version read;
// when the watch ends, read again. Where watching is forbidden it polls.
func (e *Elector) observeLoop(ctx context.Context) {
	polling := false
	var errs errLogger
	for ctx.Err() == nil {
		version, err := e.refresh(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errs.log(e.log, e.clock.Now(), "cannot read the lock; retrying", err)
			}
			e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
			continue
		}
		errs.ok(e.log, "reading the lock works again")
		if polling {
			e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
			continue
		}
		started := e.clock.Now()
		ch, err := e.lock.Watch(ctx, version)
		if errors.Is(err, ErrForbidden) {
			polling = true
			e.log.Warn("watching the lock is forbidden; polling it instead, which is slower to notice a release and costs one read per retry period. Grant the verb \"watch\" on the lock to fix this.",
				"error", err, "every", e.cfg.RetryPeriod)
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				errs.log(e.log, e.clock.Now(), "cannot watch the lock; retrying", err)
			}
			e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
			continue
		}
		for ev := range ch {
			if ev.Type == Deleted {
				e.mu.Lock()
				epoch := e.writeEpoch
				e.mu.Unlock()
				e.seeMissing(ev.Record.Version, epoch)
			} else {
				e.see(ev.Record)
			}
		}
		// A watch that ends at once, again and again, must not spin.
		if e.clock.Since(started) < e.cfg.RetryPeriod {
			e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
		}
	}
}

// errLogger logs a repeating error once, then again only when it changes or
// a minute has passed, so an outage does not flood the log.
type errLogger struct {
	last   string
	at     time.Time
	failed bool
}

func (l *errLogger) log(log *slog.Logger, now time.Time, msg string, err error) {
	s := err.Error()
	if s != l.last || now.Sub(l.at) >= time.Minute {
		log.Warn(msg, "error", err)
		l.last, l.at = s, now
	}
	l.failed = true
}

func (l *errLogger) ok(log *slog.Logger, msg string) {
	if l.failed {
		log.Info(msg)
	}
	*l = errLogger{}
}
