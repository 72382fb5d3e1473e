//go:debug randseednop=0

package leadership_test

// A deterministic simulation of the real elector (issue 9): several
// electors run the library's code unchanged inside a testing/synctest bubble,
// where time is virtual and advances only when every goroutine waits, each on
// its own drifting clock, against an in-memory lock (internal/simlock) that
// injects latency, loss, late-applied writes, partitions, deletions and hand
// edits from a seed. Each elector's lead function records its work interval
// [start, return] on the bubble's clock, the one global time of the
// simulation, and a checker asserts that no two intervals overlap, that
// tokens increase from term to term, and that once the faults stop a leader
// is elected within a bound and stays.
//
//	go test -run 'TestSimulation$' -v .                             # the CI budget
//	go test -run 'TestSimulation$' -v -timeout 0 -sim.duration 3h .  # a long run
//	go test -run 'TestSimulation$' -v -sim.seed 1234 .               # replay one seed
//	go test -run 'TestSimulation$' -v -sim.faults all -sim.keepgoing -sim.duration 2m .
//
// What replays exactly: every fault decision (latency, loss, which requests
// land late, the chaos schedule, clock rates, work durations) is drawn from
// the seed and a per-connection, per-kind request counter, so the same seed
// meets the same faults as long as each elector sends its requests in the
// same order. TestSimulationReplay shows exact replays for the kinds it runs;
// docs/SIMULATION.md says what is and is not reproducible.
// What does not: the Go scheduler still picks among goroutines that are
// runnable at the same virtual instant, select picks among ready cases at
// random, and the elector draws retry jitter from math/rand's global source.
// A replay of a seed usually repeats the history; where a failure depends on
// such a tie, a replay may take another path (run it a few times).

import (
	"context"
	"flag"
	"fmt"
	"hash"
	"hash/fnv"
	"log/slog"
	randv1 "math/rand"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/internal/simclock"
	"github.com/leadership-dev/leadership/internal/simlock"
)

var (
	simDuration  = flag.Duration("sim.duration", 0, "wall-clock budget of TestSimulation (0: the CI budget)")
	simTerms     = flag.Int64("sim.terms", 0, "stop TestSimulation once this many terms were simulated (0: no limit)")
	simSeed      = flag.Uint64("sim.seed", 0, "run exactly this seed (a replay)")
	simBase      = flag.Uint64("sim.base", 0, "first seed of the sweep (0: derived from the time)")
	simFaults    = flag.String("sim.faults", "default", "fault kinds: default, all, or a comma-separated list of: "+strings.Join(allFaults, ", ")+"; -kind removes one")
	simKeepGoing = flag.Bool("sim.keepgoing", false, "keep running seeds after a violation and summarise them at the end")
	simElectors  = flag.Int("sim.electors", 0, "number of electors (0: 3 to 5, from the seed)")
	simDriftX    = flag.Float64("sim.driftx", 1, "clock-rate spread as a multiple of MaxClockDrift (above 1 breaks the protocol's assumption: a self-test of the checker)")
	simShow      = flag.Bool("sim.show", false, "print the history of every run, also without a violation")
	simHistory   = flag.Int("sim.history", 120, "lines of history printed with a violation")
)

// allFaults are the fault kinds the simulation can inject. Latency is always
// on.
var allFaults = []string{
	"loss",            // requests and responses lost (ambiguous outcomes)
	"slow",            // slow legs: writes applied after the client gave up
	"partition",       // an elector cut off in both directions for a while
	"watchend",        // watch streams ended by the server
	"crash",           // an elector process dies (in-flight writes may still land) and restarts
	"drift",           // clock rates spread within ±MaxClockDrift
	"resign",          // the leader resigns
	"delete",          // an operator deletes the lock
	"edit-holder",     // an operator writes another holder
	"edit-duration",   // an operator changes leaseDuration, keeping the holder
	"edit-renewtime",  // an operator changes renewTime, keeping the holder
	"edit-empty",      // an operator empties the holder, without the release mark
	"edit-meta",       // a version bump with identical content (a label change)
	"handover",        // an operator requests a handover to a running elector or to any
	"handover-absent", // an operator requests a handover to a replica that never runs
	"twin",            // one more elector runs under the identity of another (a copied Deployment)
	"proclaim",        // leaders write values (Elector.Proclaim), extra writes within a term
	"restore",         // etcd restored from a backup without --bump-revision (not in "all": see below)
	"inplace",         // crashed processes restart in place: Config.Restart, each process's pod directory and UID kept
}

