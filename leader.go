package leadership

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
)

// leadTerm runs lead for one term and returns once lead has returned and the
// lock has been released where appropriate. It reports whether the term
// ended by this replica's choice (lead returned, resign, handover), in which
// case the caller gives the others a head start, and why a release that
// should have been written was not.
func (e *Elector) leadTerm(ctx context.Context, t Term, rec Record, lead LeadFunc) (voluntary bool, relErr error) {
	termCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ls := &leaderState{term: t, last: rec, lastRenew: e.clock.Now(), done: make(chan struct{}), ignorePreferred: rec.PreferredHolder}
	defer close(ls.done)
	select { // a resign request from an earlier term is void
	case <-e.resign:
	default:
	}
	e.mu.Lock()
	e.leading = ls
	e.changed()
	e.mu.Unlock()
	// The moment the term ends, this replica no longer reports itself as
	// leader, even while lead is still returning.
	stopAfter := context.AfterFunc(termCtx, func() {
		e.mu.Lock()
		ls.ended = true
		e.publish()
		e.mu.Unlock()
	})
	defer stopAfter()
	e.log.Info("became leader", "token", t.Token, "validFor", t.Remaining().Round(time.Millisecond))

	// The watchdog alone ends the term when validity runs out, so that no
	// hung request or busy loop here can stretch it.
	extended := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { e.watchdog(termCtx, cancel, t.v, extended) })

	leadDone := make(chan error, 1)
	go func() { leadDone <- lead(termCtx, t) }()

	renewT := e.clock.NewTimer(e.cfg.RenewInterval)
	defer renewT.Stop()
	renewOut := make(chan renewResult, 1)
	renewing := false
	// Proclaimed values wait in pending for the next write, then ride in
	// inflight until its outcome answers them.
	var pending, inflight []proclaimReq
	startRenew := func() {
		renewing = true
		last := ls.last
		values := last.Values
		if len(pending) > 0 {
			values = maps.Clone(values)
			if values == nil {
				values = map[string]string{}
			}
			for _, p := range pending {
				for k, v := range p.values {
					if v == "" {
						delete(values, k)
					} else {
						values[k] = v
					}
				}
			}
			inflight, pending = pending, nil
		}
		go func() { renewOut <- e.renew(termCtx, ls, last, values) }()
	}
	answer := func(reqs []proclaimReq, err error) {
		for _, p := range reqs {
			p.done <- err
		}
	}
	var errs errLogger
	var leadErr error
	returned := false
