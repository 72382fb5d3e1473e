package leadership

import (
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultMaxClockDrift = 0.01
	// DefaultRetryPeriodCap bounds the default RetryPeriod, like client-go's
	// 2 s retry period.
	DefaultRetryPeriodCap = 2 * time.Second
	// DefaultStopMargin is how long before its validity ends a term is
	// cancelled by default.
	DefaultStopMargin = 100 * time.Millisecond
	// DefaultRestartMinTerm is RestartProof.MinTerm's default.
	DefaultRestartMinTerm = 30 * time.Second
	// DefaultMaxQuickCrashes is RestartProof.MaxQuickCrashes's default.
	DefaultMaxQuickCrashes = 1
	// None, as MaxClockDrift, StopMargin or RestartProof.MinTerm, selects zero for a field whose
	// zero value selects its default.
	None = -1
)

// Config sets up an Elector. The zero value of every field but Identity
// selects a default; Validate says what is wrong with a bad value.
type Config struct {
	// Identity names this replica in the lock. It must be unique among the
	// candidates: two processes with one identity would both believe they
	// lead until one notices the other's writes (it then steps down, loudly).
	// DefaultIdentity builds a unique one from the host name.
	Identity string

	// LeaseDuration is how long a candidate waits, after it last saw the lock
	// change, before it takes the lock from a silent holder. It is the upper
	// bound on how long a crashed leader goes unreplaced; a shorter one means
	// faster takeover after a crash but more renewals and a leader that steps
	// down sooner when the API server is slow or briefly unreachable. A
	// graceful handover does not wait for it. It must be a whole number of
	// seconds (the Lease stores seconds), at least 1s. Default 15s.
	LeaseDuration time.Duration

	// RenewInterval is how often the leader renews. Each successful renewal
	// extends its validity to LeaseDuration×(1−MaxClockDrift) from the moment
	// the renewal was sent. A shorter interval tolerates more failed renewals
	// before the term runs out, at the cost of one write per interval. It must
	// leave room for at least two renewals inside the validity:
	// 2×RenewInterval ≤ LeaseDuration×(1−MaxClockDrift). Default
	// LeaseDuration/3.
	RenewInterval time.Duration

	// RetryPeriod is the pause after a failed request before the next one
	// (with up to 20% jitter): a failed renewal, a failed acquisition, an
	// unreachable API server, and the polling interval when watching the lock
	// is forbidden. Shorter retries more aggressively against a struggling API
	// server. It must not exceed RenewInterval. Default min(2s,
	// RenewInterval/2).
	RetryPeriod time.Duration

	// MaxClockDrift bounds how much faster or slower one replica's clock may
	// run than another's, as a fraction (0.01 = 1%). The leader gives up its
	// term that fraction of LeaseDuration early, so that its clock running
	// slow cannot make it outlast a successor's wait. Clock offsets (hosts
	// disagreeing on the time of day) do not matter: only each process's own
	// monotonic clock is used. Zero selects the default 0.01; None selects
	// no margin at all (for replicas known to share one clock); other values
	// must be in (0, 0.5).
	MaxClockDrift float64

	// StopMargin is how long before the end of its validity the term's
	// context is cancelled. Timers fire late under GC pauses, CPU throttling
	// or an overloaded node; the margin absorbs that lateness, so that the
	// work is told to stop before a successor could start, not after. A
	// larger margin costs nothing while renewals succeed, and ends a term
	// that cannot renew that much sooner. Zero selects DefaultStopMargin
	// (100ms); None selects no margin. It must be less than half the
	// leader's validity.
	StopMargin time.Duration

	// KeepLockOnStop, when true, makes a leader whose Run context is done
	// leave the lock held: successors take over only after LeaseDuration.
	// The zero value releases it: once the work has returned, the leader
	// writes an empty holder and a successor takes over in milliseconds.
	// Set it only if a quick restart of the same replica should usually win
	// the lock back (Restart does that without keeping the lock). It
	// applies to a stop only: a term that lead or Resign ends is released
	// anyway.
	KeepLockOnStop bool

	// Restart enables the fast takeover of a leader that crashed in place:
	// its container restarted in the same pod. The zero value disables it.
	// See RestartProof.
	Restart RestartProof

	// Logger receives the elector's logs. nil means slog.Default().
	Logger *slog.Logger

	// Hooks are called at notable moments (metrics, events); see Hooks.
	Hooks Hooks
}