// contractBreakers are fault kinds that break the Lock contract itself:
// after a restore without --bump-revision, versions are reused, so a
// compare-and-swap cannot tell two records apart and no elector can be
// safe. With them, overlaps and token regressions after the fault are
// reported as notes, and only liveness is judged. "all" leaves them out.
var contractBreakers = []string{"restore"}

// knownHoles are fault kinds under which the elector is known to break its
// promise, left out of the default set. Issue 9's holes (edit-duration,
// edit-empty, delete, handover-absent) were here until its fixes landed;
// TestSimulationIssue9Seeds keeps a seed for each.
var knownHoles = []string{}

func parseFaults(spec string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "all":
			for _, k := range allFaults {
				set[k] = !slices.Contains(contractBreakers, k)
			}
		case f == "default":
			for _, k := range allFaults {
				set[k] = !slices.Contains(knownHoles, k) && !slices.Contains(contractBreakers, k)
			}
		case f == "none":
			clear(set)
		case strings.HasPrefix(f, "-") && slices.Contains(allFaults, f[1:]):
			delete(set, f[1:])
		case slices.Contains(allFaults, f):
			set[f] = true
		default:
			return nil, fmt.Errorf("-sim.faults: unknown fault kind %q; known: default, all, none, %s (prefix - to remove)", f, strings.Join(allFaults, ", "))
		}
	}
	for k, on := range set {
		if !on {
			delete(set, k)
		}
	}
	return set, nil
}

