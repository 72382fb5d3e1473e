package leadership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leadership-dev/leadership/internal/bootclock"
	"github.com/leadership-dev/leadership/internal/podlock"
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
	// when Self, else the holder's (Record.TermToken; 0 for a client-go
	// holder).
	Token uint64
	// Self is true while this elector leads.
	Self bool
}

// Elector campaigns for one lock on behalf of one replica.
type Elector struct {
	cfg      Config
	lock     Lock
	log      *slog.Logger
	clock    electorClock
	boot     func() time.Duration
	instance string
	// newBootTimer makes the timer that ends a term on the boot clock, which
	// keeps counting through a suspend (see bootclock.Timer).
	newBootTimer func() (bootTimer, error)
	// watchRetry is how often an elector that polls because watching was
	// forbidden tries to watch again.
	watchRetry time.Duration
	// restart is the fast takeover after a restart in place; nil when
	// Config.Restart is off. Used only from Run's goroutine.
	restart *restarter

	running atomic.Bool
	// notify wakes the Run loop when the observed state changed.
	notify    chan struct{}
	resign    chan struct{}
	proclaims chan proclaimReq

	// mu guards the fields below. Nothing is called under it but channel
	// sends that cannot block: hooks run on the hooks goroutine.
	mu  sync.Mutex
	obs observation
	// obsEpoch counts changes of obs: a read whose answer arrives after obs
	// changed may be older than what obs holds.
	obsEpoch uint64
	// mine holds the content of this process's writes that may still be
	// applied (sent, outcome unknown) and of its last confirmed write. Only
	// a record equal to one of them is this process's own: a hand edit
	// copies the holder and instance, never the exact content.
	mine []Record
	// created is the record of this process's last create, which it holds
	// for a lease duration before leading.
	created   Record
	leading   *leaderState
	stopping  time.Time // when a term ended whose lead has not returned
	leader    Leader
	subs      map[chan Leader]struct{}
	lastToken uint64
	hookq     []func()      // hooks to call, in order, outside mu
	hookWake  chan struct{} // wakes the hooks goroutine
}

// New returns an Elector for lock with cfg, or the *ConfigError of the first
// invalid field.
func New(lock Lock, cfg Config) (*Elector, error) {
	return newElector(lock, cfg, realClock{}, bootclock.Now)
}

func newElector(lock Lock, cfg Config, clk Clock, boot func() time.Duration) (*Elector, error) {
	if lock == nil {
		return nil, &ConfigError{Field: "Lock", Value: nil, Rule: "required"}
	}
	cfg, err := cfg.validated()
	if err != nil {
		return nil, err
	}
	if r := cfg.Restart; r.enabled() {
		if err := podlock.CheckDir(r.Dir); err != nil {
			return nil, &ConfigError{Field: "Restart.Dir", Value: fmt.Sprintf("%q", r.Dir), Rule: "must be an existing directory that survives a container restart and belongs to one pod (an emptyDir volume): " + err.Error()}
		}
	}
	inst := DefaultIdentity()
	if i := len(inst) - 8; i > 0 {
		inst = inst[i:] // just the random part
	}
	log := cfg.Logger.With("lock", lock.String(), "identity", cfg.Identity)
	return &Elector{
		cfg:          cfg,
		lock:         lock,
		log:          log,
		restart:      newRestarter(cfg.Restart, lock.String(), log),
		clock:        electorClock{clk},
		boot:         boot,
		instance:     inst,
		newBootTimer: func() (bootTimer, error) { return bootclock.NewTimer() },
		watchRetry:   min(max(30*cfg.RetryPeriod, 5*time.Second), 5*time.Minute),
		notify:       make(chan struct{}, 1),
		resign:       make(chan struct{}, 1),
		proclaims:    make(chan proclaimReq),
		subs:         map[chan Leader]struct{}{},
		hookWake:     make(chan struct{}, 1),
	}, nil
}

// Config returns the configuration in force, defaults filled in.
func (e *Elector) Config() Config { return e.cfg }

// Run campaigns for the lock until ctx is done. Each time it wins, it calls
// lead with a new Term; when lead returns or the term ends it steps down
// (releasing the lock once lead has returned, unless someone else wrote the
// lock) and campaigns again, in the same process. An error returned by lead
// ends its term (the cause wraps ErrLeadReturned and the error) and is
// logged; Run goes on campaigning. Run returns after ctx is done, any
// running lead has returned and the lock has been released: nil, or an
// error wrapping ErrNotReleased if that last release failed, or
// ErrAlreadyRunning.
func (e *Elector) Run(ctx context.Context, lead LeadFunc) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer e.running.Store(false)
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { e.observeLoop(ctx) })
	wg.Go(func() { e.hookLoop(bgCtx) })
	defer func() {
		stopBg()
		wg.Wait()
	}()
	defer func() { e.restart.endTerm(e.boot()) }()
	for {
		t, rec, err := e.campaign(ctx)
		if err != nil {
			return nil // ctx is done
		}
		if t.Remaining() <= 0 {
			// The acquiring write was answered after the validity it
			// began had run out: a successor may already be counting
			// from it. No work under it; the record is ours, so the
			// campaign takes it again at once, with a new validity.
			e.log.Warn("the acquiring write was answered too late to lead on it; taking the lock again", "token", t.Token)
			continue
		}
		voluntary, relErr := e.leadTerm(ctx, t, rec, lead)
		// lead has returned (and for `leadership run`, the tree is gone):
		// only now may the lock file be let go.
		e.restart.endTerm(e.boot())
		if ctx.Err() != nil {
			if relErr != nil {
				return fmt.Errorf("%w: %w", ErrNotReleased, relErr)
			}
			return nil
		}
		if voluntary {
			// Give the others the first chance at the lock just released.
			if !e.sleep(ctx, jitter(e.cfg.RetryPeriod)) {
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

// Term returns the current term and true while this elector leads; false
// once the term has ended (even while its lead is still returning).
func (e *Elector) Term() (Term, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ls := e.leading; ls != nil && !ls.ended {
		return ls.term, true
	}
	return Term{}, false
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
