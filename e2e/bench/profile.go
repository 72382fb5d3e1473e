package bench

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/leadership-dev/leadership"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Profile is one set of timings both implementations run with.
type Profile struct {
	Name          string        `json:"name"`
	LeaseDuration time.Duration `json:"lease_duration"`
	// client-go's RenewDeadline and RetryPeriod (its followers poll, and
	// its leader renews, every RetryPeriod).
	RenewDeadline time.Duration `json:"client_go_renew_deadline"`
	RetryPeriod   time.Duration `json:"client_go_retry_period"`
}

// DefaultProfile is client-go's documented defaults (15 s / 10 s / 2 s).
// leadership runs with the same LeaseDuration and its own defaults for the
// rest (RenewInterval = LeaseDuration/3 = 5 s, RetryPeriod = 2 s).
func DefaultProfile() Profile {
	return Profile{Name: "default", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// FastProfile is a 2 s lease, client-go's defaults scaled by 2/15.
func FastProfile() Profile {
	return Profile{Name: "fast", LeaseDuration: 2 * time.Second, RenewDeadline: 1333 * time.Millisecond, RetryPeriod: 267 * time.Millisecond}
}

// Impl names an elector implementation under test.
type Impl string

const (
	// Ours is leadership with its defaults at the profile's LeaseDuration.
	Ours Impl = "leadership"
	// OursAtClientGoCadence is leadership renewing as often as client-go
	// does (RenewInterval = the profile's client-go RetryPeriod), to show
	// what the write rate costs at the same cadence.
	OursAtClientGoCadence Impl = "leadership-renew-at-client-go-retry"
	// ClientGo is k8s.io/client-go/tools/leaderelection with a LeaseLock.
	ClientGo Impl = "client-go"
	// idle is a child process that runs no elector: the memory and CPU
	// floor of the bench binary itself.
	idle Impl = "idle"
)

func (i Impl) ours() bool { return i == Ours || i == OursAtClientGoCadence }

// ImplConfig is the configuration in force for one implementation in one
// profile, recorded in the results.
type ImplConfig struct {
	Impl          Impl          `json:"impl"`
	LeaseDuration time.Duration `json:"lease_duration"`
	// leadership: RenewInterval; client-go: RetryPeriod (it renews that often).
	RenewEvery time.Duration `json:"renew_every"`
	// leadership: RetryPeriod; client-go: RetryPeriod (its followers' poll).
	RetryPeriod time.Duration `json:"retry_period"`
	// client-go only.
	RenewDeadline time.Duration `json:"renew_deadline,omitempty"`
}

func (p Profile) config(i Impl) ImplConfig {
	switch i {
	case ClientGo:
		return ImplConfig{Impl: i, LeaseDuration: p.LeaseDuration, RenewEvery: p.RetryPeriod, RetryPeriod: p.RetryPeriod, RenewDeadline: p.RenewDeadline}
	case OursAtClientGoCadence:
		return ImplConfig{Impl: i, LeaseDuration: p.LeaseDuration, RenewEvery: p.RetryPeriod, RetryPeriod: min(leadership.DefaultRetryPeriodCap, p.RetryPeriod/2)}
	default:
		// leadership's defaults, written out so that the JSON says them.
		ri := p.LeaseDuration / 3
		return ImplConfig{Impl: i, LeaseDuration: p.LeaseDuration, RenewEvery: ri, RetryPeriod: min(leadership.DefaultRetryPeriodCap, ri/2)}
	}
}

func (c ImplConfig) ours(identity string, log *slog.Logger) leadership.Config {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return leadership.Config{
		Identity:      identity,
		LeaseDuration: c.LeaseDuration,
		RenewInterval: c.RenewEvery,
		RetryPeriod:   c.RetryPeriod,
		Logger:        log,
	}
}

func (c ImplConfig) clientGo(lock resourcelock.Interface, identity string, cb leaderelection.LeaderCallbacks) (*leaderelection.LeaderElector, error) {
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.LeaseDuration,
		RenewDeadline:   c.RenewDeadline,
		RetryPeriod:     c.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            identity,
		Callbacks:       cb,
	})
	if err != nil {
		return nil, fmt.Errorf("client-go elector: %w", err)
	}
	return le, nil
}