loop:
	for {
		select {
		case leadErr = <-leadDone:
			returned = true
			if leadErr != nil {
				cancel(fmt.Errorf("%w with an error: %w", ErrLeadReturned, leadErr))
			} else {
				cancel(ErrLeadReturned)
			}
			break loop
		case <-termCtx.Done():
			break loop
		case <-e.resign:
			cancel(ErrResigned)
			break loop
		case <-e.notify:
			if cause := e.checkObserved(ls); cause != nil {
				cancel(cause)
				break loop
			}
		case <-renewT.C():
			if !renewing {
				startRenew()
			}
		case p := <-e.proclaims:
			if p.token != t.Token {
				p.done <- ErrNotLeader
				continue
			}
			pending = append(pending, p)
			if !renewing {
				startRenew()
			}
		case r := <-renewOut:
			renewing = false
			if h := e.cfg.Hooks.OnRenew; h != nil && !r.sentAt.IsZero() {
				lat, err := e.clock.Since(r.sentAt), r.failure()
				e.hook(func() { h(lat, err) })
			}
			switch {
			case r.lost != nil:
				if errors.Is(r.lost, ErrHandover) {
					ls.last = r.rec
				}
				answer(inflight, r.lost)
				inflight = nil
				cancel(r.lost)
				break loop
			case r.err != nil:
				if termCtx.Err() == nil {
					errs.log(e.log, e.clock.Now(), "renewal failed; retrying until validity runs out", r.err)
				}
				pending, inflight = append(inflight, pending...), nil
				renewT.Reset(jitter(e.cfg.RetryPeriod))
			case r.adopted:
				ls.last = r.rec
				pending, inflight = append(inflight, pending...), nil
				renewT.Reset(0)
			default:
				errs.ok(e.log, "renewals succeed again")
				t.v.extend(r.sentAt, r.bootAt, e.cfg.termValidity())
				e.restart.renewed(r.bootAt + e.cfg.termValidity())
				select {
				case extended <- struct{}{}:
				default:
				}
				e.mu.Lock()
				ls.last = r.rec
				ls.lastRenew = e.clock.Now()
				e.mu.Unlock()
				e.confirmed(r.rec)
				answer(inflight, nil)
				inflight = nil
				if len(pending) > 0 {
					startRenew()
				} else {
					renewT.Reset(max(0, e.cfg.RenewInterval-e.clock.Since(r.sentAt)))
				}
			}
		}
	}
	cause := context.Cause(termCtx)
	e.mu.Lock()
	e.stopping = e.clock.Now()
	ls.ended = true // if the AfterFunc has not run yet: hooks stay in order
	e.publish()
	e.mu.Unlock()
	if !returned {
		leadErr = e.awaitLead(leadDone, cause)
	}
	if renewing {
		// It runs under termCtx, now cancelled, so it ends soon; if it did
		// write, the release must compare-and-swap against that write.
		r := <-renewOut
		if r.lost == nil && r.err == nil {
			ls.last = r.rec
			if !r.adopted {
				e.confirmed(r.rec)
			}
		}
		if r.failure() == nil {
			answer(inflight, nil)
			inflight = nil
		}
	}
	// Close the door before answering, so no request is left waiting.
	e.mu.Lock()
	e.leading = nil
	e.mu.Unlock()
	answer(append(inflight, pending...), fmt.Errorf("%w: the term ended: %w", ErrNotLeader, cause))
	e.drainProclaims(cause)
	e.mu.Lock()
	e.stopping = time.Time{}
	e.mu.Unlock()

	voluntary = errors.Is(cause, ErrLeadReturned) || errors.Is(cause, ErrResigned) || errors.Is(cause, ErrHandover)
	lvl := e.log.Info
	if leadErr != nil {
		lvl = e.log.Error
	} else if !voluntary && ctx.Err() == nil {
		lvl = e.log.Warn
	}
	lvl("term ended; lead has returned", "token", t.Token, "cause", cause, "leadError", leadErr)
	if h := e.cfg.Hooks.OnTermEnd; h != nil {
		e.hook(func() { h(t, cause) })
	}
	// A term ended by someone else's write (lost, deleted, clash) or by
	// validity running out is not ours to release; a stop is, if asked.
	if voluntary || (ctx.Err() != nil && errors.Is(cause, context.Cause(ctx)) && !e.cfg.KeepLockOnStop) {
		relErr = e.release(ls)
		if h := e.cfg.Hooks.OnRelease; h != nil {
			e.hook(func() { h(t, relErr) })
		}
	}
	e.mu.Lock()
	e.changed()
	e.mu.Unlock()
	return voluntary, relErr
}

// proclaimReq asks the leader loop to write values in the term token.
type proclaimReq struct {
	token  uint64
	values map[string]string
	done   chan error
}

