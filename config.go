package leadership

import (
	"fmt"
	"log/slog"
	"math"
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
	// None, as MaxClockDrift or StopMargin, selects zero for a field whose
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

	// ReleaseOnStop, when true, makes a leader that stops (its Run context is
	// done, or lead returned) write an empty holder once its work has
	// returned, so that a successor takes over in milliseconds instead of
	// after LeaseDuration. nil means true. Set it to false only if a quick
	// restart of the same replica should usually win the lock back.
	ReleaseOnStop *bool

	// Logger receives the elector's logs. nil means slog.Default().
	Logger *slog.Logger

	// Hooks are called at notable moments (metrics, events); see Hooks.
	Hooks Hooks
}

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
	if c.ReleaseOnStop == nil {
		t := true
		c.ReleaseOnStop = &t
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

func (c Config) releaseOnStop() bool { return c.ReleaseOnStop == nil || *c.ReleaseOnStop }
