package leadership

import (
	"context"
	"errors"
	"maps"
	"time"
)

type action int

const (
	actWait action = iota
	actCreate
	actTake
)

// decide says what a candidate does with the lock it observed: wait (at most
// the returned duration, or until the lock changes), create it, or take it
// with a compare-and-swap on the observed version. proven, when not zero,
// is when the holder, a term of this replica in this pod, may be taken
// over because every process of it is proven gone (RestartProof).
func (e *Elector) decide(o observation, now time.Time, mine bool, proven time.Time) (action, time.Duration) {
	if !o.known {
		return actWait, 0
	}
	if !o.exists {
		if now.Before(o.heldUntil) {
			return actWait, o.heldUntil.Sub(now)
		}
		return actCreate, 0
	}
	r := o.rec
	switch {
	case r.HolderIdentity == "" && r.Released != 0:
		// Released by its holder after its work returned, so waiting is
		// pointless, unless the release was a handover to someone else,
		// who gets a head start.
		if p := r.PreferredHolder; p != "" && p != e.cfg.Identity && p != AnyOtherHolder {
			if g := o.at.Add(e.cfg.RenewInterval); now.Before(g) {
				return actWait, g.Sub(now)
			}
		}
		return actTake, 0
	case mine && r.HolderIdentity != "":
		// Exactly a write of ours, e.g. one applied after we gave up on
		// it: nobody else can have acted on it.
		return actTake, 0
	case !proven.IsZero():
		// The holder's processes are all gone (the kernel freed the lock
		// they held): its lease protects nobody. Holders seen before it
		// are still waited out, and a delay asked for is kept.
		if at := later(proven, o.priorUntil); at.Before(o.heldUntil) {
			if now.Before(at) {
				return actWait, at.Sub(now)
			}
			return actTake, 0
		}
	}
	// Anything else, an empty holder nobody marked as released included,
	// is waited out: the deadline chain holds the longest lease any
	// holder seen may still be acting on.
	if now.Before(o.heldUntil) {
		return actWait, o.heldUntil.Sub(now)
	}
	return actTake, 0
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// provenAt is when the observed holder may be taken over as proven dead,
// zero if it may not, and how soon to look again if the proof may still
// come (see restarter.provenAt).
func (e *Elector) provenAt(o observation) (time.Time, time.Duration) {
	if e.restart == nil {
		return time.Time{}, 0
	}
	at, busy := e.restart.provenAt(o, e.cfg.Identity, e.instance, e.clock.Now(), e.boot())
	if busy {
		return at, restartPoll
	}
	return at, 0
}

// createdByUs reports whether r is the record of our own last create, held
// before leading, or that record with only its metadata changed (a label, a
// handover probe).
func (e *Elector) createdByUs(r Record) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.created.Version != 0 && r.Version >= e.created.Version && r.sameContent(e.created)
}

// freeSince is when the observed lock became free to take.
func (e *Elector) freeSince(o observation, mine bool, proven time.Time) time.Time {
	if (o.exists && o.rec.HolderIdentity == "" && o.rec.Released != 0) || mine || o.heldUntil.Before(o.at) {
		return o.at
	}
	if !proven.IsZero() && proven.Before(o.heldUntil) {
		return later(o.at, later(proven, o.priorUntil))
	}
	return o.heldUntil
}

// errHolding says that a create succeeded and the lock is held, not yet
// led, for a lease duration.
var errHolding = errors.New("leadership: created the lock; holding it for a lease duration before leading")

// campaign returns once this elector holds the lock, with the new term and
// the record it wrote, or an error once ctx is done.
func (e *Elector) campaign(ctx context.Context) (Term, Record, error) {
	var errs errLogger
	var clashWarned uint64
	for {
		if err := ctx.Err(); err != nil {
			return Term{}, Record{}, err
		}
		o := e.snapshot()
		mine := o.exists && e.isMine(o.rec)
		proven, poll := e.provenAt(o)
		if o.exists && o.rec.HolderIdentity == e.cfg.Identity && !mine && proven.IsZero() && !e.restart.samePod(o.rec) && clashWarned != o.version && !e.createdByUs(o.rec) {
			clashWarned = o.version
			e.log.Error("the lock names this replica's identity but this process did not write it (another process with the same identity, or a hand edit); identities must be unique (use leadership.DefaultIdentity). Waiting for that holder's lease to expire.",
				"writerInstance", o.rec.Instance, "ownInstance", e.instance)
		}
		act, d := e.decide(o, e.clock.Now(), mine, proven)
		if act == actWait {
			if poll > 0 && (d <= 0 || poll < d) {
				d = poll
			}
			e.waitChange(ctx, d)
			continue
		}
		t, rec, err := e.acquire(ctx, o, act)
		if errors.Is(err, errHolding) {
			e.log.Info("created the lock; holding it for a lease duration before leading, because a deletion in flight could hide another holder's term", "for", e.cfg.LeaseDuration)
			continue
		}
		if h := e.cfg.Hooks.OnAttempt; h != nil {
			e.hook(func() { h(err) })
		}
		if err == nil {
			if h := e.cfg.Hooks.OnAcquire; h != nil {
				prev := ""
				if o.exists {
					prev = o.rec.HolderIdentity
				}
				waited := e.clock.Since(e.freeSince(o, mine, proven))
				e.hook(func() { h(t, prev, waited) })
			}
			return t, rec, nil
		}
		if ctx.Err() == nil {
			e.onAcquireFailed(ctx, err, &errs)
		}
	}
}

