package leadership

import (
	"context"
	"time"
)

// Hooks receive the elector's notable moments, for metrics, Kubernetes
// Events and audit logs. Any of them may be nil. They are called one at a
// time, in the order of the moments, on a goroutine of their own, never
// with the elector's lock held: a hook may call Leader, Healthy or Observe.
// A slow hook delays only the hooks after it, never the elector; Run
// returns after the last hook has returned.
type Hooks struct {
	// OnAttempt follows every write that tries to acquire the lock: err is
	// nil on success, wraps ErrConflict when another candidate won.
	OnAttempt func(err error)
	// OnAcquire follows a won term. previous is the holder the lock was
	// taken from ("" if it was free or missing); waited is the takeover
	// latency as this elector saw it: from the moment the lock became free
	// to take (a release or deletion seen, or the holder's lease run out)
	// to the moment the acquiring write succeeded.
	OnAcquire func(t Term, previous string, waited time.Duration)
	// OnRenew follows every renewal attempt with its round-trip latency.
	OnRenew func(latency time.Duration, err error)
	// OnTermEnd follows the end of a term, after lead has returned, with
	// the cause (context.Cause of lead's context).
	OnTermEnd func(t Term, cause error)
	// OnRelease follows a release attempt: err is nil if the lock was
	// released, else why not.
	OnRelease func(t Term, err error)
	// OnLeader follows every change of the observed holder.
	OnLeader func(l Leader)
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

// JoinHooks returns Hooks that call, for each moment, the hooks of hs that
// are set, in the order of hs: one elector can then feed metrics, Events
// and a log at once. A moment no hook of hs is set for stays nil.
func JoinHooks(hs ...Hooks) Hooks {
	var out Hooks
	for _, h := range hs {
		out.OnAttempt = chain1(out.OnAttempt, h.OnAttempt)
		out.OnAcquire = chain3(out.OnAcquire, h.OnAcquire)
		out.OnRenew = chain2(out.OnRenew, h.OnRenew)
		out.OnTermEnd = chain2(out.OnTermEnd, h.OnTermEnd)
		out.OnRelease = chain2(out.OnRelease, h.OnRelease)
		out.OnLeader = chain1(out.OnLeader, h.OnLeader)
	}
	return out
}

func chain1[A any](f, g func(A)) func(A) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A) { f(a); g(a) }
}

func chain2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

func chain3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A, b B, c C) { f(a, b, c); g(a, b, c) }
}