func faultList(set map[string]bool) string {
	var out []string
	for _, k := range allFaults {
		if set[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// scenario is everything a run is made of, derived from its seed.
type scenario struct {
	seed     uint64
	faults   map[string]bool
	electors int
	lease    time.Duration
	drift    float64 // MaxClockDrift
	rates    []float64
	phase    time.Duration // faults happen in [0, phase)
	quiet    time.Duration // then none for this long
	net      simlock.Faults
	quietNet simlock.Faults
	// chaosGap is the mean time between two chaos events.
	chaosGap time.Duration
}

func newScenario(seed uint64, faults map[string]bool, electors int, driftX float64) scenario {
	r := rand.New(rand.NewPCG(seed, 0x5ce0a110))
	sc := scenario{seed: seed, faults: faults, electors: electors}
	if sc.electors <= 0 {
		sc.electors = 3 + r.IntN(3)
	}
	sc.lease = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second}[r.IntN(4)]
	sc.drift = []float64{0.01, 0.02, 0.05, 0.1}[r.IntN(4)]
	for range sc.electors + 1 { // one more for a twin
		rate := 1.0
		if faults["drift"] {
			// Rates within a spread of MaxClockDrift: the fastest clock runs at
			// most 1+drift times the slowest. Half the electors sit at an
			// extreme, where a wrong margin shows first.
			spread := sc.drift * driftX
			switch r.IntN(4) {
			case 0:
				rate = 1
			case 1:
				rate = 1 + spread
			default:
				rate = 1 + spread*r.Float64()
			}
		}
		sc.rates = append(sc.rates, rate)
	}
	sc.phase = 120 * sc.lease
	sc.chaosGap = sc.lease * 3 / 2
	L := sc.lease
	sc.net = simlock.Faults{
		MinLatency:    time.Millisecond,
		MaxLatency:    L / 20,
		ClientTimeout: 2 * L,
	}
	if faults["slow"] {
		sc.net.SlowProb = 0.03
		sc.net.SlowMax = 2 * L
	}
	if faults["loss"] {
		sc.net.LossRequest = 0.02
		sc.net.LossResponse = 0.02
	}
	if faults["watchend"] {
		sc.net.WatchLifetime = 10 * L
	}
	sc.quietNet = simlock.Faults{MinLatency: time.Millisecond, MaxLatency: L / 50, ClientTimeout: 2 * L}
	// The quiet phase must outlast the liveness bound (which depends on the
	// longest lease duration announced, known only after the run) plus a
	// few lease durations of stable leadership.
	sc.quiet = 40 * L
	return sc
}

func (sc scenario) String() string {
	return fmt.Sprintf("seed=%d electors=%d lease=%v maxClockDrift=%v rates=%.4f faults=%s", sc.seed, sc.electors, sc.lease, sc.drift, sc.rates, faultList(sc.faults))
}

// epoch is where a synctest bubble's clock starts.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func rel(t time.Time) string { return fmt.Sprintf("%11.6fs", t.Sub(epoch).Seconds()) }

// history keeps the latest steps of a run for the report of a violation.
type history struct {
	mu       sync.Mutex
	ring     []histEntry
	next     int
	full     bool
	maxLease time.Duration // the longest leaseDuration any write announced
	// fast counts fast takeovers after a restart in place ("inplace").
	fast int
}

type histEntry struct {
	at    time.Time
	who   string
	text  string
	entry *simlock.Entry
}

func newHistory(n int) *history { return &history{ring: make([]histEntry, n)} }

func (h *history) add(e histEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = e
	h.next++
	if h.next == len(h.ring) {
		h.next, h.full = 0, true
	}
}

func (h *history) trace(e simlock.Entry) {
	if e.Err == nil && e.Rec.LeaseDuration > 0 {
		h.mu.Lock()
		h.maxLease = max(h.maxLease, e.Rec.LeaseDuration)
		h.mu.Unlock()
	}
	h.add(histEntry{at: e.At, entry: &e})
}

func (h *history) note(who, format string, args ...any) {
	h.add(histEntry{at: time.Now(), who: who, text: fmt.Sprintf(format, args...)})
}

func (h *history) longestLease() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxLease
}

// since returns the entries at or after from, at most n (the latest).
func (h *history) since(from time.Time, n int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var all []histEntry
	if h.full {
		all = append(all, h.ring[h.next:]...)
	}
	all = append(all, h.ring[:h.next]...)
	var out []string
	for _, e := range all {
		if e.at.Before(from) {
			continue
		}
		if e.entry != nil {
			out = append(out, rel(e.at)+" "+e.entry.String())
		} else {
			out = append(out, fmt.Sprintf("%s %-8s %s", rel(e.at), e.who, e.text))
		}
	}
	if len(out) > n {
		out = append([]string{fmt.Sprintf("… %d earlier lines left out", len(out)-n)}, out[len(out)-n:]...)
	}
	return out
}

// logHandler puts the elector's own log lines into the history.
type logHandler struct {
	h   *history
	who string
}

func (l *logHandler) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelInfo }
func (l *logHandler) WithAttrs([]slog.Attr) slog.Handler             { return l }
func (l *logHandler) WithGroup(string) slog.Handler                  { return l }
func (l *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("log: ")
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.h.add(histEntry{at: time.Now(), who: l.who, text: b.String()})
	if strings.HasPrefix(r.Message, "the previous process of this replica led and died in this pod") {
		l.h.mu.Lock()
		l.h.fast++
		l.h.mu.Unlock()
	}
	return nil
}

// interval is one term's work, on the bubble's clock.
type interval struct {
	who        string // elector incarnation
	token      uint64
	start, end time.Time
	open       bool
}

type violation struct {
	at   time.Time
	what string
	// from is where the history worth reading starts.
	from time.Time
}

// checker judges the work intervals as they start and end.
type checker struct {
	mu         sync.Mutex
	open       []*interval
	lastToken  uint64
	terms      int
	violations []violation
	failed     chan struct{}
	hist       *history
	// broken: the store broke its contract (a restore); safety is no
	// longer judged, only noted, and counted in excused.
	broken  bool
	excused int
	// print is a fingerprint of every closed interval, in order of their
	// ends: two runs with equal fingerprints had the same terms at the same
	// virtual instants.
	print hash.Hash64
}

func newChecker(h *history) *checker {
	return &checker{failed: make(chan struct{}), hist: h, print: fnv.New64a()}
}

func (c *checker) breakContract() {
	c.mu.Lock()
	c.broken = true
	c.mu.Unlock()
}

// unsafe reports a safety violation, or only notes it once the store broke
// its contract.
func (c *checker) unsafe(v violation) {
	if c.broken {
		c.excused++
		c.hist.note("CHECKER", "after a restore (not judged): %s", v.what)
		return
	}
	c.violate(v)
}