// RestartProof lets a replica whose previous process led and died in the
// same pod take the lock back at once, instead of a lease duration later,
// when the kernel proves that every process of that term is gone: while it
// leads, the replica holds an exclusive lock on a file in Dir, inherited by
// every process the term starts (Term.RestartLock), and the lock is free
// again only when all of them have exited. The Lease records the pod UID
// and the file's identity (Record.PodUID, Record.Proof); a restarted
// process that finds its own Identity and PodUID recorded as holder by
// another process, with the proof of the very file whose lock it has just
// taken without waiting, takes the Lease at once with a compare-and-swap
// on the version it observed. In every other case it waits like any
// candidate. It needs a stable Identity (the pod name): DefaultIdentity's
// random suffix changes with every process. See DESIGN.md for what the
// proof covers and what it cannot.
type RestartProof struct {
	// Dir is a directory that survives a container restart and belongs to
	// one pod: an emptyDir volume. Never a hostPath or a volume shared
	// between pods — the proof binds the lock to the pod UID, and a
	// directory another pod can lock would let that pod's lock decide
	// for this one. It must be an absolute path to an existing directory.
	// Empty disables the fast takeover.
	Dir string

	// PodUID is the pod's UID (Downward API metadata.uid; the chart passes
	// it as POD_UID). A restarted container keeps it; a new pod, even one
	// with the same name (a StatefulSet's), gets another, so its proof
	// never matches. Required when Dir is set.
	PodUID string

	// MinTerm is the shortest term that does not count as a quick crash.
	// A leader that crashes soon after it began to lead is likely to crash
	// again (bad input, bad configuration); its restarted process then
	// waits like any follower, so that a healthy replica gets the lead. A
	// longer MinTerm keeps crash-looping leaders away sooner, at the cost
	// of a slow takeover after a genuine one-off crash early in a term.
	// The term is counted on the boot clock from its start to the moment
	// its restarted process judges it, so it includes the restart's delay.
	// Zero selects DefaultRestartMinTerm (30s); None counts no crash as
	// quick.
	MinTerm time.Duration

	// MaxQuickCrashes is how many quick crashes in a row make the
	// restarted process wait like a follower. 1 (the default) waits after
	// the first: fast takeover is for the rare crash of a healthy leader,
	// and one that crashes within MinTerm has just shown it is not. 2
	// forgives one quick crash. Zero selects the default.
	MaxQuickCrashes int

	// Delay is the least time between proving the previous process dead
	// and leading. A dead leader's requests already in flight to a store
	// may still land after the successor starts; a fenced store refuses
	// them by token, but a store that cannot fence can only be given time
	// for them to drain. Longer is safer for such stores and slower to
	// take over. Zero (the default) leads at once. It must be less than
	// LeaseDuration, beyond which the normal wait is shorter anyway.
	Delay time.Duration
}

// enabled reports whether fast takeover after a restart in place is on.
func (r RestartProof) enabled() bool { return r.Dir != "" }

