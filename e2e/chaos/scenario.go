package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// Scenario describes one fault scenario.
type Scenario struct {
	Name  string
	Title string
	// Mixed scenarios run one fleet of both implementations; the others
	// run a leadership fleet and a client-go fleet side by side.
	Mixed bool
	// DenyWatch: candidates may not watch the Lease, so they poll.
	DenyWatch bool
	// Drift: one leadership candidate runs on a fast clock, the others on
	// slow ones (Options.ClockDrift); client-go offers no clock to replace.
	Drift bool
	// Frozen: the scenario stops whole processes (SIGSTOP) past their
	// lease, so refused writes of the frozen processes are expected.
	Frozen bool
	// InPlace: candidates live in pods that survive a restart of their
	// process (leadership's restart proof, Config.Restart).
	InPlace bool

	perFleet func(ctx context.Context, s *session, f *fleet) error
	shared   func(ctx context.Context, s *session, fs []*fleet) error
}

// Scenarios lists every scenario, in the order "all" runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "kill", Title: "kill -9 of the leader", perFleet: killLeader},
		{Name: "sigstop", Title: "SIGSTOP of the leader past the lease, SIGCONT once the successor has written", Frozen: true, perFleet: stopLeader},
		{Name: "partition", Title: "the leader partitioned from the API server (its proxy blackholed)", perFleet: partitionLeader},
		{Name: "latency", Title: "latency spikes on the leader's path to the API server, longer than the renew interval", perFleet: slowLeader},
		{Name: "apiserver-restart", Title: "kube-apiserver restart (a new one on the same etcd)", shared: restartAPIServer},
		{Name: "etcd-stall", Title: "stall of the etcd that stores Leases, then catch-up", shared: stallEtcd},
		{Name: "rolling-restart", Title: "rolling restart of all replicas (SIGTERM, replace, next)", perFleet: rollingRestart},
		{Name: "handover-storm", Title: "handover storm: graceful handovers in a row (SIGTERM to the leader)", perFleet: handoverStorm},
		{Name: "mixed", Title: "mixed fleet (2 leadership + 2 client-go) under kills, alternately -9 and SIGTERM", Mixed: true, perFleet: mixedKills},
		{Name: "hand-edit", Title: "an operator's read-modify-write of the held Lease, annotations kept: leaseDurationSeconds 2→1, renewTime, or a label; every other edit with the leader partitioned", perFleet: handEdit},
		{Name: "manual-release", Title: "an operator empties holderIdentity of the held Lease, annotations kept; every other time with the leader partitioned", perFleet: manualRelease},
		{Name: "delete-polling", Title: "the held Lease deleted while candidates poll (watch forbidden): plain, after a partitioned leader was replaced and healed at once, with the leader partitioned", DenyWatch: true, perFleet: deletePolling},
		{Name: "restart-in-place", Title: "kill -9 of the leader and its restart at once in the same pod (same pod UID and directory; leadership: same identity, with the restart proof)", InPlace: true, perFleet: restartInPlace},
		{Name: "clock-drift", Title: "one candidate's clock fast, the others' slow (rates 1±ClockDrift/2), under partitions (two rounds in three) and kill -9", Drift: true, perFleet: clockDrift},
	}
}

// mixedSize is the size of the mixed fleet: Candidates rounded up to even,
// half of each implementation.
func mixedSize(o Options) int { return max(2, o.Candidates+1) / 2 * 2 }

func scenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

func scenarioNames() string {
	var ns []string
	for _, s := range Scenarios() {
		ns = append(ns, s.Name)
	}
	return strings.Join(ns, ", ")
}

// Result is the outcome of one scenario.
type Result struct {
	Scenario Scenario
	Fleets   []FleetResult
	Took     time.Duration
	Options  Options
	// Notes say what the scenario could not do as described (a fleet not
	// run, clocks not drifted).
	Notes []string
}

// FleetResult is one fleet's report.
type FleetResult struct {
	Label  string
	Report checker.Report
}