// Proclaim writes values (an empty value deletes its key) to the lock as
// part of term t, and returns once the write succeeded. The write is a
// compare-and-swap on the term's last write, so it can only succeed while t
// is this elector's current term: a leader that lost its term cannot move
// the values. It also counts as a renewal. Values survive into later terms
// (Term.Values) and are visible to anyone who reads the lock. It fails with
// ErrNotLeader if t is not the current term, or ends before the write
// succeeded.
func (e *Elector) Proclaim(ctx context.Context, t Term, values map[string]string) error {
	e.mu.Lock()
	ls := e.leading
	e.mu.Unlock()
	if ls == nil || ls.term.Token != t.Token || t.Token == 0 {
		return ErrNotLeader
	}
	p := proclaimReq{token: t.Token, values: maps.Clone(values), done: make(chan error, 1)}
	select {
	case e.proclaims <- p:
	case <-ls.done:
		return ErrNotLeader
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainProclaims answers requests that reached the channel as the term
// ended.
func (e *Elector) drainProclaims(cause error) {
	for {
		select {
		case p := <-e.proclaims:
			p.done <- fmt.Errorf("%w: the term ended: %w", ErrNotLeader, cause)
		default:
			return
		}
	}
}

// awaitLead waits for lead to return after its context was cancelled,
// complaining periodically: until it returns, the lock cannot be released.
func (e *Elector) awaitLead(leadDone <-chan error, cause error) error {
	for {
		t := e.clock.NewTimer(e.cfg.LeaseDuration)
		select {
		case err := <-leadDone:
			t.Stop()
			return err
		case <-t.C():
			e.log.Error("lead has not returned although its term ended; the lock stays unreleased until it does. lead must return when its context is cancelled.", "cause", cause)
		}
	}
}

// watchdog cancels the term when its validity runs out, on either the
// monotonic or the boot clock. Go timers follow the monotonic clock, which
// stands still during a suspend; the boot-clock timer fires right after a
// resume that carried the boot clock past the term's end. extended says
// that validity moved.
func (e *Elector) watchdog(ctx context.Context, cancel context.CancelCauseFunc, v *validity, extended <-chan struct{}) {
	var bootC <-chan struct{}
	bt, err := e.newBootTimer()
	if err != nil {
		e.log.Warn("no boot-clock timer; a suspend is noticed only when the monotonic timer fires", "error", err)
	} else {
		defer bt.Stop()
		bootC = bt.C()
	}
	for {
		r := v.remaining()
		if r <= 0 {
			if v.suspended() {
				cancel(ErrSuspended)
			} else {
				cancel(ErrValidityExpired)
			}
			return
		}
		if bt != nil {
			if err := bt.Set(v.bootDeadline()); err != nil {
				e.log.Warn("cannot arm the boot-clock timer", "error", err)
			}
		}
		t := e.clock.NewTimer(r)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-bootC:
			t.Stop()
		case <-extended:
			t.Stop()
		}
	}
}

// checkObserved reacts to a change of the lock seen through the watch while
// leading: a deletion or another writer ends the term at once, well before
// its validity would.
func (e *Elector) checkObserved(ls *leaderState) error {
	o := e.snapshot()
	if !o.known {
		return nil
	}
	if !o.exists {
		if o.version == 0 || o.version > ls.last.Version {
			return ErrLockDeleted
		}
		return nil
	}
	if o.version <= ls.last.Version {
		return nil // our own write, or older
	}
	rec, cause := e.judge(ls, ls.last, o.rec)
	switch {
	case errors.Is(cause, ErrHandover):
		ls.last = rec
		return cause
	case cause != nil:
		e.log.Error("the lock was written by someone else while this replica led; stopping the work now", "cause", cause)
		return cause
	}
	ls.last = rec
	return nil
}

// release writes an empty holder over our last record, marked as our
// release, so that successors act at once. It runs only after lead has
// returned, and it is a compare-and-swap: if anyone wrote since, there is
// nothing of ours to release.
func (e *Elector) release(ls *leaderState) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewInterval)
	defer cancel()
	for range 2 {
		rec := ls.last
		now := wallTime(e.clock.Now())
		rec.HolderIdentity = ""
		// As client-go does: a client-go successor ignores our mark and
		// waits a second.
		rec.LeaseDuration = time.Second
		rec.AcquireTime, rec.RenewTime = now, now
		rec.Instance = e.instance
		rec.Released = ls.term.Token
		rec.PodUID, rec.Proof = "", ""
		e.restart.releasing()
		e.sent(rec)
		res, err := e.lock.Update(ctx, rec)
		switch {
		case err == nil:
			e.confirmed(res)
			e.log.Info("released the lock", "token", ls.term.Token)
			return nil
		case errors.Is(err, ErrConflict):
			cur, gerr := e.lock.Get(ctx)
			if gerr == nil && cur.HolderIdentity != "" && (cur.sameContent(ls.last) || e.isMine(cur)) {
				ls.last = cur // a late write of ours, or a label: release over it
				continue
			}
			e.log.Info("not releasing: the lock is no longer ours")
			return fmt.Errorf("leadership: not released, the lock is no longer ours: %w", err)
		case errors.Is(err, ErrNotFound):
			return fmt.Errorf("leadership: not released: %w", err)
		default:
			e.log.Warn("could not release the lock; successors take over after the lease duration instead", "error", err)
			return fmt.Errorf("leadership: release failed: %w", err)
		}
	}
	return errors.New("leadership: not released: the lock kept changing")
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
func (e *Elector) renew(ctx context.Context, ls *leaderState, last Record, values map[string]string) renewResult {
	t := ls.term
	now, bootAt := e.clock.Now(), e.boot()
	left := t.Remaining()
	if left <= 0 {
		return renewResult{lost: ErrValidityExpired}
	}
	rec := last
	rec.HolderIdentity = e.cfg.Identity
	rec.LeaseDuration = e.cfg.LeaseDuration
	rec.RenewTime = wallTime(now)
	rec.Token = t.Token
	rec.Instance = e.instance
	rec.Released = 0
	rec.Values = values
	rctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	e.sent(rec)
	res, err := e.lock.Update(rctx, rec)
	switch {
	case err == nil:
		return renewResult{rec: res, sentAt: now, bootAt: bootAt}
	case errors.Is(err, ErrNotFound):
		return renewResult{lost: ErrLockDeleted, sentAt: now}
	case errors.Is(err, ErrConflict):
		// Someone else wrote, or an earlier write of ours that we gave up
		// on was applied late, or only metadata changed. Only a re-read
		// tells which.
		epoch := e.epoch()
		cur, gerr := e.lock.Get(rctx)
		switch {
		case errors.Is(gerr, ErrNotFound):
			return renewResult{lost: ErrLockDeleted, sentAt: now}
		case gerr != nil:
			return renewResult{err: gerr, sentAt: now}
		}
		e.seeRead(cur, epoch)
		rec, cause := e.judge(ls, last, cur)
		if cause != nil {
			return renewResult{rec: rec, lost: cause, sentAt: now}
		}
		return renewResult{rec: rec, adopted: true, sentAt: now}
	default:
		return renewResult{err: err, sentAt: now}
	}
}

