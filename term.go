package leadership

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"time"
)

// Term is one continuous period of leadership. A replica that loses the lock
// and wins it again gets a new Term with a larger Token.
type Term struct {
	// Identity is the holder identity this term was won under.
	Identity string
	// Token is the fencing token: it strictly increases from one term to the
	// next, whoever holds them, including when the same identity wins again
	// after a lapse and when the lock was deleted and re-created. Pass it to
	// any store the work writes to, and have the store refuse a token lower
	// than the highest it has seen: that is the only defence against a
	// leader process that was paused (GC, SIGSTOP, a frozen VM) past its
	// validity and resumes believing it still leads.
	Token uint64
	// AcquireTime is the wall-clock time the term was won (informational).
	AcquireTime time.Time
	// Values are the lock's values (see Record.Values) as they were when
	// the term was won: what earlier terms proclaimed.
	Values map[string]string

	v           *validity
	restartLock *os.File
}

// RestartLock returns the pod-local lock file this term holds
// (Config.Restart), or nil when fast takeover after a restart in place is
// off or the file could not be taken. Pass it to every process the work
// starts (exec.Cmd.ExtraFiles): Go opens files close-on-exec, and a
// process that does not inherit it is not covered by the proof that the
// term is dead, so a restarted replica could take over while it still
// runs. Do not close it or unlock it; the elector closes its own
// descriptor once lead has returned, and the lock is free once every
// process holding it is gone.
func (t Term) RestartLock() *os.File { return t.restartLock }

// Remaining returns how long the term stays valid if no renewal succeeds from
// now on; zero or less means it is over. The term's context is cancelled
// when it reaches zero, whatever the lock's backend does. It can read zero
// for a moment before a renewal sent in time lands and extends the term
// (which is safe: validity counts from the renewal's send time); the term is
// over when its context is done.
func (t Term) Remaining() time.Duration {
	if t.v == nil {
		return 0
	}
	return t.v.remaining()
}

// validity tracks when a term ends, on two clocks: the process's monotonic
// clock (which Go timers use) and the boot clock, which also counts time the
// machine spent suspended. The term ends when either runs out, so a leader
// resumed from suspend cannot act on a term that the rest of the world saw
// expire.
type validity struct {
	now  func() time.Time
	boot func() time.Duration

	mu        sync.Mutex
	until     time.Time     // monotonic
	bootUntil time.Duration // boot clock
}

// extend moves the end of validity to sentAt+d if that is later. sentAt and
// bootAt were read together before the successful write was sent.
func (v *validity) extend(sentAt time.Time, bootAt, d time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if u := sentAt.Add(d); u.After(v.until) {
		v.until = u
	}
	if b := bootAt + d; b > v.bootUntil {
		v.bootUntil = b
	}
}

func (v *validity) remaining() time.Duration {
	v.mu.Lock()
	until, bootUntil := v.until, v.bootUntil
	v.mu.Unlock()
	return min(until.Sub(v.now()), bootUntil-v.boot())
}

// bootDeadline is the end of validity on the boot clock.
func (v *validity) bootDeadline() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.bootUntil
}

// suspended reports whether the boot clock ran out while the monotonic clock
// did not: the sign of a suspend.
func (v *validity) suspended() bool {
	v.mu.Lock()
	until, bootUntil := v.until, v.bootUntil
	v.mu.Unlock()
	return bootUntil-v.boot() <= 0 && until.Sub(v.now()) > 0
}

// DefaultIdentity returns the host name (the pod name on Kubernetes) plus a
// random suffix, so that two processes never share an identity by accident.
func DefaultIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "leadership"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return host + "-" + hex.EncodeToString(b[:])
}