// session is one run of a scenario.
type session struct {
	r    *Runner
	o    Options
	name string
}

func (s *session) fault(f *fleet, kind, target string, at ledger.Mono, expectTakeover bool) {
	f.r.ledger.AddFault(ledger.Fault{Fleet: f.name, Kind: kind, Target: target, At: at, ExpectTakeover: expectTakeover})
}

func (s *session) progress(f *fleet, what string, i, n int) {
	s.r.log.Info(fmt.Sprintf("%s %d/%d", what, i+1, n), "scenario", s.name, "fleet", f.label)
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Runner) run(ctx context.Context, sc Scenario) (*Result, error) {
	began := time.Now()
	s := &session{r: r, o: r.opts, name: sc.Name}
	s.o.Transitions, s.o.Restarts = r.opts.rounds(sc), r.opts.rounds(sc)
	type spec struct {
		label string
		impls []string
	}
	var specs []spec
	var notes []string
	if sc.Mixed {
		var impls []string
		for i := range mixedSize(r.opts) {
			impls = append(impls, []string{ledger.ImplLeadership, ledger.ImplClientGo}[i%2])
		}
		specs = []spec{{fmt.Sprintf("mixed (%d+%d)", len(impls)/2, len(impls)/2), impls}}
	} else {
		for _, impl := range []string{ledger.ImplLeadership, ledger.ImplClientGo} {
			if sc.Drift && impl == ledger.ImplClientGo {
				notes = append(notes, "client-go's candidates run on the real clock: client-go "+clientGoVersion()+" offers no clock to replace (LeaderElectionConfig has no Clock field)")
			}
			var impls []string
			for range r.opts.Candidates {
				impls = append(impls, impl)
			}
			specs = append(specs, spec{impl, impls})
		}
	}
	var fleets []*fleet
	defer func() {
		for _, f := range fleets {
			f.stopAll()
		}
	}()
	for _, sp := range specs {
		name := sc.Name + "-" + strings.ReplaceAll(strings.Fields(sp.label)[0], "-", "") + "-" + randomSuffix()
		dir, err := r.logDir(name)
		if err != nil {
			return nil, err
		}
		f := &fleet{r: r, name: name, label: sp.label, logDir: dir, denyWatch: sc.DenyWatch, inPlace: sc.InPlace}
		if sc.Drift {
			d := r.opts.ClockDrift
			// One fast clock, the others slow: the fast one, a follower
			// most of the time, is the first to take over from a slow
			// leader, which is the case MaxClockDrift is for.
			f.rate = func(seq int) float64 {
				if seq%r.opts.Candidates == 1 {
					return 1 + d/2
				}
				return 1 - d/2
			}
		}
		fleets = append(fleets, f)
		for _, impl := range sp.impls {
			if _, err := f.spawn(impl); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range fleets {
		for _, c := range f.all() {
			if err := f.awaitEvent(ctx, c, ledger.EventReady, 0); err != nil {
				return nil, err
			}
		}
		if _, _, err := f.stableLeader(ctx); err != nil {
			return nil, err
		}
	}
	start := ledger.Now()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error
	if sc.shared != nil {
		err = sc.shared(ctx, s, fleets)
	} else {
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, f := range fleets {
			wg.Go(func() {
				if err := sc.perFleet(ctx, s, f); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel()
				}
			})
		}
		wg.Wait()
		err = errors.Join(errs...)
	}
	if err != nil {
		return nil, fmt.Errorf("chaos: scenario %s: %w", sc.Name, err)
	}
	// End with a leader in every fleet: the fleet recovered.
	for _, f := range fleets {
		if _, _, err := f.stableLeader(ctx); err != nil {
			return nil, fmt.Errorf("chaos: scenario %s: after the last fault: %w", sc.Name, err)
		}
	}
	end := ledger.Now()
	res := &Result{Scenario: sc, Options: s.o, Notes: notes}
	var races []string
	for _, f := range fleets {
		f.stopAll()
		r.ledger.Bound(f.name, start, end)
		res.Fleets = append(res.Fleets, FleetResult{Label: f.label, Report: checker.Check(r.ledger.History(f.name))})
		f.mu.Lock()
		for _, c := range f.gone {
			if rep := c.raceReport(); rep != "" {
				races = append(races, fmt.Sprintf("%s (log %s):\n%s", c, c.logPath, rep))
			}
		}
		f.mu.Unlock()
	}
	res.Took = time.Since(began)
	if len(races) > 0 {
		return res, fmt.Errorf("chaos: scenario %s: the race detector reported in %d candidates:\n%s", sc.Name, len(races), strings.Join(races, "\n"))
	}
	return res, nil
}

// killLeader: SIGKILL the leader; a successor must take over after the
// lease runs out; a new candidate replaces the dead one.
func killLeader(ctx context.Context, s *session, f *fleet) error {
	return signalLeaders(ctx, s, f, "kill -9", func(int, *candidate) (syscall.Signal, string) {
		return syscall.SIGKILL, "kill -9"
	})
}

// signalLeaders runs the transitions of a scenario that signals the leader,
// waits for a successor and replaces the signalled candidate; pick chooses
// the signal and the fault's name for transition i.
func signalLeaders(ctx context.Context, s *session, f *fleet, label string, pick func(i int, c *candidate) (syscall.Signal, string)) error {
	for i := range s.o.Transitions {
		s.progress(f, label, i, s.o.Transitions)
		if err := signalOnce(ctx, s, f, func(c *candidate) (syscall.Signal, string) { return pick(i, c) }); err != nil {
			return err
		}
	}
	return nil
}

// signalOnce signals the leader, waits for a successor and replaces the
// signalled candidate.
func signalOnce(ctx context.Context, s *session, f *fleet, pick func(c *candidate) (syscall.Signal, string)) error {
	c, old, err := f.stableLeader(ctx)
	if err != nil {
		return err
	}
	sig, kind := pick(c)
	at := ledger.Now()
	s.fault(f, kind, c.identity, at, true)
	if err := c.signal(sig); err != nil {
		return err
	}
	if err := f.awaitTakeover(ctx, at, old); err != nil {
		return err
	}
	return f.replace(ctx, c)
}

// stopLeader: SIGSTOP the leader in the middle of a unit of work, keep it
// stopped until its successor's work has been accepted, then SIGCONT it.
// It resumes believing it leads and finishes its unit: the fenced store
// must refuse that write.
func stopLeader(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		s.progress(f, "SIGSTOP", i, s.o.Transitions)
		var c *candidate
		var old checker.TermKey
		for attempt := 0; ; attempt++ {
			var err error
			if c, old, err = f.stableLeader(ctx); err != nil {
				return err
			}
			// Under load a leader may lose its term on its own just
			// after it was picked: then pick again.
			wrote, err := f.wroteWithin(ctx, old, ledger.Now(), s.o.LeaseDuration)
			if err != nil {
				return err
			}
			if wrote {
				break
			}
			if attempt == 10 {
				return f.fail(fmt.Errorf("10 leaders in a row stopped writing within %v of being picked", s.o.LeaseDuration))
			}
		}
		// Just after a write the next unit begins; half a tick later the
		// leader is inside it, between its begin and its write. This
		// times the fault; it does not wait for a condition.
		time.Sleep(s.o.Tick / 2)
		at := ledger.Now()
		s.fault(f, "SIGSTOP", c.identity, at, true)
		if err := f.freeze(c); err != nil {
			return err
		}
		if err := f.awaitTakeover(ctx, at, old); err != nil {
			_ = f.thaw(c)
			return err
		}
		if err := f.thaw(c); err != nil {
			return err
		}
		if err := f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term); err != nil {
			return err
		}
	}
	return nil
}