func (c *checker) violate(v violation) {
	c.violations = append(c.violations, v)
	c.hist.note("CHECKER", "VIOLATION: %s", v.what)
	if len(c.violations) == 1 {
		close(c.failed)
	}
}

func (c *checker) start(who string, token uint64, at time.Time) *interval {
	c.mu.Lock()
	defer c.mu.Unlock()
	iv := &interval{who: who, token: token, start: at, open: true}
	c.terms++
	c.hist.note(who, "WORK STARTS token=%d", token)
	if token <= c.lastToken {
		c.unsafe(violation{at: at, from: at, what: fmt.Sprintf("%s's term has token %d, not above the previous term's %d", who, token, c.lastToken)})
	}
	c.lastToken = max(c.lastToken, token)
	c.open = append(c.open, iv)
	return iv
}

// end closes iv at at (once: a crash closes it first, at the crash). Two
// intervals overlap iff one of them is still open when the other ends,
// having started strictly before that end.
func (c *checker) end(iv *interval, at time.Time, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !iv.open {
		return
	}
	iv.open, iv.end = false, at
	fmt.Fprintf(c.print, "%s %d %d %d;", iv.who, iv.token, iv.start.UnixNano(), at.UnixNano())
	c.open = slices.DeleteFunc(c.open, func(o *interval) bool { return o == iv })
	c.hist.note(iv.who, "WORK ENDS token=%d (%s)", iv.token, why)
	for _, o := range c.open {
		if o.start.Before(at) {
			first, second := iv.start, o.start
			if second.Before(first) {
				first, second = second, first
			}
			c.unsafe(violation{at: at, from: first, what: fmt.Sprintf(
				"two leaders: %s worked [%s, %s] (token %d) while %s worked from %s (token %d): overlap %v",
				iv.who, rel(iv.start), rel(at), iv.token, o.who, rel(o.start), o.token, at.Sub(second))})
		}
	}
}

func (c *checker) crash(who string, at time.Time) {
	c.mu.Lock()
	var mine []*interval
	for _, o := range c.open {
		if o.who == who {
			mine = append(mine, o)
		}
	}
	c.mu.Unlock()
	for _, o := range mine {
		c.end(o, at, "process killed")
	}
}

// settled checks liveness at the end of the quiet phase: exactly one elector
// works, and it has since no later than by.
func (c *checker) settled(now, quietAt, by time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(c.open) == 0:
		c.violate(violation{at: now, from: by, what: fmt.Sprintf("no leader at the end: faults stopped at %s, a leader was due by %s", rel(quietAt), rel(by))})
	case len(c.open) == 1 && c.open[0].start.After(by):
		c.violate(violation{at: now, from: quietAt, what: fmt.Sprintf("leadership not settled: faults stopped at %s, the current leader %s started only at %s, after the bound %s",
			rel(quietAt), c.open[0].who, rel(c.open[0].start), rel(by))})
	}
}

func (c *checker) failures() []violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// proc is one elector process, restarted under the same identity after a
// crash with a new incarnation.
type proc struct {
	s     *sim
	idx   int
	name  string // the identity
	label string // the name in the history: the identity, primed for a twin
	rate  float64
	// dir is the pod's directory for the restart proof ("inplace"),
	// kept across incarnations like an emptyDir; "" without.
	dir string

	mu          sync.Mutex
	inc         int
	who         string
	conn        *simlock.Conn
	el          *leadership.Elector
	stop        context.CancelFunc
	down        bool
	partitioned bool
	terms       uint64
	leading     bool
}

