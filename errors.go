// Every error this package and its Locks return on purpose, so that
// callers can tell them apart with errors.Is.

package leadership

import "errors"

// ErrAlreadyRunning is returned by Run on an Elector that is already running.
var ErrAlreadyRunning = errors.New("leadership: Run called twice on one Elector")

// ErrNotReleased is returned by Run when its final term could not be
// released: successors then take over only after the lease duration.
var ErrNotReleased = errors.New("leadership: the lock was not released on stop")

// Errors that end a term, found with context.Cause on lead's context.
var (
	// ErrValidityExpired: no renewal succeeded in time, so the term ran out.
	ErrValidityExpired = errors.New("leadership: term validity expired before a renewal succeeded")
	// ErrLockLost: someone else wrote the lock (a new holder, a hand edit).
	ErrLockLost = errors.New("leadership: lock taken over by another writer")
	// ErrLockDeleted: the lock was deleted while held.
	ErrLockDeleted = errors.New("leadership: lock deleted while held")
	// ErrIdentityClash: another process writes the lock under this identity.
	ErrIdentityClash = errors.New("leadership: another process holds the lock under the same identity")
	// ErrResigned: Resign was called.
	ErrResigned = errors.New("leadership: resigned")
	// ErrLeadReturned: the lead function returned by itself.
	ErrLeadReturned = errors.New("leadership: lead function returned")
	// ErrNotLeader: Proclaim was called with a term that is not current.
	ErrNotLeader = errors.New("leadership: not the leader in this term")
	// ErrSuspended: the host was suspended long enough to outlast validity.
	ErrSuspended = errors.New("leadership: host was suspended past the term's validity")
)

// ErrHandover ends a term whose holder was asked to hand over to another
// replica (Record.PreferredHolder).
var ErrHandover = errors.New("leadership: handover requested")

// Errors a Lock reports. Backends wrap them with detail; test with errors.Is.
var (
	// ErrNotFound: the lock does not exist.
	ErrNotFound = errors.New("leadership: lock not found")
	// ErrConflict: a compare-and-swap lost, the record had changed.
	ErrConflict = errors.New("leadership: lock changed concurrently")
	// ErrForbidden: the credentials may not do this (RBAC).
	ErrForbidden = errors.New("leadership: permission denied")
	// ErrExpired: a watch asked for a version the store no longer keeps
	// (Kubernetes' 410 Gone); read the record again and watch from there.
	ErrExpired = errors.New("leadership: watch version expired")
)