// partitionLeader: blackhole the leader's proxy until a successor leads
// and the old leader has stopped working, then heal.
func partitionLeader(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		s.progress(f, "partition", i, s.o.Transitions)
		if err := partitionOnce(ctx, s, f, "partition"); err != nil {
			return err
		}
	}
	return nil
}

// partitionOnce blackholes the leader's proxy until a successor leads and
// the old leader's work has returned, then heals.
func partitionOnce(ctx context.Context, s *session, f *fleet, kind string) error {
	c, old, err := f.stableLeader(ctx)
	if err != nil {
		return err
	}
	at := ledger.Now()
	s.fault(f, kind, c.identity, at, true)
	c.proxy.Blackhole()
	err = f.awaitTakeover(ctx, at, old)
	if err == nil {
		err = f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term)
	}
	c.proxy.Restore()
	return err
}

// slowLeader: add one-way latency of 35–75% of the lease duration (0.7–1.5s
// for 2s leases: above leadership's renew interval of a third of the lease
// and client-go's retry period) to the leader's proxy until a successor
// leads or five lease durations pass, then remove it. The leader may keep
// its term.
func slowLeader(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		s.progress(f, "latency spike", i, s.o.Transitions)
		c, old, err := f.stableLeader(ctx)
		if err != nil {
			return err
		}
		d := time.Duration(float64(s.o.LeaseDuration) * (0.35 + 0.4*mrand.Float64()))
		at := ledger.Now()
		s.fault(f, fmt.Sprintf("latency %v", d.Round(time.Millisecond)), c.identity, at, false)
		c.proxy.SetLatency(d)
		took, err := f.takeover(ctx, at, old, 5*s.o.LeaseDuration)
		c.proxy.SetLatency(0)
		if err != nil {
			return err
		}
		if took {
			if err := f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term); err != nil {
				return err
			}
		}
	}
	return nil
}

