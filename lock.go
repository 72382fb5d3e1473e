package leadership

import (
	"context"
	"maps"
	"strings"
	"time"
)

// Record is the state of a lock as a backend stores it. The first five fields
// carry exactly the meaning of client-go's LeaderElectionRecord, so that a
// fleet can mix client-go electors and this one on the same lock.
type Record struct {
	// HolderIdentity names the current holder; empty means released.
	HolderIdentity string
	// LeaseDuration is how long a candidate must see the record unchanged
	// before it may take the lock from its holder.
	LeaseDuration time.Duration
	// AcquireTime and RenewTime are wall-clock times written by the holder.
	// No countdown depends on them, because clock offsets between hosts are
	// unbounded; but they make each write of a holder distinct, which is how
	// the holder recognises its own writes. A backend must keep them to the
	// microsecond.
	AcquireTime time.Time
	RenewTime   time.Time
	// LeaseTransitions counts changes of holder. It restarts at zero when the
	// lock is deleted, which is why it is not the fencing token.
	LeaseTransitions int32

	// PreferredHolder names a requested successor (a handover): the holder
	// steps down and releases, and the others leave the released lock to
	// the named replica for a short grace period. AnyOtherHolder asks the
	// holder to step down in favour of whoever is next.
	PreferredHolder string
	// Token is the fencing token the holder published for its term; 0 when
	// the holder has not published one (a client-go holder, or a term whose
	// first renewal is still to come).
	Token uint64
	// Instance identifies the elector process that wrote the record. Two
	// processes sharing one HolderIdentity (a copied Deployment, a fixed
	// --identity) are told apart by it. It does not prove who wrote a
	// record: a hand edit copies it.
	Instance string
	// Released marks the holder's own release: the token of the term it
	// ended, written only once that term's work had returned. Only such a
	// release may be taken at once; an empty holder without it (a hand
	// edit, a client-go release) is waited out like an expiry. Acquisitions
	// and renewals never carry it.
	Released uint64
	// PodUID is the UID of the pod the holder runs in, and Proof
	// identifies the pod-local lock file the holder's term held (boot,
	// file identity and a nonce kept in the file), when the holder is
	// configured for fast takeover after a restart in place
	// (Config.Restart). Like Token and Instance they are part of the
	// holder's record: its acquisition writes them, a hand edit of them
	// is an edit like any other. Proof is empty when the term could not
	// take its lock file.
	PodUID string
	Proof  string

	// Ping and Pong are a liveness probe of one candidate, outside the
	// protocol: `leadership handover --to ID` writes Ping = "ID/nonce"
	// before it names a successor, and the running candidate of that
	// identity answers by writing the same value as Pong (see
	// PingAnswerer). They are not part of a record's content: a change of
	// them alone changes metadata only, which neither renews nor ends a
	// term, and writes of a Record do not set them (a backend keeps the
	// stored ones; only AnswerPing and the handover command change them).
	Ping, Pong string

	// Values are small key/value pairs kept with the lock across terms, such
	// as when a leader-only task last ran. The leader writes them with
	// Elector.Proclaim, fenced by its term; acquisitions carry them over.
	// Treat the map as read-only: writers always build a new one.
	Values map[string]string

	// Version is the backend's revision of the record. Update uses it as a
	// compare-and-swap precondition. Versions of one lock must strictly
	// increase over every write, including a delete and re-create: the
	// fencing token is the version of the write that began a term.
	Version uint64
}

// TermToken is the fencing token of the holder's term as any observer can
// tell it: the published Token, or, for the acquiring write itself (written
// by this package's elector before the token was known: acquire time equal
// to renew time), the write's own Version, which is what the token is.
// 0 when the lock is free or the holder publishes no token (client-go).
func (r Record) TermToken() uint64 {
	switch {
	case r.HolderIdentity == "":
		return 0
	case r.Token != 0:
		return r.Token
	case r.Instance != "" && !r.AcquireTime.IsZero() && r.AcquireTime.Equal(r.RenewTime):
		return r.Version
	}
	return 0
}

