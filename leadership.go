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

// maxAnnouncedFactor bounds how much longer than its own LeaseDuration a
// candidate waits for a holder that announced a longer one. Replicas of one
// lock should share the lease duration; a holder configured more than this
// factor longer than a candidate is protected only by fencing.
const maxAnnouncedFactor = 4

// bootTimer fires when the boot clock reaches a deadline.
type bootTimer interface {
	Set(deadline time.Duration) error
	C() <-chan struct{}
	Stop()
}

// observation is the lock as last seen, when it was first seen with that
// content, and the deadline chain that bounds when anyone may take it.
type observation struct {
	known  bool
	exists bool
	rec    Record
	// version of the record, or of its deletion (0: unknown).
	version uint64
	// at is when this content was first seen, on our clock.
	at time.Time
	// token is the holder's fencing token as first seen with this content
	// (Record.TermToken): a metadata-only write (a label, a handover probe)
	// on the acquiring record moves its version, not the token.
	token uint64
	// holderMax is the longest lease duration the current holder (identity
	// and instance) has announced in the records seen of its term: a hand
	// edit that shortens it does not shorten the wait.
	holderMax time.Duration
	// heldUntil is the latest moment until which any holder seen since the
	// last marked release may still act, counted from when we saw it. No
	// lock is taken before it, except a marked release or our own record.
	heldUntil time.Time
	// priorUntil is heldUntil as it was before the current holder's
	// term (identity and instance) was first seen: what holders other
	// than the current one may still act on. A proven-dead holder is
	// taken over only after it.
	priorUntil time.Time
}

type leaderState struct {
	term Term
	// last is our last successful write, or a record adopted as ours
	// since. Owned by the leader loop.
	last Record
	// lastRenew is when the last renewal succeeded; guarded by mu.
	lastRenew time.Time
	// ended is set, under mu, the moment the term's context is done.
	ended bool
	// ignorePreferred is the requested successor present when the term
	// began: a request older than the term is void.
	ignorePreferred string
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
		clock:        clk,
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

// ErrNotReleased is returned by Run when its final term could not be
// released: successors then take over only after the lease duration.
var ErrNotReleased = errors.New("leadership: the lock was not released on stop")

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
			if !e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2)) {
				return nil
			}
		}
	}
}

// hookLoop calls queued hooks in order, outside the elector's lock, so that
// a hook may call Leader, Healthy or Observe.
func (e *Elector) hookLoop(ctx context.Context) {
	for {
		e.mu.Lock()
		q := e.hookq
		e.hookq = nil
		e.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-e.hookWake:
		case <-ctx.Done():
			e.mu.Lock()
			q := e.hookq
			e.hookq = nil
			e.mu.Unlock()
			for _, f := range q {
				f()
			}
			return
		}
	}
}

// hook schedules f on the hooks goroutine.
func (e *Elector) hook(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queueHook(f)
}

// queueHook schedules f on the hooks goroutine. Called with mu held.
func (e *Elector) queueHook(f func()) {
	e.hookq = append(e.hookq, f)
	select {
	case e.hookWake <- struct{}{}:
	default:
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

func (e *Elector) snapshot() observation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.obs
}

// epoch returns the observation's change count, to be passed to seeRead.
func (e *Elector) epoch() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.obsEpoch
}

// seeEvent records a record from a watch event or from the answer to one of
// our own writes. Those arrive in order, so an older version is stale.
func (e *Elector) seeEvent(r Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o := e.obs; o.known && r.Version <= o.version {
		return
	}
	e.observe(r)
}

// seeRead records the answer of a read sent when the observation's epoch was
// epoch. A read is current when it is served, so a lower version than known
// means the store went back (etcd restored from a backup): it is taken as a
// new record. But if anything was observed while the read was in flight, the
// answer may predate that, and is dropped.
func (e *Elector) seeRead(r Record, epoch uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.obs
	switch {
	case !o.known:
	case o.exists && r.Version == o.version:
		return // nothing new; keep when it was first seen
	case r.Version > o.version:
	case epoch != e.obsEpoch:
		return // overtaken while in flight
	default:
		e.log.Warn("the lock's version went back: was its store restored from a backup? Taking the record read as new; fencing tokens may repeat earlier ones (restore etcd with --bump-revision to avoid that)",
			"version", r.Version, "previousVersion", o.version)
	}
	e.observe(r)
}

// observe makes r the observation and extends the deadline chain. Called
// with mu held.
func (e *Elector) observe(r Record) {
	o, now := e.obs, e.clock.Now()
	n := observation{known: true, exists: true, rec: r, version: r.Version, at: now, heldUntil: o.heldUntil, token: r.TermToken()}
	switch {
	case o.exists && o.rec.sameContent(r):
		// Metadata only (a label, a handover probe): the holder did not
		// renew, so the countdown goes on from when the content was first
		// seen, and the term's token is still the one seen then.
		n.at, n.holderMax, n.priorUntil, n.token = o.at, o.holderMax, o.priorUntil, o.token
	case r.HolderIdentity == "" && r.Released != 0:
		// The holder's own release, written after its work returned:
		// nobody acts on an earlier term any more.
		n.heldUntil = time.Time{}
	default:
		// Never shorter than our own lease duration: the record may have
		// been edited to a shorter one before we saw it, and the holder
		// still counts on what it announced itself. (Which is why every
		// replica of a lock should share the lease duration.)
		lease := max(e.leaseOf(r), e.cfg.LeaseDuration)
		n.priorUntil = o.heldUntil
		if o.exists && r.HolderIdentity != "" && o.rec.HolderIdentity == r.HolderIdentity && o.rec.Instance == r.Instance {
			lease = max(lease, o.holderMax)
			n.priorUntil = o.priorUntil
		}
		// But not beyond maxAnnouncedFactor times our own: a longer value
		// is a typo or an edit (leaseDurationSeconds set to the int32
		// limit), and honouring it would stall the election for decades.
		lease = min(lease, maxAnnouncedFactor*e.cfg.LeaseDuration)
		n.holderMax = lease
		if u := now.Add(lease); u.After(n.heldUntil) {
			n.heldUntil = u
		}
	}
	e.obs = n
	e.pruneMine(r)
	e.changed()
}