// restartAPIServer: restart kube-apiserver under every fleet at once.
func restartAPIServer(ctx context.Context, s *session, fs []*fleet) error {
	return sharedFault(ctx, s, fs, "API server restart", func(ctx context.Context, i int) error {
		return s.r.cp.RestartAPIServer(ctx)
	})
}

// stallEtcd: stall the Lease etcd for 0.5–2 lease durations, then let it
// catch up.
func stallEtcd(ctx context.Context, s *session, fs []*fleet) error {
	return sharedFault(ctx, s, fs, "etcd stall", func(ctx context.Context, i int) error {
		d := time.Duration(float64(s.o.LeaseDuration) * (0.5 + 1.5*mrand.Float64()))
		s.r.etcd.proxy.Stall()
		// The stall's length is the fault itself.
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		s.r.etcd.proxy.Resume()
		return ctx.Err()
	})
}

// sharedFault injects a fault of the whole control plane Restarts times,
// each after every fleet has a leader, and waits for each fleet to have a
// new term or for its leader to have kept its term.
func sharedFault(ctx context.Context, s *session, fs []*fleet, kind string, inject func(context.Context, int) error) error {
	for i := range s.o.Restarts {
		olds := make([]checker.TermKey, len(fs))
		for j, f := range fs {
			s.progress(f, kind, i, s.o.Restarts)
			_, old, err := f.stableLeader(ctx)
			if err != nil {
				return err
			}
			olds[j] = old
		}
		at := ledger.Now()
		for _, f := range fs {
			s.fault(f, kind, "", at, false)
		}
		if err := inject(ctx, i); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		for j, f := range fs {
			if _, err := f.takeover(ctx, at, olds[j], 3*s.o.LeaseDuration); err != nil {
				return err
			}
		}
	}
	return nil
}

// restartInPlace: SIGKILL the leader and start its process again at once
// in the same pod, as the kubelet restarts a crashed container. A
// leadership candidate proves its predecessor dead and takes over at once;
// a client-go candidate (a new identity per process) waits the lease out,
// like its followers.
func restartInPlace(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		s.progress(f, "kill -9 and restart in place", i, s.o.Transitions)
		c, old, err := f.stableLeader(ctx)
		if err != nil {
			return err
		}
		at := ledger.Now()
		s.fault(f, "kill -9 + restart in place", c.identity, at, true)
		if err := c.signal(syscall.SIGKILL); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, f.r.opts.WaitTimeout)
		err = c.waitExit(wctx)
		cancel()
		if err != nil {
			return f.fail(err, c)
		}
		f.remove(c)
		if _, err := f.spawnIn(c.impl, c.rate, c.pod); err != nil {
			return err
		}
		if err := f.awaitTakeover(ctx, at, old); err != nil {
			return err
		}
	}
	return nil
}

