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
//
// It goes in three steps, as raft's runLeader does: beginTerm publishes the
// term and starts lead and the watchdog; leaderLoop hands each event to a
// method named for it (onRenewResult, onProclaim, ...) until one of them,
// or the watchdog, ends the term; endTerm waits for lead, settles what was
// in flight, releases the lock if it is ours to release, and reports. The
// state they share is leaderState.
func (e *Elector) leadTerm(ctx context.Context, t Term, rec Record, lead LeadFunc) (voluntary bool, relErr error) {
	ls := e.beginTerm(ctx, t, rec, lead)
	defer ls.finish()
	e.leaderLoop(ls)
	return e.endTerm(ctx, ls)
}

// leaderState is one term as its leader loop runs it. Each group of fields
// says who may touch it.
type leaderState struct {
	// Set by beginTerm before anything else sees the term, then only read,
	// by any goroutine (Proclaim, Resign, the renewal's goroutine, ...).
	term Term
	// ignorePreferred is the requested successor present when the term
	// began: a request older than the term is void.
	ignorePreferred string
	// ctx is lead's context; cancel ends the term, with its cause. The
	// watchdog's goroutine, the AfterFunc and Run's context end it too.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// done is closed once lead has returned and the release is written.
	done chan struct{}
	// leadDone receives what lead returned.
	leadDone chan error
	// renewOut receives the outcome of the renewal in flight from its
	// goroutine.
	renewOut chan renewResult
	// extended tells the watchdog that validity moved.
	extended chan struct{}

	// Guarded by e.mu: Term, Leader, Observe and Healthy read them.
	//
	// lastRenew is when the last renewal succeeded (until then, when the
	// term began; set before the term is published).
	lastRenew time.Time
	// ended is set the moment the term's context is done, by the AfterFunc
	// or by endTerm, whichever runs first.
	ended bool

	// Owned by the goroutine that runs leadTerm (the leader loop and its
	// begin and end steps); no other goroutine reads or writes them.
	//
	// last is our last successful write, or a record adopted as ours
	// since. A renewal's goroutine gets a copy.
	last Record
	// renewing says that a renewal is in flight: its outcome comes on
	// renewOut, and no other is sent meanwhile.
	renewing bool
	// Proclaimed values wait in pending for the next write, then ride in
	// inflight until its outcome answers them.
	pending, inflight []proclaimReq
	// renewT fires when the next renewal is due.
	renewT renewTimer
	// errs de-duplicates the log of failed renewals.
	errs errLogger
	// returned says that lead has returned, with leadErr.
	returned bool
	leadErr  error
	// watchdogWG counts the watchdog goroutine; stopAfter unregisters the
	// AfterFunc that sets ended.
	watchdogWG sync.WaitGroup
	stopAfter  func() bool
}

// renewTimer is what the leader loop uses of the elector clock's timer.
type renewTimer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// beginTerm publishes the term and starts its goroutines: lead, and the
// watchdog, which alone ends the term when its validity runs out, so that
// no hung request or busy loop of the leader loop can stretch it.
func (e *Elector) beginTerm(ctx context.Context, t Term, rec Record, lead LeadFunc) *leaderState {
	termCtx, cancel := context.WithCancelCause(ctx)
	ls := &leaderState{
		term: t, ignorePreferred: rec.PreferredHolder,
		ctx: termCtx, cancel: cancel,
		done: make(chan struct{}), leadDone: make(chan error, 1),
		renewOut: make(chan renewResult, 1), extended: make(chan struct{}, 1),
		lastRenew: e.clock.Now(),
		last:      rec,
	}
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
	ls.stopAfter = context.AfterFunc(termCtx, func() {
		e.mu.Lock()
		ls.ended = true
		e.publish()
		e.mu.Unlock()
	})
	e.log.Info("became leader", "token", t.Token, "validFor", t.Remaining().Round(time.Millisecond))
	ls.watchdogWG.Go(func() { e.watchdog(termCtx, cancel, t.v, ls.extended) })
	go func() { ls.leadDone <- lead(termCtx, t) }()
	ls.renewT = e.clock.NewTimer(e.cfg.RenewInterval)
	return ls
}

// leaderLoop hands each event of the term to its method until one of them
// says why the term ends, or the term's context is done otherwise (the
// watchdog, Run's context). It returns with the term's context cancelled.
func (e *Elector) leaderLoop(ls *leaderState) {
	for {
		var cause error
		select {
		case <-ls.ctx.Done():
			return
		case err := <-ls.leadDone:
			cause = ls.onLeadReturned(err)
		case <-e.resign: // Resign was called: nothing to do but end
			cause = ErrResigned
		case <-e.notify:
			cause = e.onObserved(ls)
		case <-ls.renewT.C():
			e.onRenewDue(ls)
		case p := <-e.proclaims:
			e.onProclaim(ls, p)
		case r := <-ls.renewOut:
			cause = e.onRenewResult(ls, r)
		}
		if cause != nil {
			ls.cancel(cause)
			return
		}
	}
}