type sim struct {
	sc      scenario
	store   *simlock.Store
	hist    *history
	chk     *checker
	quietAt time.Time
	procs   []*proc
	runs    sync.WaitGroup
	chaos   *rand.Rand
	backup  *simlock.Snapshot
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inc++
	inc := p.inc
	p.who = fmt.Sprintf("%s#%d", p.label, inc)
	p.conn = p.s.store.Connect(p.who, uint64(p.idx)<<16|uint64(inc))
	clk := simclock.New(p.rate)
	cfg := leadership.Config{
		Identity:      p.name,
		LeaseDuration: p.s.sc.lease,
		MaxClockDrift: p.s.sc.drift,
		Logger:        slog.New(&logHandler{h: p.s.hist, who: p.who}),
	}
	if p.dir != "" {
		// A pod per process (a twin is a copied Deployment's pod), whose
		// directory and UID survive its crashes. No crash counts as
		// quick: every restart is a candidate for the fast takeover.
		cfg.Restart = leadership.RestartProof{Dir: p.dir, PodUID: "uid-" + p.label, MinTerm: leadership.None}
	}
	var lock leadership.Lock = p.conn
	boot := clk.Elapsed
	if p.dir != "" {
		lock = podLock{p.conn}
		// The boot clock is the host's, not the process's: a restarted
		// process reads on from where its predecessor's clock was (the
		// restart proof measures terms on it).
		since := time.Since(epoch)
		boot = func() time.Duration { return since + clk.Elapsed() }
	}
	el, err := leadership.NewSimElector(lock, cfg, clk, boot)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.el, p.stop, p.down = el, cancel, false
	who := p.who
	p.s.hist.note(who, "process starts (clock rate %.4f)", p.rate)
	p.s.runs.Go(func() {
		if err := el.Run(ctx, p.lead(inc, who)); err != nil {
			p.s.hist.note(who, "Run: %v", err)
		}
	})
	return nil
}

// podLock names the simulated lock the same in every incarnation, as a
// Lease is named by namespace and name: Config.Restart derives the lock
// file's name from Lock.String.
type podLock struct{ *simlock.Conn }

func (podLock) String() string { return "simlock" }

func (p *proc) lead(inc int, who string) leadership.LeadFunc {
	return func(ctx context.Context, t leadership.Term) error {
		now := time.Now()
		iv := p.s.chk.start(who, t.Token, now)
		p.mu.Lock()
		p.terms++
		n := p.terms
		p.leading = p.inc == inc
		p.mu.Unlock()
		r := rand.New(rand.NewPCG(p.s.sc.seed, uint64(p.idx)<<48|uint64(inc)<<32|n))
		d := time.Duration(r.ExpFloat64() * float64(2*p.s.sc.lease))
		if p.s.sc.faults["proclaim"] && r.IntN(2) == 0 {
			// A write within the term, at a random moment of it.
			at := time.Duration(r.Int64N(int64(p.s.sc.lease)))
			p.mu.Lock()
			el := p.el
			p.mu.Unlock()
			p.s.runs.Go(func() {
				tm := time.NewTimer(at)
				defer tm.Stop()
				select {
				case <-ctx.Done():
					return
				case <-tm.C:
				}
				err := el.Proclaim(ctx, t, map[string]string{"by": who, "n": fmt.Sprint(n)})
				p.s.hist.note(who, "Proclaim: %v", err)
			})
		}
		var done <-chan time.Time
		if now.Add(d).Before(p.s.quietAt) {
			// In the quiet phase the leader keeps its work, so that the
			// liveness check sees whether leadership settles.
			tm := time.NewTimer(d)
			defer tm.Stop()
			done = tm.C
		}
		why := "work done"
		select {
		case <-ctx.Done():
			why = "context: " + context.Cause(ctx).Error()
		case <-done:
		}
		p.s.chk.end(iv, time.Now(), why)
		p.mu.Lock()
		if p.inc == inc {
			p.leading = false
		}
		p.mu.Unlock()
		return nil
	}
}

func (p *proc) crash() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return
	}
	p.down, p.leading, p.partitioned = true, false, false
	p.s.hist.note(p.who, "FAULT: process killed")
	p.conn.Kill()
	p.s.chk.crash(p.who, time.Now())
	p.stop()
}

func (s *sim) live() []*proc {
	var out []*proc
	for _, p := range s.procs {
		p.mu.Lock()
		if !p.down {
			out = append(out, p)
		}
		p.mu.Unlock()
	}
	return out
}

// victim picks a live process, the leader half of the time.
func (s *sim) victim() *proc {
	live := s.live()
	if len(live) == 0 {
		return nil
	}
	if s.chaos.IntN(2) == 0 {
		for _, p := range live {
			p.mu.Lock()
			l := p.leading
			p.mu.Unlock()
			if l {
				return p
			}
		}
	}
	return live[s.chaos.IntN(len(live))]
}

func (s *sim) exp(mean time.Duration) time.Duration {
	return time.Duration(s.chaos.ExpFloat64() * float64(mean))
}

