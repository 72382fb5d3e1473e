package leadership

import "time"

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