// withDefaults returns a copy with defaults filled in. It does not validate.
func (c Config) withDefaults() Config {
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	switch c.MaxClockDrift {
	case 0:
		c.MaxClockDrift = DefaultMaxClockDrift
	case None:
		c.MaxClockDrift = 0
	}
	switch c.StopMargin {
	case 0:
		c.StopMargin = DefaultStopMargin
	case None:
		c.StopMargin = 0
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.LeaseDuration / 3
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = min(DefaultRetryPeriodCap, c.RenewInterval/2)
	}
	switch c.Restart.MinTerm {
	case 0:
		c.Restart.MinTerm = DefaultRestartMinTerm
	case None:
		c.Restart.MinTerm = 0
	}
	if c.Restart.MaxQuickCrashes == 0 {
		c.Restart.MaxQuickCrashes = DefaultMaxQuickCrashes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ConfigError says which field is wrong, with which value, and why.
type ConfigError struct {
	Field string
	Value any
	Rule  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("leadership: invalid Config.%s %v: %s", e.Field, e.Value, e.Rule)
}

// Validate reports the first invalid field of c after defaults are applied,
// as a *ConfigError.
func (c Config) Validate() error {
	_, err := c.validated()
	return err
}

// maxLeaseDuration keeps leaseDurationSeconds within the Lease's int32.
const maxLeaseDuration = time.Duration(math.MaxInt32) * time.Second

func (c Config) validated() (Config, error) {
	c = c.withDefaults()
	bad := func(field string, v any, rule string, args ...any) (Config, error) {
		return c, &ConfigError{Field: field, Value: v, Rule: fmt.Sprintf(rule, args...)}
	}
	switch {
	case c.Identity == "":
		return bad("Identity", `""`, "required; use leadership.DefaultIdentity() for a unique default")
	case strings.TrimSpace(c.Identity) != c.Identity || strings.ContainsFunc(c.Identity, unicode.IsControl):
		return bad("Identity", fmt.Sprintf("%q", c.Identity), "must not contain control characters or leading/trailing spaces")
	case len(c.Identity) > 1024:
		return bad("Identity", fmt.Sprintf("(%d bytes)", len(c.Identity)), "must be at most 1024 bytes")
	}
	switch {
	case c.LeaseDuration < time.Second:
		return bad("LeaseDuration", c.LeaseDuration, "must be at least 1s")
	case c.LeaseDuration%time.Second != 0:
		return bad("LeaseDuration", c.LeaseDuration, "must be a whole number of seconds, because the Lease stores leaseDurationSeconds as an integer and a rounded value would let a successor take over before this leader's validity ends")
	case c.LeaseDuration > maxLeaseDuration:
		return bad("LeaseDuration", c.LeaseDuration, "must fit leaseDurationSeconds (at most %v)", maxLeaseDuration)
	}
	if math.IsNaN(c.MaxClockDrift) || c.MaxClockDrift < 0 || c.MaxClockDrift >= 0.5 {
		return bad("MaxClockDrift", c.MaxClockDrift, "must be in (0, 0.5), or leadership.None for no margin: it is the fraction of LeaseDuration the leader gives up to tolerate clock rate differences")
	}
	if c.StopMargin < 0 || 2*c.StopMargin >= c.validity() {
		return bad("StopMargin", c.StopMargin, "must be in [0, %v) (half the leader's validity), or leadership.None for no margin", c.validity()/2)
	}
	valid := c.validity()
	switch {
	case c.RenewInterval <= 0:
		return bad("RenewInterval", c.RenewInterval, "must be positive")
	case 2*c.RenewInterval > valid:
		return bad("RenewInterval", c.RenewInterval, "must leave room for at least two renewals inside the leader's validity: 2×RenewInterval must be ≤ LeaseDuration×(1−MaxClockDrift) = %v", valid)
	}
	switch {
	case c.RetryPeriod < time.Millisecond:
		return bad("RetryPeriod", c.RetryPeriod, "must be at least 1ms")
	case c.RetryPeriod > c.RenewInterval:
		return bad("RetryPeriod", c.RetryPeriod, "must not exceed RenewInterval (%v): a failed renewal must be retried before the next one is due", c.RenewInterval)
	}
	if r := c.Restart; r.enabled() {
		switch {
		case !filepath.IsAbs(r.Dir):
			return bad("Restart.Dir", fmt.Sprintf("%q", r.Dir), "must be an absolute path to a directory that survives a container restart and belongs to one pod (an emptyDir volume)")
		case r.PodUID == "":
			return bad("Restart.PodUID", `""`, "required when Restart.Dir is set: the pod's UID from the Downward API (fieldRef metadata.uid), which binds the proof to this pod")
		case strings.TrimSpace(r.PodUID) != r.PodUID || strings.ContainsFunc(r.PodUID, unicode.IsControl) || len(r.PodUID) > 128:
			return bad("Restart.PodUID", fmt.Sprintf("%q", r.PodUID), "must be a pod UID: at most 128 bytes, no spaces or control characters")
		}
	}
	switch r := c.Restart; {
	case r.MinTerm < 0:
		return bad("Restart.MinTerm", r.MinTerm, "must not be negative; leadership.None counts no crash as quick")
	case r.MaxQuickCrashes < 1:
		return bad("Restart.MaxQuickCrashes", r.MaxQuickCrashes, "must be at least 1 (0 selects the default %d)", DefaultMaxQuickCrashes)
	case r.Delay < 0 || r.Delay >= c.LeaseDuration:
		return bad("Restart.Delay", r.Delay, "must be in [0, LeaseDuration %v): beyond it, the normal wait is shorter", c.LeaseDuration)
	}
	return c, nil
}

// validity is how long one successful write keeps the leader valid, counted
// from the moment the write was sent.
func (c Config) validity() time.Duration {
	return time.Duration(float64(c.LeaseDuration) * (1 - c.MaxClockDrift))
}

// termValidity is how long after a successful write was sent the term's
// context is cancelled: the validity less the stop margin.
func (c Config) termValidity() time.Duration { return c.validity() - c.StopMargin }
