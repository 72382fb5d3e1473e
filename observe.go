package leadership

import (
	"context"
	"errors"
	"time"
)

// maxAnnouncedFactor bounds how much longer than its own LeaseDuration a
// candidate waits for a holder that announced a longer one. Replicas of one
// lock should share the lease duration; a holder configured more than this
// factor longer than a candidate is protected only by fencing.
const maxAnnouncedFactor = 4

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
	var o observer
	for ctx.Err() == nil {
		version, err := e.refresh(ctx)
		if err != nil {
			if ctx.Err() == nil {
				o.errs.log(e.log, e.clock.Now(), "cannot read the lock; retrying", err)
			}
			e.sleep(ctx, jitter(e.cfg.RetryPeriod))
			continue
		}
		o.errs.ok(e.log, "reading the lock works again")
		e.answerPing(ctx, &o.answered)
		if !o.pollingSince.IsZero() && e.clock.Since(o.pollingSince) < e.watchRetry {
			e.sleep(ctx, jitter(e.cfg.RetryPeriod))
			continue
		}
		e.watchFrom(ctx, version, &o)
	}
}

// observer is the observer loop's own state; only its goroutine uses it.
type observer struct {
	// pollingSince is when watching was last found forbidden; zero while
	// watching works.
	pollingSince time.Time
	errs         errLogger
	// answered is the last liveness probe answered (answerPing).
	answered string
}

// watchFrom watches the lock from version until the watch ends, and
// records what it sees. A watch that is forbidden switches the loop to
// polling; one that ends at once is retried only after RetryPeriod, so
// that it cannot spin.
func (e *Elector) watchFrom(ctx context.Context, version uint64, o *observer) {
	started := e.clock.Now()
	ch, err := e.lock.Watch(ctx, version)
	if errors.Is(err, ErrForbidden) {
		if o.pollingSince.IsZero() {
			e.log.Warn("watching the lock is forbidden; polling it instead, which is slower to notice a release and costs one read per retry period. Grant the verb \"watch\" on the lock to fix this.",
				"error", err, "every", e.cfg.RetryPeriod, "retryWatchEvery", e.watchRetry)
		}
		o.pollingSince = started
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			o.errs.log(e.log, e.clock.Now(), "cannot watch the lock; retrying", err)
		}
		e.sleep(ctx, jitter(e.cfg.RetryPeriod))
		return
	}
	if !o.pollingSince.IsZero() {
		e.log.Info("watching the lock works again; stopped polling")
		o.pollingSince = time.Time{}
	}
	for ev := range ch {
		e.onWatchEvent(ctx, ev, o)
	}
	if e.clock.Since(started) < e.cfg.RetryPeriod {
		e.sleep(ctx, jitter(e.cfg.RetryPeriod))
	}
}

// onWatchEvent records one event of the watch. Events arrive in order, so
// a deletion's version is current.
func (e *Elector) onWatchEvent(ctx context.Context, ev Event, o *observer) {
	switch ev.Type {
	case Deleted:
		e.seeMissing(ev.Record.Version, e.epoch())
	case Failed:
		switch {
		case ctx.Err() != nil:
		case errors.Is(ev.Err, ErrExpired):
			e.log.Debug("watch expired; re-reading the lock", "error", ev.Err)
		case errors.Is(ev.Err, ErrForbidden):
			o.pollingSince = e.clock.Now()
			e.log.Warn("watching the lock became forbidden; polling it instead. Grant the verb \"watch\" on the lock to fix this.", "error", ev.Err)
		default:
			o.errs.log(e.log, e.clock.Now(), "the watch on the lock failed; re-reading it", ev.Err)
		}
	default:
		e.seeEvent(ev.Record)
		e.answerPing(ctx, &o.answered)
	}
}