// onAcquireFailed backs off after a failed acquiring write. A lost race
// (ErrConflict) or a stale view (ErrNotFound) re-reads the lock and decides
// again at once if the record really changed; if the read changes nothing
// the campaign would try again at once, so it backs off first: a store that
// keeps refusing must not be hammered.
func (e *Elector) onAcquireFailed(ctx context.Context, err error, errs *errLogger) {
	if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
		errs.log(e.log, e.clock.Now(), "cannot acquire the lock; retrying", err)
		e.sleep(ctx, jitter(e.cfg.RetryPeriod))
		return
	}
	e.log.Debug("lost the race for the lock; re-reading it", "error", err)
	if _, err := e.refresh(ctx); err != nil && ctx.Err() == nil {
		errs.log(e.log, e.clock.Now(), "cannot read the lock; retrying", err)
		e.sleep(ctx, jitter(e.cfg.RetryPeriod))
		return
	}
	o := e.snapshot()
	proven, _ := e.provenAt(o)
	if act, _ := e.decide(o, e.clock.Now(), o.exists && e.isMine(o.rec), proven); act != actWait {
		e.sleep(ctx, jitter(e.cfg.RetryPeriod))
	}
}

// waitChange waits until the observation may have changed, ctx is done, or
// d has passed (d ≤ 0: no time limit).
func (e *Elector) waitChange(ctx context.Context, d time.Duration) {
	var expired <-chan time.Time
	if d > 0 {
		t := e.clock.NewTimer(d)
		defer t.Stop()
		expired = t.C()
	}
	select {
	case <-ctx.Done():
	case <-e.notify:
	case <-expired:
	}
}

// refresh reads the lock into the observation and returns the version read
// (0 if the lock does not exist).
func (e *Elector) refresh(ctx context.Context) (uint64, error) {
	epoch := e.epoch()
	r, err := e.lock.Get(ctx)
	switch {
	case err == nil:
		e.seeRead(r, epoch)
	case errors.Is(err, ErrNotFound):
		e.seeMissing(0, epoch)
	default:
		return 0, err
	}
	return r.Version, nil
}

// acquire writes this elector as holder: by compare-and-swap on the record
// observed, or, if there is none, by a create that is only held (errHolding).
// The validity of the new term counts from the moment the write was sent.
func (e *Elector) acquire(ctx context.Context, o observation, act action) (Term, Record, error) {
	now, bootAt := e.clock.Now(), e.boot()
	rec := Record{
		HolderIdentity: e.cfg.Identity,
		LeaseDuration:  e.cfg.LeaseDuration,
		AcquireTime:    wallTime(now),
		RenewTime:      wallTime(now),
		Instance:       e.instance,
	}
	// The lock file is taken before the write that may make us holder,
	// and only a term that holds it publishes its proof.
	rec.PodUID, rec.Proof = e.restart.beginTerm(now, bootAt)
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RenewInterval)
	defer cancel()
	if act == actCreate {
		return Term{}, Record{}, e.createHeld(rctx, rec)
	}
	res, err := e.takeOver(rctx, o.rec, rec)
	if err != nil {
		return Term{}, Record{}, err
	}
	return e.newTerm(res, now, bootAt), res, nil
}

// createHeld creates the lock with this elector as holder, and holds it.
//
// A create is not a compare-and-swap on a version: "absent" can be absent
// again after someone else created and an operator deleted the lock while
// our request was in flight, so our create may land over a term we never
// saw. The lock is therefore held, not led, for a lease duration: nobody
// takes it, and we take it ourselves (a compare-and-swap) once that holder,
// and any holder of a deletion we only read about, can no longer act. It is
// never counted as our own write, even if it lands after we gave up on it.
// It carries no acquire time: it begins no term, so observers must not read
// a fencing token from it (TermToken). It returns errHolding on success.
func (e *Elector) createHeld(ctx context.Context, rec Record) error {
	rec.AcquireTime = time.Time{}
	res, err := e.lock.Create(ctx, rec)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.created = res
	e.mu.Unlock()
	e.seeEvent(res)
	return errHolding
}

// takeOver writes rec over prev, the record observed, by compare-and-swap on
// its version.
func (e *Elector) takeOver(ctx context.Context, prev, rec Record) (Record, error) {
	rec.Version = prev.Version
	rec.LeaseTransitions = prev.LeaseTransitions
	if prev.HolderIdentity != e.cfg.Identity && rec.LeaseTransitions < 1<<31-1 {
		rec.LeaseTransitions++
	}
	// A handover request is void once anyone acquires: fulfilled if it is
	// us, expired otherwise (the named replica did not take the lock in its
	// head start). Keeping it would make leadership flap when the named
	// replica is not running.
	rec.Values = prev.Values
	e.sent(rec)
	res, err := e.lock.Update(ctx, rec)
	if err != nil {
		return Record{}, err
	}
	e.mu.Lock()
	if res.Version <= e.lastToken {
		// The backend broke its contract, or its store was restored from
		// a backup; fencing downstream would refuse this term. Say so
		// rather than hide it.
		e.log.Error("the lock's backend returned a version that did not increase; fencing tokens are not monotonic (was the store restored from a backup?)", "version", res.Version, "previousToken", e.lastToken)
	}
	e.lastToken = max(e.lastToken, res.Version)
	e.mu.Unlock()
	e.confirmed(res)
	return res, nil
}

// newTerm begins the term that the acquiring write res, sent at now (bootAt
// on the boot clock), won: its validity counts from the send.
func (e *Elector) newTerm(res Record, now time.Time, bootAt time.Duration) Term {
	e.restart.acquired(res.Version, bootAt+e.cfg.termValidity())
	v := &validity{now: e.clock.Now, boot: e.boot}
	v.extend(now, bootAt, e.cfg.termValidity())
	return Term{Identity: e.cfg.Identity, Token: res.Version, AcquireTime: now, Values: maps.Clone(res.Values), v: v, restartLock: e.restart.file()}
}