// durations an operator may write: shorter and longer than the electors'.
func (s *sim) someDuration() time.Duration {
	L := s.sc.lease
	return max(time.Second, []time.Duration{time.Second, L / 2, 2 * L, 4 * L}[s.chaos.IntN(4)].Truncate(time.Second))
}

// inject performs one chaos event of a kind drawn from the enabled ones.
func (s *sim) inject(kinds []string) {
	kind := kinds[s.chaos.IntN(len(kinds))]
	op := "operator"
	names := []string{"ghost"}
	for _, p := range s.procs {
		names = append(names, p.name)
	}
	switch kind {
	case "partition":
		p := s.victim()
		if p == nil {
			return
		}
		d := s.exp(2 * s.sc.lease)
		p.mu.Lock()
		if p.down || p.partitioned {
			p.mu.Unlock()
			return
		}
		p.partitioned = true
		conn, who := p.conn, p.who
		p.mu.Unlock()
		s.hist.note(who, "FAULT: partitioned for %v", d.Round(time.Millisecond))
		conn.Partition(true)
		s.runs.Go(func() {
			time.Sleep(d)
			p.mu.Lock()
			if p.conn == conn {
				p.partitioned = false
			}
			p.mu.Unlock()
			s.hist.note(who, "FAULT: partition heals")
			conn.Partition(false)
		})
	case "crash":
		p := s.victim()
		if p == nil {
			return
		}
		p.crash()
		down := s.exp(s.sc.lease)
		s.runs.Go(func() {
			time.Sleep(down)
			if time.Now().Before(s.quietAt) {
				if err := p.restart(); err != nil {
					s.hist.note(p.name, "restart: %v", err)
				}
			}
		})
	case "resign":
		p := s.victim()
		if p == nil {
			return
		}
		p.mu.Lock()
		el, who, leading := p.el, p.who, p.leading
		p.mu.Unlock()
		if !leading {
			return
		}
		s.hist.note(who, "FAULT: Resign called")
		s.runs.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*s.sc.lease)
			defer cancel()
			_ = el.Resign(ctx)
		})
	case "delete":
		s.store.Delete(op)
	case "edit-holder":
		h := names[s.chaos.IntN(len(names))]
		s.store.Edit(op, "holder", func(r *leadership.Record) bool {
			if r.HolderIdentity == h {
				return false
			}
			r.HolderIdentity = h
			return true
		})
	case "edit-duration":
		d := s.someDuration()
		s.store.Edit(op, "duration", func(r *leadership.Record) bool {
			if r.HolderIdentity == "" || r.LeaseDuration == d {
				return false
			}
			r.LeaseDuration = d
			return true
		})
	case "edit-renewtime":
		d := time.Duration(s.chaos.Int64N(int64(4*s.sc.lease))) - 2*s.sc.lease
		s.store.Edit(op, "renewtime", func(r *leadership.Record) bool {
			if r.HolderIdentity == "" {
				return false
			}
			r.RenewTime = r.RenewTime.Add(d)
			return true
		})
	case "edit-empty":
		clientGo := s.chaos.IntN(2) == 0
		s.store.Edit(op, "empty-holder", func(r *leadership.Record) bool {
			if r.HolderIdentity == "" {
				return false
			}
			// A kubectl edit that clears the holder, or a client-go
			// release (leaseDurationSeconds 1). Neither carries the mark
			// that the holder's own release carries; Token is cleared as
			// well so that no encoding of the mark can be forged here.
			r.HolderIdentity, r.Token = "", 0
			if clientGo {
				r.LeaseDuration = time.Second
			}
			return true
		})
	case "restore":
		if s.backup == nil || s.chaos.IntN(2) == 0 {
			b := s.store.Backup()
			s.backup = &b
			s.hist.note(op, "FAULT: backup at v%d", b.Version())
			return
		}
		s.chk.breakContract()
		s.store.Restore(op, *s.backup)
		s.backup = nil
	case "edit-meta":
		s.store.Edit(op, "meta", func(*leadership.Record) bool { return true })
	case "handover", "handover-absent":
		to := "ghost"
		if kind == "handover" {
			to = append(names[1:], leadership.AnyOtherHolder)[s.chaos.IntN(len(names))]
		}
		s.store.Edit(op, "preferred="+to, func(r *leadership.Record) bool {
			if r.HolderIdentity == "" || r.PreferredHolder == to {
				return false
			}
			r.PreferredHolder = to
			return true
		})
	}
}