// sameContent reports whether a and b say the same thing to the protocol:
// every field but Version, Ping and Pong. A record at a newer version with
// the same content is a change of metadata only (a label, a handover probe),
// which neither renews nor ends a term. Times compare at microsecond precision, which is what the elector
// writes (see truncate) and what a backend must keep.
func (r Record) sameContent(o Record) bool {
	return r.HolderIdentity == o.HolderIdentity &&
		r.LeaseDuration == o.LeaseDuration &&
		r.AcquireTime.Equal(o.AcquireTime) &&
		r.RenewTime.Equal(o.RenewTime) &&
		r.LeaseTransitions == o.LeaseTransitions &&
		r.PreferredHolder == o.PreferredHolder &&
		r.Token == o.Token &&
		r.Instance == o.Instance &&
		r.Released == o.Released &&
		r.PodUID == o.PodUID &&
		r.Proof == o.Proof &&
		maps.Equal(r.Values, o.Values)
}

// wallTime is t as a backend stores it: wall clock only, microseconds.
func wallTime(t time.Time) time.Time { return t.Round(0).Truncate(time.Microsecond) }

// AnyOtherHolder, as Record.PreferredHolder, asks the holder to hand over
// to any other replica.
const AnyOtherHolder = "*"

// EventType says what happened to a watched lock.
type EventType int

const (
	// Put: the record was created or replaced.
	Put EventType = iota
	// Deleted: the record was deleted. Event.Record.Version is the revision
	// of the deletion where the backend reports it.
	Deleted
	// Failed: the watch broke; Event.Err says why (wrapping ErrExpired when
	// the version to watch from is no longer available, ErrForbidden when
	// watching is not allowed). It is the last event before the channel
	// closes.
	Failed
)

func (t EventType) String() string {
	switch t {
	case Deleted:
		return "deleted"
	case Failed:
		return "failed"
	}
	return "put"
}

// Event is one change seen by a watch.
type Event struct {
	Type   EventType
	Record Record
	// Err is set on a Failed event.
	Err error
}

// Lock is the storage a lock lives in. It is deliberately small so that other
// backends (a database row, a Consul key) can implement it; kubelease
// implements it on a coordination.k8s.io/v1 Lease.
//
// Every method must be safe for concurrent use.
type Lock interface {
	// Get returns the current record, or an error wrapping ErrNotFound.
	Get(ctx context.Context) (Record, error)
	// Create creates the record; it fails with ErrConflict if one exists.
	Create(ctx context.Context, r Record) (Record, error)
	// Update replaces the record if its version is still r.Version, and
	// returns the stored record with its new version. A changed version
	// yields ErrConflict, a deleted record ErrNotFound or ErrConflict.
	// Update must never create a record, not even when r.Version was read
	// before the record was deleted: a create is not a compare-and-swap,
	// and the elector holds its own creates a lease duration before leading
	// on them. (Kubernetes creates a Lease that an update names but that
	// does not exist; kubelease sends the UID it read to forbid that.)
	// leadershiptest.TestLock checks this contract.
	Update(ctx context.Context, r Record) (Record, error)
	// Watch streams changes after fromVersion (0: the current state first,
	// as a Put, if the record exists). The channel is closed when the watch
	// ends for any reason, after a Failed event if it ended on an error; the
	// caller then reads the record again and re-watches. A watch the caller
	// may not open yields ErrForbidden.
	Watch(ctx context.Context, fromVersion uint64) (<-chan Event, error)
	// String names the lock in logs and errors, e.g. "Lease default/db".
	// With Config.Restart it also names the lock file in the pod's
	// directory, so it must name one lock the same way in every process.
	String() string
}

// PingAnswerer is implemented by a Lock that carries liveness probes
// (Record.Ping). An elector whose lock implements it answers every probe
// that names its identity, follower and leader alike, so that `leadership
// handover --to ID` can refuse at once to hand over to a replica that is not
// running. The answer changes metadata only: no term ends and no countdown
// moves because of it.
type PingAnswerer interface {
	// AnswerPing writes ping as the record's Pong, changing nothing else, if
	// the record's version is still version, and returns the stored record.
	// A changed version yields ErrConflict, a deleted record ErrNotFound.
	AnswerPing(ctx context.Context, version uint64, ping string) (Record, error)
}

// PingTarget returns the identity a probe (Record.Ping, "identity/nonce")
// asks for, and false if ping is not a probe.
func PingTarget(ping string) (string, bool) {
	i := strings.LastIndexByte(ping, '/')
	if i <= 0 || i == len(ping)-1 {
		return "", false
	}
	return ping[:i], true
}
