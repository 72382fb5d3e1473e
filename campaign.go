package leadership

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// ErrHandover ends a term whose holder was asked to hand over to another
// replica (Record.PreferredHolder).
var ErrHandover = errors.New("leadership: handover requested")

type action int

const (
	actWait action = iota
	actCreate
	actTake
)

// decide says what a candidate does with the lock it observed: wait (at most
// the returned duration, or until the lock changes), create it, or take it
// with a compare-and-swap on the observed version.
func (e *Elector) decide(o observation, now time.Time) (action, time.Duration) {
	if !o.known {
		return actWait, 0
	}
	if !o.exists {
		if o.prevOwn || !now.Before(o.heldUntil) {
			return actCreate, 0
		}
		return actWait, o.heldUntil.Sub(now)
	}
	r := o.rec
	switch {
	case r.HolderIdentity == "":
		// Released: the holder's work has returned, so waiting is pointless,
		// unless the release was a handover to someone else, who gets a head
		// start.
		if p := r.PreferredHolder; p != "" && p != e.cfg.Identity && p != AnyOtherHolder {
			if g := o.at.Add(e.cfg.RenewInterval); now.Before(g) {
				return actWait, g.Sub(now)
			}
		}
		return actTake, 0
	case e.isOwn(r):
		// A write of ours, e.g. one that was applied after we gave up on
		// it: nobody else can have acted on it.
		return actTake, 0
	}
	if exp := o.at.Add(e.leaseOf(r)); now.Before(exp) {
		return actWait, exp.Sub(now)
	}
	return actTake, 0
}

// freeSince is when the observed lock became free to take.
func (e *Elector) freeSince(o observation) time.Time {
	switch {
	case !o.exists && o.heldUntil.After(o.at) && !o.prevOwn:
		return o.heldUntil
	case !o.exists, o.rec.HolderIdentity == "", e.isOwn(o.rec):
		return o.at
	}
	return o.at.Add(e.leaseOf(o.rec))
}

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
		if o.exists && o.rec.HolderIdentity == e.cfg.Identity && !e.isOwn(o.rec) && clashWarned != o.version {
			clashWarned = o.version
			e.log.Error("the lock names this replica's identity but another process wrote it; identities must be unique (use leadership.DefaultIdentity). Waiting for that holder's lease to expire.",
				"writerInstance", o.rec.Instance, "ownInstance", e.instance)
		}
		act, d := e.decide(o, e.clock.Now())
		if act == actWait {
			e.waitChange(ctx, d)
			continue
		}
		t, rec, err := e.acquire(ctx, o, act)
		if h := e.cfg.Hooks.OnAttempt; h != nil {
			h(err)
		}
		if err == nil {
			if h := e.cfg.Hooks.OnAcquire; h != nil {
				prev := ""
				if o.exists {
					prev = o.rec.HolderIdentity
				}
				h(t, prev, e.clock.Since(e.freeSince(o)))
			}
			return t, rec, nil
		}
		if ctx.Err() != nil {
			continue
		}
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
			// Someone wrote first, or our view was stale: read the latest
			// version and decide again. The countdown restarts only if the
			// record really changed.
			e.log.Debug("lost the race for the lock; re-reading it", "error", err)
			if _, err := e.refresh(ctx); err != nil && ctx.Err() == nil {
				errs.log(e.log, e.clock.Now(), "cannot read the lock; retrying", err)
				e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
			}
			continue
		}
		errs.log(e.log, e.clock.Now(), "cannot acquire the lock; retrying", err)
		e.sleep(ctx, wait.Jitter(e.cfg.RetryPeriod, 0.2))
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
	e.mu.Lock()
	epoch := e.writeEpoch
	e.mu.Unlock()
	r, err := e.lock.Get(ctx)
	switch {
	case err == nil:
		e.see(r)
	case errors.Is(err, ErrNotFound):
		e.seeMissing(0, epoch)
	default:
		return 0, err
	}
	return r.Version, nil
}