// judge classifies a record at a newer version than last, our last
// successful write, seen while we lead. It returns the record to continue
// from, or why the term ends. Only a record exactly equal to one of our
// writes, or to last but for its metadata, is ours: a hand edit copies the
// holder and instance too, and whatever it changed (duration, renew time,
// holder) others may now act on.
func (e *Elector) judge(ls *leaderState, last, cur Record) (Record, error) {
	switch {
	case cur.sameContent(last), e.isMine(cur):
		return cur, nil
	case cur.HolderIdentity == e.cfg.Identity && cur.Instance != e.instance && cur.Instance != "":
		return Record{}, fmt.Errorf("%w (identity %q, other instance %q)", ErrIdentityClash, cur.HolderIdentity, cur.Instance)
	case cur.HolderIdentity != e.cfg.Identity:
		if cur.HolderIdentity == "" {
			return Record{}, fmt.Errorf("%w: someone else emptied the holder", ErrLockLost)
		}
		return Record{}, fmt.Errorf("%w: holder is now %q", ErrLockLost, cur.HolderIdentity)
	}
	req := last
	req.PreferredHolder = cur.PreferredHolder
	if cur.sameContent(req) {
		// Only the requested successor changed: a handover request, or
		// its withdrawal.
		if p := cur.PreferredHolder; p != "" && p != e.cfg.Identity && p != ls.ignorePreferred {
			e.log.Info("handover requested; stepping down", "successor", p)
			return cur, ErrHandover
		}
		return cur, nil
	}
	return Record{}, fmt.Errorf("%w: the lock still names this replica but someone else edited it (%s)", ErrLockLost, diff(last, cur))
}

// diff names the protocol fields in which a and b differ.
func diff(a, b Record) string {
	var d []string
	add := func(name string, differ bool) {
		if differ {
			d = append(d, name)
		}
	}
	add("leaseDuration", a.LeaseDuration != b.LeaseDuration)
	add("renewTime", !a.RenewTime.Equal(b.RenewTime))
	add("acquireTime", !a.AcquireTime.Equal(b.AcquireTime))
	add("leaseTransitions", a.LeaseTransitions != b.LeaseTransitions)
	add("token", a.Token != b.Token)
	add("instance", a.Instance != b.Instance)
	add("released", a.Released != b.Released)
	add("values", !maps.Equal(a.Values, b.Values))
	add("preferredHolder", a.PreferredHolder != b.PreferredHolder)
	return strings.Join(d, ", ")
}