// rollingRestart: restart every member in turn (SIGTERM, wait for it to
// exit, start its replacement, wait until it follows), in rounds, until the
// leader has been restarted Transitions times.
func rollingRestart(ctx context.Context, s *session, f *fleet) error {
	restarts := 0
	for restarts < s.o.Transitions {
		for _, c := range f.all() {
			l, old, err := f.stableLeader(ctx)
			if err != nil {
				return err
			}
			at := ledger.Now()
			if l == c {
				s.progress(f, "rolling restart of the leader", restarts, s.o.Transitions)
				s.fault(f, "rolling restart", c.identity, at, true)
				restarts++
			}
			if err := c.signal(syscall.SIGTERM); err != nil {
				return err
			}
			if err := f.replace(ctx, c); err != nil {
				return err
			}
			if l == c {
				if err := f.awaitTakeover(ctx, at, old); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// handoverStorm: SIGTERM the leader, which hands over gracefully; as soon
// as the successor works, the next one; each stopped candidate is replaced.
func handoverStorm(ctx context.Context, s *session, f *fleet) error {
	return signalLeaders(ctx, s, f, "handover", func(int, *candidate) (syscall.Signal, string) {
		return syscall.SIGTERM, "SIGTERM"
	})
}

// mixedKills: kill the leader of a mixed fleet, alternately with SIGKILL
// and SIGTERM, and replace it with a candidate of the same kind.
func mixedKills(ctx context.Context, s *session, f *fleet) error {
	return signalLeaders(ctx, s, f, "kill", func(i int, c *candidate) (syscall.Signal, string) {
		if i%2 == 1 {
			return syscall.SIGTERM, "SIGTERM " + c.impl
		}
		return syscall.SIGKILL, "kill -9 " + c.impl
	})
}

// LeadershipProblems lists what the result shows against leadership's
// promise. In a leadership fleet: any overlap of lead intervals (a frozen
// process's excepted, see checker), any write refused outside a frozen
// process, any overlap of accepted work, stale write accepted, token that
// failed to increase, misreported interval, or fault without a new leader.
// In a mixed fleet: overlaps that a leadership interval caused (it still
// led when another began), refused writes of leadership's unfrozen
// intervals, tokens of leadership terms that failed to increase, and
// faults without a new leader.
func (r *Result) LeadershipProblems() []string {
	var out []string
	for _, f := range r.Fleets {
		rep := f.Report
		switch {
		case f.Label == ledger.ImplLeadership:
			for _, p := range rep.Problems() {
				out = append(out, f.Label+": "+p)
			}
		case r.Scenario.Mixed:
			for _, o := range rep.LeadOverlaps {
				if o.Earlier.Impl == ledger.ImplLeadership {
					out = append(out, f.Label+": "+o.String())
				}
			}
			for _, iv := range rep.Intervals {
				if iv.Impl == ledger.ImplLeadership && iv.Refused > 0 && !iv.Frozen() {
					out = append(out, fmt.Sprintf("%s: %d writes of leadership term %s refused, its process never frozen", f.Label, iv.Refused, iv.Key))
				}
			}
			for _, v := range rep.Violations {
				if v.Term.Space == ledger.SpaceResourceVersion {
					out = append(out, fmt.Sprintf("%s: token %d of %s did not exceed %d of %s", f.Label, v.Term.Token, v.Term.Key, v.Previous.Token, v.Previous.Key))
				}
			}
			if rep.Missed > 0 {
				out = append(out, fmt.Sprintf("%s: %d faults were not followed by a new leader", f.Label, rep.Missed))
			}
		}
	}
	return out
}