// acquire writes this elector as holder. The validity of the new term counts
// from the moment the write was sent.
func (e *Elector) acquire(ctx context.Context, o observation, act action) (Term, Record, error) {
	now, bootAt := e.clock.Now(), e.boot()
	rec := Record{
		HolderIdentity: e.cfg.Identity,
		LeaseDuration:  e.cfg.LeaseDuration,
		AcquireTime:    now,
		RenewTime:      now,
		Instance:       e.instance,
	}
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RenewInterval)
	defer cancel()
	var res Record
	var err error
	if act == actCreate {
		res, err = e.lock.Create(rctx, rec)
	} else {
		prev := o.rec
		rec.Version = prev.Version
		rec.LeaseTransitions = prev.LeaseTransitions
		if prev.HolderIdentity != e.cfg.Identity && rec.LeaseTransitions < 1<<31-1 {
			rec.LeaseTransitions++
		}
		// A handover request is fulfilled by the acquisition of the named
		// successor, or of anyone when any successor was asked for.
		if p := prev.PreferredHolder; p != e.cfg.Identity && p != AnyOtherHolder {
			rec.PreferredHolder = p
		}
		rec.Values = prev.Values
		res, err = e.lock.Update(rctx, rec)
	}
	if err != nil {
		return Term{}, Record{}, err
	}
	e.mu.Lock()
	e.writeEpoch++
	if res.Version <= e.lastToken {
		// The backend broke its contract; fencing downstream would refuse
		// this term. Say so rather than hide it.
		e.log.Error("the lock's backend returned a version that did not increase; fencing tokens are not monotonic", "version", res.Version, "previousToken", e.lastToken)
	}
	e.lastToken = max(e.lastToken, res.Version)
	e.mu.Unlock()
	e.see(res)
	v := &validity{now: e.clock.Now, boot: e.boot}
	v.extend(now, bootAt, e.cfg.validity())
	t := Term{Identity: e.cfg.Identity, Token: res.Version, AcquireTime: now, Values: maps.Clone(res.Values), v: v}
	return t, res, nil
}

type renewResult struct {
	rec     Record
	sentAt  time.Time
	bootAt  time.Duration
	adopted bool  // rec is a write of ours found by re-reading: no extension
	lost    error // the term is over
	err     error // transient: retry
}

// failure is the renewal's outcome as an error, nil on success.
func (r renewResult) failure() error {
	switch {
	case r.lost != nil:
		return r.lost
	case r.err != nil:
		return r.err
	case r.adopted:
		return ErrConflict
	}
	return nil
}

// renew writes a new renewTime over our last record, compare-and-swap on its
// version, with a deadline no later than the end of validity.
func (e *Elector) renew(ctx context.Context, t Term, last Record, values map[string]string) renewResult {
	now, bootAt := e.clock.Now(), e.boot()
	left := t.Remaining()
	if left <= 0 {
		return renewResult{lost: ErrValidityExpired}
	}
	rec := last
	rec.HolderIdentity = e.cfg.Identity
	rec.LeaseDuration = e.cfg.LeaseDuration
	rec.RenewTime = now
	rec.Token = t.Token
	rec.Instance = e.instance
	rec.Values = values
	rctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	res, err := e.lock.Update(rctx, rec)
	switch {
	case err == nil:
		return renewResult{rec: res, sentAt: now, bootAt: bootAt}
	case errors.Is(err, ErrNotFound):
		return renewResult{lost: ErrLockDeleted, sentAt: now}
	case errors.Is(err, ErrConflict):
		// Either someone else wrote, or an earlier write of ours that we gave
		// up on was applied late. Only a re-read tells which.
		cur, gerr := e.lock.Get(rctx)
		switch {
		case errors.Is(gerr, ErrNotFound):
			return renewResult{lost: ErrLockDeleted}
		case gerr != nil:
			return renewResult{err: gerr}
		}
		e.see(cur)
		r := e.judge(cur)
		r.sentAt = now
		return r
	default:
		return renewResult{err: err, sentAt: now}
	}
}

// judge classifies a record written by someone while we lead.
func (e *Elector) judge(cur Record) renewResult {
	switch {
	case e.isOwn(cur):
		return renewResult{rec: cur, adopted: true}
	case cur.HolderIdentity == e.cfg.Identity:
		return renewResult{lost: fmt.Errorf("%w (identity %q, other instance %q)", ErrIdentityClash, cur.HolderIdentity, cur.Instance)}
	default:
		return renewResult{lost: fmt.Errorf("%w: holder is now %q", ErrLockLost, cur.HolderIdentity)}
	}
}
