// Package chaos injects faults into fleets of leader-election candidates
// and judges what happened. Candidates are real OS processes (the binary
// ./cmd/candidate, built by the suite) that campaign for a Lease on a real
// kube-apiserver (package controlplane), each through its own fault proxy,
// with leadership's elector or client-go's; every unit of their leader work
// is a fenced write to the ledger (package ledger), and package checker
// judges the history: overlaps of accepted work, fencing tokens that fail
// to increase, stale writes refused, takeover times, time without a leader.
//
// The faults: kill -9 and SIGSTOP/SIGCONT of a process, a partition
// (blackhole) and latency on one candidate's path to the API server, a
// kube-apiserver restart, a stall of the etcd that stores Leases, graceful
// restarts and handovers. See Scenarios and docs/RELIABILITY.md.
package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
	"github.com/leadership-dev/leadership/e2e/internal/modversion"
)

// Options configure a Runner. Zero values select the defaults noted.
type Options struct {
	// Transitions is the number of faults (each normally one transition)
	// per scenario and fleet. Default 10.
	Transitions int
	// Restarts is the number of API server restarts and etcd stalls in
	// those scenarios, which cost seconds each. Default min(Transitions, 10).
	Restarts int
	// PerScenario overrides Transitions (or Restarts) for the scenarios it
	// names.
	PerScenario map[string]int
	// Candidates per fleet. Default 3 (the mixed fleet has 2 of each).
	Candidates int
	// LeaseDuration of every candidate. Default 2s.
	LeaseDuration time.Duration
	// Tick is the length of a unit of leader work; Margin the validity a
	// leadership candidate keeps in reserve beyond a tick before it begins
	// a unit. Defaults 50ms and 200ms.
	Tick, Margin time.Duration
	// WaitTimeout bounds every wait for a condition (a new leader, a
	// process exit). Default 60s: generous, for a loaded machine.
	WaitTimeout time.Duration
	// CandidateBinary is a prebuilt ./cmd/candidate; "" builds one.
	CandidateBinary string
	// ClockDrift is the spread of clock rates in the clock-drift scenario:
	// one of its leadership candidates runs at 1+ClockDrift/2, the others
	// at 1−ClockDrift/2, whose ratio is just inside what the library's
	// MaxClockDrift (0.01 by default) absorbs: a leader's validity of
	// L×(1−MaxClockDrift) on a clock that runs (1−D/2)/(1+D/2) slower than
	// its successor's must stay below the successor's wait of L. Default
	// 0.01.
	ClockDrift float64
	// Race builds the candidate with the race detector.
	Race bool
	// Dir keeps the candidates' logs; "" uses a temp dir removed by Close
	// unless a scenario failed.
	Dir string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// rounds is how many faults scenario sc injects per fleet.
func (o Options) rounds(sc Scenario) int {
	if n, ok := o.PerScenario[sc.Name]; ok && n > 0 {
		return n
	}
	if sc.shared != nil {
		return o.Restarts
	}
	return o.Transitions
}

func (o Options) withDefaults() Options {
	if o.Transitions <= 0 {
		o.Transitions = 10
	}
	if o.Restarts <= 0 {
		o.Restarts = min(o.Transitions, 10)
	}
	if o.Candidates <= 1 {
		o.Candidates = 3
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 2 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.Margin <= 0 {
		o.Margin = 200 * time.Millisecond
	}
	if o.ClockDrift <= 0 {
		o.ClockDrift = 0.01
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Runner owns a control plane, a ledger and the candidate binary, and runs
// scenarios on them one at a time.
type Runner struct {
	opts    Options
	cp      *controlplane.ControlPlane
	etcd    *leaseEtcd
	ledger  *ledger.Server
	kube    kubernetes.Interface
	bin     Candidate
	dir     string
	tempDir bool
	failed  bool
	log     *slog.Logger
}

// Start starts the Lease etcd with its stall proxy, a control plane that
// keeps Leases there, the ledger, and builds the candidate binary.
func Start(ctx context.Context, opts Options) (*Runner, error) {
	o := opts.withDefaults()
	r := &Runner{opts: o, log: o.Log, dir: o.Dir}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	var err error
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "leadership-chaos-"); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		r.tempDir = true
	} else if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}

	built := make(chan error, 1)
	if o.CandidateBinary == "" {
		go func() {
			t := time.Now()
			bin, err := BuildCandidate(ctx, r.dir, o.Race)
			r.bin = bin
			r.log.Info("built the candidate", "race", o.Race, "took", time.Since(t).Round(time.Millisecond))
			built <- err
		}()
	} else {
		r.bin = Candidate{Path: o.CandidateBinary}
		built <- nil
	}

	if r.etcd, err = startLeaseEtcd(ctx); err != nil {
		<-built
		return nil, err
	}
	r.cp, err = controlplane.Start(ctx, controlplane.Options{
		ExtraAPIServerFlags: []string{
			r.etcd.override(),
			// The graceful stop of a restart waits up to the request
			// timeout for open watches (every leadership follower has
			// one); at the default 60s a restart is a minute-long outage.
			"--request-timeout=5s",
		},
		Logf: func(f string, a ...any) { r.log.Info(fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		<-built
		return nil, err
	}
	if r.kube, err = kubernetes.NewForConfig(r.cp.Config); err != nil {
		<-built
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if r.ledger, err = ledger.Serve(); err != nil {
		<-built
		return nil, err
	}
	if err := <-built; err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// Close stops everything Start started. The candidates' logs stay if a
// scenario failed or Options.Dir was set.
func (r *Runner) Close() {
	if r.ledger != nil {
		_ = r.ledger.Close()
	}
	if r.cp != nil {
		r.cp.Stop()
	}
	if r.etcd != nil {
		r.etcd.close()
	}
	if r.tempDir && !r.failed {
		_ = os.RemoveAll(r.dir)
	} else if r.dir != "" {
		r.log.Info("candidate logs kept", "dir", r.dir)
	}
}

// Dir is where the candidates' logs are.
func (r *Runner) Dir() string { return r.dir }

// Run runs one scenario by name (see Scenarios).
func (r *Runner) Run(ctx context.Context, name string) (*Result, error) {
	sc, ok := scenarioByName(name)
	if !ok {
		return nil, fmt.Errorf("chaos: unknown scenario %q; known: %s", name, scenarioNames())
	}
	res, err := r.run(ctx, sc)
	if err != nil {
		r.failed = true
	}
	return res, err
}

// logDir is a fleet's directory for its candidates' logs and kubeconfigs.
func (r *Runner) logDir(fleet string) (string, error) {
	d := filepath.Join(r.dir, fleet)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	return d, nil
}

// clientGoVersion is the version of client-go built in.
func clientGoVersion() string { return modversion.Of("k8s.io/client-go") }