// onLeadReturned: lead returned of its own accord, which ends the term.
func (ls *leaderState) onLeadReturned(err error) error {
	ls.returned, ls.leadErr = true, err
	if err != nil {
		return fmt.Errorf("%w with an error: %w", ErrLeadReturned, err)
	}
	return ErrLeadReturned
}

// onObserved: the observation of the lock changed (the watch, or a read)
// while leading. A deletion or another writer ends the term at once, well
// before its validity would; it returns why, or nil.
func (e *Elector) onObserved(ls *leaderState) error {
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

// onRenewDue: the renewal timer fired.
func (e *Elector) onRenewDue(ls *leaderState) {
	if !ls.renewing {
		e.startRenew(ls)
	}
}

// onProclaim: Proclaim asks for values to be written. They ride the
// renewal sent now, or the next one if one is in flight.
func (e *Elector) onProclaim(ls *leaderState, p proclaimReq) {
	if p.token != ls.term.Token {
		p.done <- ErrNotLeader
		return
	}
	ls.pending = append(ls.pending, p)
	if !ls.renewing {
		e.startRenew(ls)
	}
}

// startRenew sends a renewal from a goroutine of its own, carrying the
// pending proclaims; its outcome comes on renewOut.
func (e *Elector) startRenew(ls *leaderState) {
	ls.renewing = true
	last := ls.last
	values := last.Values
	if len(ls.pending) > 0 {
		values = withProclaimed(last.Values, ls.pending)
		ls.inflight, ls.pending = ls.pending, nil
	}
	go func() { ls.renewOut <- e.renew(ls.ctx, ls, last, values) }()
}

// withProclaimed returns values with the proclaims of reqs applied in
// order (an empty value deletes its key). values itself, the last write's,
// is left as it is.
func withProclaimed(values map[string]string, reqs []proclaimReq) map[string]string {
	out := maps.Clone(values)
	if out == nil {
		out = map[string]string{}
	}
	for _, p := range reqs {
		for k, v := range p.values {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

// onRenewResult: the renewal in flight has an outcome. It returns why the
// term ends, or nil.
func (e *Elector) onRenewResult(ls *leaderState, r renewResult) error {
	ls.renewing = false
	if h := e.cfg.Hooks.OnRenew; h != nil && !r.sentAt.IsZero() {
		lat, err := e.clock.Since(r.sentAt), r.failure()
		e.hook(func() { h(lat, err) })
	}
	switch r.verdict() {
	case renewLost:
		if errors.Is(r.lost, ErrHandover) {
			ls.last = r.rec
		}
		ls.answerInflight(r.lost)
		return r.lost
	case renewFailed:
		if ls.ctx.Err() == nil {
			ls.errs.log(e.log, e.clock.Now(), "renewal failed; retrying until validity runs out", r.err)
		}
		ls.requeueInflight()
		ls.renewT.Reset(jitter(e.cfg.RetryPeriod))
	case renewAdopted:
		ls.last = r.rec
		ls.requeueInflight()
		ls.renewT.Reset(0)
	case renewWritten:
		e.onRenewed(ls, r)
	}
	return nil
}

// onRenewed: the renewal was written. Validity extends from when it was
// sent, and the proclaims it carried succeeded.
func (e *Elector) onRenewed(ls *leaderState, r renewResult) {
	ls.errs.ok(e.log, "renewals succeed again")
	ls.term.v.extend(r.sentAt, r.bootAt, e.cfg.termValidity())
	e.restart.renewed(r.bootAt + e.cfg.termValidity())
	select {
	case ls.extended <- struct{}{}:
	default:
	}
	ls.last = r.rec
	now := e.clock.Now() // the clock is the caller's (NewWithClock): not under mu
	e.mu.Lock()
	ls.lastRenew = now
	e.mu.Unlock()
	e.confirmed(r.rec)
	ls.answerInflight(nil)
	if len(ls.pending) > 0 {
		e.startRenew(ls)
	} else {
		ls.renewT.Reset(max(0, e.cfg.RenewInterval-e.clock.Since(r.sentAt)))
	}
}

// answerInflight answers the proclaims the renewal in flight carried.
func (ls *leaderState) answerInflight(err error) {
	answer(ls.inflight, err)
	ls.inflight = nil
}

// requeueInflight puts the proclaims of a renewal that did not write back
// in front of the pending ones, for the next renewal to carry.
func (ls *leaderState) requeueInflight() {
	ls.pending, ls.inflight = append(ls.inflight, ls.pending...), nil
}

func answer(reqs []proclaimReq, err error) {
	for _, p := range reqs {
		p.done <- err
	}
}

// endTerm runs once the term's context is done: it waits for lead, settles
// the renewal and the proclaims in flight, releases the lock if it is ours
// to release, and reports the end. ctx is Run's.
func (e *Elector) endTerm(ctx context.Context, ls *leaderState) (voluntary bool, relErr error) {
	cause := context.Cause(ls.ctx)
	e.stepDown(ls)
	if !ls.returned {
		ls.leadErr = e.awaitLead(ls.leadDone, cause)
	}
	e.settleRenewal(ls)
	e.closeProclaims(ls, cause)
	e.mu.Lock()
	e.stopping = time.Time{}
	e.mu.Unlock()

	voluntary = voluntaryEnd(cause)
	e.reportEnd(ctx, ls, cause, voluntary)
	if releaseDue(cause, context.Cause(ctx), e.cfg.KeepLockOnStop) {
		relErr = e.release(ls)
		if h := e.cfg.Hooks.OnRelease; h != nil {
			e.hook(func() { h(ls.term, relErr) })
		}
	}
	e.mu.Lock()
	e.changed()
	e.mu.Unlock()
	return voluntary, relErr
}

// stepDown marks the term ended, in case its AfterFunc has not run yet (so
// that hooks stay in order), and starts Healthy's count of how long lead
// takes to return.
func (e *Elector) stepDown(ls *leaderState) {
	now := e.clock.Now()
	e.mu.Lock()
	e.stopping = now
	ls.ended = true
	e.publish()
	e.mu.Unlock()
}

// settleRenewal waits for the renewal in flight, if any. It runs under the
// term's context, now cancelled, so it ends soon; if it did write, the
// release must compare-and-swap against that write, and the proclaims it
// carried succeeded.
func (e *Elector) settleRenewal(ls *leaderState) {
	if !ls.renewing {
		return
	}
	r := <-ls.renewOut
	ls.renewing = false
	switch r.verdict() {
	case renewWritten:
		ls.last = r.rec
		e.confirmed(r.rec)
		ls.answerInflight(nil)
	case renewAdopted:
		ls.last = r.rec
	}
}

// closeProclaims ends the term for Proclaim, Resign and Term, then answers
// every proclaim still waiting. The door closes before the answers, so
// that no request is left waiting.
func (e *Elector) closeProclaims(ls *leaderState, cause error) {
	e.mu.Lock()
	e.leading = nil
	e.mu.Unlock()
	answer(append(ls.inflight, ls.pending...), fmt.Errorf("%w: the term ended: %w", ErrNotLeader, cause))
	ls.inflight, ls.pending = nil, nil
	e.drainProclaims(cause)
}

// reportEnd logs the end of the term, at a level that says whether anything
// went wrong, and queues the OnTermEnd hook.
func (e *Elector) reportEnd(ctx context.Context, ls *leaderState, cause error, voluntary bool) {
	lvl := e.log.Info
	if ls.leadErr != nil {
		lvl = e.log.Error
	} else if !voluntary && ctx.Err() == nil {
		lvl = e.log.Warn
	}
	lvl("term ended; lead has returned", "token", ls.term.Token, "cause", cause, "leadError", ls.leadErr)
	if h := e.cfg.Hooks.OnTermEnd; h != nil {
		e.hook(func() { h(ls.term, cause) })
	}
}

// finish lets go of what beginTerm started, once endTerm is done.
func (ls *leaderState) finish() {
	ls.renewT.Stop()
	ls.watchdogWG.Wait() // it returns once the term's context is done
	ls.stopAfter()
	close(ls.done)
	ls.cancel(nil)
}

// voluntaryEnd reports whether a term that ended with cause ended by this
// replica's choice: lead returned, Resign, or a handover.
func voluntaryEnd(cause error) bool {
	return errors.Is(cause, ErrLeadReturned) || errors.Is(cause, ErrResigned) || errors.Is(cause, ErrHandover)
}

// releaseDue reports whether a term that ended with cause is ours to
// release. runCause is context.Cause of Run's context (nil while it runs).
// A term ended by someone else's write (lost, deleted, clash) or by
// validity running out is not ours to release; one ended voluntarily is,
// and one ended by a stop is, unless keepLock.
func releaseDue(cause, runCause error, keepLock bool) bool {
	return voluntaryEnd(cause) || (runCause != nil && errors.Is(cause, runCause) && !keepLock)
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

// renewVerdict is what a renewal's outcome means for the term.
type renewVerdict int

const (
	renewWritten renewVerdict = iota // written: validity extends from its send
	renewAdopted                     // a write of ours found by re-reading: go on from it, unextended
	renewFailed                      // transient: retry while validity lasts
	renewLost                        // the term is over
)

// verdict classifies the outcome. An end of the term outweighs a failure,
// which outweighs an adoption.
func (r renewResult) verdict() renewVerdict {
	switch {
	case r.lost != nil:
		return renewLost
	case r.err != nil:
		return renewFailed
	case r.adopted:
		return renewAdopted
	}
	return renewWritten
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