// seeMissing records that the lock does not exist: from a watch event with
// the deletion's version, or (version 0) from a read sent at epoch. The
// deadline chain stays as it was: the last holder seen may act until its
// lease runs out. A read that finds nothing says nothing about when the
// record went away or what it held last; that is covered after the create
// (see acquire), which is held a full lease duration before leading.
func (e *Elector) seeMissing(version, epoch uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.obs
	switch {
	case version != 0 && o.known && version <= o.version:
		return // an older event
	case version == 0 && o.known && epoch != e.obsEpoch:
		return // overtaken while in flight
	case o.known && !o.exists && (version == 0 || o.version == 0):
		// Already known missing: a repeated read must not keep pushing the
		// chain forward, or a deleted lock would never be re-created.
		if version > o.version {
			e.obs.version = version
		}
		return
	}
	now := e.clock.Now()
	e.obs = observation{known: true, version: max(version, o.version), at: now, heldUntil: o.heldUntil, priorUntil: o.heldUntil}
	e.changed()
}

// changed notifies the Run loop and observers. Called with mu held.
func (e *Elector) changed() {
	e.obsEpoch++
	e.wake()
	e.publish()
}

// publish updates the holder that Leader and Observe report. Called with mu
// held.
func (e *Elector) publish() {
	l := Leader{}
	if ls := e.leading; ls != nil && !ls.ended {
		l = Leader{Identity: e.cfg.Identity, Token: ls.term.Token, Self: true}
	} else if e.obs.exists {
		l = Leader{Identity: e.obs.rec.HolderIdentity, Token: e.obs.token}
	}
	if l == e.leader {
		return
	}
	e.leader = l
	if h := e.cfg.Hooks.OnLeader; h != nil {
		e.queueHook(func() { h(l) })
	}
	for ch := range e.subs {
		select {
		case <-ch: // drop the unread older value: latest wins
		default:
		}
		ch <- l
	}
}

// sent remembers a write before it is sent: until its outcome is known it
// may be applied, even after we gave up on it.
func (e *Elector) sent(r Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mine = append(e.mine, r)
	if len(e.mine) > 32 {
		e.mine = e.mine[len(e.mine)-32:]
	}
}

// confirmed records a successful write of ours: writes sent before it, on
// older versions, can no longer be applied.
func (e *Elector) confirmed(res Record) {
	e.mu.Lock()
	e.mine = append(e.mine[:0], res)
	e.mu.Unlock()
	e.seeEvent(res)
}

// pruneMine drops remembered writes that the store has moved past: a write
// conditioned on a version older than r's cannot be applied any more.
// Called with mu held.
func (e *Elector) pruneMine(r Record) {
	keep := e.mine[:0]
	for _, m := range e.mine {
		if m.Version >= r.Version || m.sameContent(r) {
			keep = append(keep, m)
		}
	}
	e.mine = keep
}

// isMine reports whether r is exactly one of this process's writes.
func (e *Elector) isMine(r Record) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.isMineLocked(r)
}

func (e *Elector) isMineLocked(r Record) bool {
	for _, m := range e.mine {
		if m.sameContent(r) {
			return true
		}
	}
	return false
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
// when the watch ends, read again. Where watching is forbidden it polls, and
// tries to watch again every watchRetry, in case the permission was granted.
// It also answers liveness probes of this replica (answerPing) as it sees
// them.
func (e *Elector) observeLoop(ctx context.Context) {
	var pollingSince time.Time
	var errs errLogger
	var answered string // the last liveness probe answered (answerPing)
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
		e.answerPing(ctx, &answered)
		if !pollingSince.IsZero() && e.clock.Since(pollingSince) < e.watchRetry {
			e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
			continue
		}
		started := e.clock.Now()
		ch, err := e.lock.Watch(ctx, version)
		if errors.Is(err, ErrForbidden) {
			if pollingSince.IsZero() {
				e.log.Warn("watching the lock is forbidden; polling it instead, which is slower to notice a release and costs one read per retry period. Grant the verb \"watch\" on the lock to fix this.",
					"error", err, "every", e.cfg.RetryPeriod, "retryWatchEvery", e.watchRetry)
			}
			pollingSince = started
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				errs.log(e.log, e.clock.Now(), "cannot watch the lock; retrying", err)
			}
			e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
			continue
		}
		if !pollingSince.IsZero() {
			e.log.Info("watching the lock works again; stopped polling")
			pollingSince = time.Time{}
		}
		for ev := range ch {
			switch ev.Type {
			case Deleted:
				e.seeMissing(ev.Record.Version, e.epoch()) // in order: current
			case Failed:
				switch {
				case ctx.Err() != nil:
				case errors.Is(ev.Err, ErrExpired):
					e.log.Debug("watch expired; re-reading the lock", "error", ev.Err)
				case errors.Is(ev.Err, ErrForbidden):
					pollingSince = e.clock.Now()
					e.log.Warn("watching the lock became forbidden; polling it instead. Grant the verb \"watch\" on the lock to fix this.", "error", ev.Err)
				default:
					errs.log(e.log, e.clock.Now(), "the watch on the lock failed; re-reading it", ev.Err)
				}
			default:
				e.seeEvent(ev.Record)
				e.answerPing(ctx, &answered)
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