func (p *proc) restart() error {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if !down {
		return nil
	}
	return p.start()
}

// outcome is what one run produced.
type outcome struct {
	sc         scenario
	terms      int
	virtual    time.Duration
	violations []violation
	report     string
	// fingerprint of the terms (see checker.print).
	fingerprint uint64
	// excused counts overlaps not judged after a restore.
	excused int
	// fast counts fast takeovers after a restart in place.
	fast int
}

// runScenario runs one scenario in its own synctest bubble.
func runScenario(t *testing.T, sc scenario) outcome {
	var out outcome
	out.sc = sc
	synctest.Test(t, func(t *testing.T) {
		// The elector draws its retry jitter from math/rand's global
		// source (jitter in clock.go). Seeding it
		// makes replays repeat far more often; randseednop=0 above keeps
		// Seed from being a no-op.
		//lint:ignore SA1019 the only way to make the elector's jitter repeatable
		randv1.Seed(int64(sc.seed))
		hist := newHistory(4096)
		s := &sim{sc: sc, hist: hist, chk: newChecker(hist), quietAt: time.Now().Add(sc.phase),
			chaos: rand.New(rand.NewPCG(sc.seed, 0xc4a05))}
		s.store = simlock.NewStore(sc.seed, hist.trace)
		s.store.SetFaults(sc.net)
		for i := range sc.electors {
			name := string(rune('a' + i))
			s.procs = append(s.procs, &proc{s: s, idx: i, name: name, label: name, rate: sc.rates[i]})
		}
		if sc.faults["twin"] {
			s.procs = append(s.procs, &proc{s: s, idx: sc.electors, name: "a", label: "a'", rate: sc.rates[len(sc.rates)-1]})
		}
		if sc.faults["inplace"] {
			base := t.TempDir()
			for _, p := range s.procs {
				p.dir = filepath.Join(base, fmt.Sprint(p.idx))
				if err := os.Mkdir(p.dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, p := range s.procs {
			if err := p.start(); err != nil {
				t.Fatal(err)
			}
		}
		var kinds []string
		for _, k := range allFaults {
			if sc.faults[k] && !slices.Contains([]string{"loss", "slow", "watchend", "drift", "twin", "proclaim", "inplace"}, k) {
				kinds = append(kinds, k)
			}
		}
		// The fault phase.
	chaos:
		for time.Now().Before(s.quietAt) {
			d := s.exp(sc.chaosGap)
			if left := time.Until(s.quietAt); d > left {
				d = left
			}
			tm := time.NewTimer(d)
			select {
			case <-s.chk.failed:
				tm.Stop()
				break chaos
			case <-tm.C:
			}
			if len(kinds) > 0 && time.Now().Before(s.quietAt) {
				s.inject(kinds)
			}
		}
		// The quiet phase: the network heals, crashed processes restart.
		failed := len(s.chk.failures()) > 0
		if !failed {
			s.hist.note("SIM", "QUIET PHASE: faults stop")
		}
		s.store.SetFaults(sc.quietNet)
		for _, p := range s.procs {
			p.mu.Lock()
			down, conn := p.down, p.conn
			p.partitioned = false
			p.mu.Unlock()
			if down {
				if err := p.restart(); err != nil {
					t.Fatal(err)
				}
			} else {
				conn.Partition(false)
			}
		}
		quiet := sc.quiet
		if failed {
			quiet = 0
		}
		end := time.NewTimer(quiet)
		select {
		case <-s.chk.failed:
		case <-end.C:
		}
		now := time.Now()
		// The bound: writes still in flight when the faults stopped land
		// within the slowest leg, a client gives up within its timeout, and
		// then a candidate waits at most the longest lease duration
		// announced, and a deletion learned by a read another; three times
		// it leaves room for a failed attempt.
		bound := sc.net.SlowMax + sc.net.ClientTimeout + 3*max(sc.lease, hist.longestLease())
		if len(s.chk.failures()) == 0 && now.Sub(s.quietAt) >= bound {
			s.chk.settled(now, s.quietAt, s.quietAt.Add(bound))
		}
		for _, p := range s.procs {
			p.mu.Lock()
			p.stop()
			p.mu.Unlock()
		}
		s.runs.Wait()
		s.store.Wait()
		out.virtual = time.Since(epoch)
		out.terms = s.chk.terms
		hist.mu.Lock()
		out.fast = hist.fast
		hist.mu.Unlock()
		out.fingerprint = s.chk.print.Sum64()
		out.excused = s.chk.excused
		out.violations = s.chk.failures()
		if *simShow && len(out.violations) == 0 {
			out.report = strings.Join(hist.since(epoch, *simHistory), "\n")
		}
		if len(out.violations) > 0 {
			v := out.violations[0]
			from := v.from.Add(-2*max(sc.lease, hist.longestLease()) - sc.net.SlowMax)
			out.report = strings.Join(hist.since(from, *simHistory), "\n")
		}
	})
	return out
}

// CI budgets, wall clock; the race detector slows the simulation about
// tenfold, and the library's suite runs with it.
const (
	ciBudget     = 30 * time.Second
	ciBudgetRace = 20 * time.Second
)

func TestSimulation(t *testing.T) {
	faults, err := parseFaults(*simFaults)
	if err != nil {
		t.Fatal(err)
	}
	budget := *simDuration
	if budget == 0 {
		budget = ciBudget
		if raceEnabled {
			budget = ciBudgetRace
		}
	}
	seeds := func(yield func(uint64) bool) {
		if *simSeed != 0 {
			yield(*simSeed)
			return
		}
		base := *simBase
		if base == 0 {
			base = uint64(time.Now().UnixNano())&(1<<40-1) | 1 // never 0: -sim.seed 0 means none
		}
		for s := base; ; s++ {
			if !yield(s) {
				return
			}
		}
	}
	started := time.Now()
	var runs, terms, excused, fast int
	var virtual time.Duration
	var failed []outcome
	first, last := uint64(0), uint64(0)
	for seed := range seeds {
		if first == 0 {
			first = seed
		}
		last = seed
		o := runScenario(t, newScenario(seed, faults, *simElectors, *simDriftX))
		runs++
		terms += o.terms
		virtual += o.virtual
		excused += o.excused
		fast += o.fast
		if *simShow && len(o.violations) == 0 {
			t.Logf("%s: %d terms\n%s", o.sc, o.terms, o.report)
		}
		if len(o.violations) > 0 {
			failed = append(failed, o)
			t.Errorf("VIOLATION with %s\n%s\nreplay: go test -run 'TestSimulation$' -v -sim.seed %d -sim.faults %s -sim.driftx %v%s\nhistory (virtual time, latest %d lines):\n%s",
				o.sc, o.violations[0].what, seed, faultList(faults), *simDriftX, electorsFlag(), *simHistory, o.report)
			if !*simKeepGoing {
				break
			}
		}
		if *simSeed != 0 || time.Since(started) >= budget || (*simTerms > 0 && int64(terms) >= *simTerms) {
			break
		}
	}
	wall := time.Since(started)
	t.Logf("simulated %d runs (seeds %d..%d), %d terms, %v of virtual time in %v: %.0f terms/s, virtual/wall %.0f×; faults %s; race detector %v",
		runs, first, last, terms, virtual.Round(time.Second), wall.Round(time.Millisecond), float64(terms)/wall.Seconds(), virtual.Seconds()/wall.Seconds(), faultList(faults), raceEnabled)
	if faults["inplace"] {
		t.Logf("%d times a restarted process proved its predecessor's term dead and took over at once (a compare-and-swap, which may still lose)", fast)
	}
	if excused > 0 {
		t.Logf("%d overlaps or token regressions after restores without --bump-revision, not judged: the store broke the Lock contract", excused)
	}
	if len(failed) > 0 {
		var b strings.Builder
		for _, o := range failed {
			fmt.Fprintf(&b, "\n  seed %d: %s", o.sc.seed, o.violations[0].what)
		}
		t.Logf("%d of %d runs violated the promise:%s", len(failed), runs, b.String())
	}
}

func electorsFlag() string {
	if *simElectors == 0 {
		return ""
	}
	return fmt.Sprintf(" -sim.electors %d", *simElectors)
}
