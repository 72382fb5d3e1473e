// Command candidate is one replica of the chaos suite, run as its own OS
// process so that kill -9 and SIGSTOP/SIGCONT are real. It campaigns for a
// Lease with leadership's elector or with client-go's
// tools/leaderelection, and while it leads it works in units (ticks): each
// unit begins, works for -tick without looking at its context, as a
// computation would, and ends with a write to the ledger's fenced store
// carrying the term's fencing token, the unit's begin time and its send
// time (CLOCK_MONOTONIC). A unit begins only while the term is valid:
// leadership's candidates also require Term.Remaining() > tick+margin, so
// that a unit ends before the term does; client-go offers nothing like it,
// so its candidates only check their context.
//
// SIGTERM or SIGINT stops it gracefully: leadership releases the Lease once
// the work has returned; client-go (ReleaseOnCancel) releases at once while
// the unit in flight finishes, which is how client-go works, and the
// process exits after the unit. The candidate imports only the library,
// client-go and x/sys (through the ledger client), so it builds quickly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/chaos/driftclock"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
	"github.com/leadership-dev/leadership/kubelease"
)

type options struct {
	impl          string
	kubeconfig    string
	namespace     string
	lease         string
	fleet         string
	identity      string
	leaseDuration time.Duration
	renew         time.Duration
	retry         time.Duration
	ledgerAddr    string
	tick          time.Duration
	margin        time.Duration
	clockRate     float64
	denyWatch     bool
	verbose       bool
	restartDir    string
	podUID        string
	minTerm       time.Duration
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("candidate", flag.ContinueOnError)
	fs.StringVar(&o.impl, "impl", ledger.ImplLeadership, "elector: leadership or client-go")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of this candidate's own path to the API server (required)")
	fs.StringVar(&o.namespace, "namespace", "default", "namespace of the Lease")
	fs.StringVar(&o.lease, "lease", "", "name of the Lease (required)")
	fs.StringVar(&o.fleet, "fleet", "", "name of the fenced resource in the ledger (default: the Lease name)")
	fs.StringVar(&o.identity, "identity", "", "holder identity (required)")
	fs.DurationVar(&o.leaseDuration, "lease-duration", 2*time.Second, "lease duration")
	fs.DurationVar(&o.renew, "renew", 0, "leadership: RenewInterval; client-go: RenewDeadline (0: LeaseDuration/3, resp. ×2/3)")
	fs.DurationVar(&o.retry, "retry", 0, "retry period (0: leadership's default; client-go: LeaseDuration×2/15)")
	fs.StringVar(&o.ledgerAddr, "ledger", "", "host:port of the ledger (required)")
	fs.DurationVar(&o.tick, "tick", 50*time.Millisecond, "length of one unit of leader work")
	fs.DurationVar(&o.margin, "margin", 200*time.Millisecond, "leadership: begin a unit only while Term.Remaining() > tick+margin")
	fs.Float64Var(&o.clockRate, "clock-rate", 1, "leadership: rate of the elector's clock relative to the real one (1.01: 1 % fast), as a host whose oscillator drifts, through leadership.NewWithClock")
	fs.BoolVar(&o.denyWatch, "deny-watch", false, "answer every watch request with 403 Forbidden, as an RBAC Role without the verb watch does, so the elector polls")
	fs.BoolVar(&o.verbose, "v", false, "debug logs")
	fs.StringVar(&o.restartDir, "restart-proof-dir", "", "leadership: Config.Restart.Dir, the pod-local directory of the lock file that proves a crashed leader of this replica dead (fast takeover after a restart in place)")
	fs.StringVar(&o.podUID, "pod-uid", "", "leadership: Config.Restart.PodUID, this replica's pod UID (required with -restart-proof-dir)")
	fs.DurationVar(&o.minTerm, "restart-min-term", 0, "leadership: Config.Restart.MinTerm (0: the default; -1ns: none)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.fleet == "" {
		o.fleet = o.lease
	}
	switch {
	case o.impl != ledger.ImplLeadership && o.impl != ledger.ImplClientGo:
		return o, fmt.Errorf("-impl %q: want %s or %s", o.impl, ledger.ImplLeadership, ledger.ImplClientGo)
	case o.kubeconfig == "" || o.lease == "" || o.identity == "" || o.ledgerAddr == "":
		return o, errors.New("-kubeconfig, -lease, -identity and -ledger are required")
	case o.tick <= 0 || o.margin < 0:
		return o, fmt.Errorf("-tick %v, -margin %v: want tick > 0 and margin ≥ 0", o.tick, o.margin)
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.restartDir != "" && o.impl == ledger.ImplClientGo:
		return o, fmt.Errorf("-restart-proof-dir: client-go has no fast takeover after a restart in place")
	case math.IsNaN(o.clockRate) || math.Abs(o.clockRate-1) > driftclock.MaxRateDeviation:
		return o, fmt.Errorf("-clock-rate %v: want a rate within 1±%v (e.g. 1.01 or 0.99)", o.clockRate, driftclock.MaxRateDeviation)
	case o.clockRate != 1 && o.impl == ledger.ImplClientGo:
		return o, fmt.Errorf("-clock-rate %v: client-go %s offers no clock to replace (LeaderElectionConfig has no Clock field; LeaderElector's clock is unexported and its loops use real time), so its candidates run on the real clock", o.clockRate, clientGoVersion())
	}
	return o, nil
}

func main() {
	o, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "candidate:", err)
		os.Exit(2)
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("identity", o.identity)
	if err := run(o, log); err != nil {
		log.Error("candidate failed", "error", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", o.kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	if o.denyWatch {
		cfg.Wrap(denyWatch)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	led, err := ledger.NewClient(o.ledgerAddr)
	if err != nil {
		return err
	}
	space := ledger.SpaceResourceVersion
	if o.impl == ledger.ImplClientGo {
		space = ledger.SpaceLeaseTransitions
	}
	w := &worker{
		led:  led,
		log:  log,
		tick: o.tick,
		base: ledger.Write{Fleet: o.fleet, Impl: o.impl, Identity: o.identity, PID: os.Getpid(), Space: space},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if o.impl == ledger.ImplLeadership {
		err = runLeadership(ctx, o, cs, w)
	} else {
		err = runClientGo(ctx, o, cs, w)
	}
	if err != nil {
		return err
	}
	w.event(ledger.EventExit, 0, 0, "")
	log.Info("stopped")
	return nil
}

// worker does the leader's units of work and reports to the ledger.
type worker struct {
	led   *ledger.Client
	log   *slog.Logger
	tick  time.Duration
	base  ledger.Write
	terms atomic.Int64
	ready sync.Once
}

func (w *worker) event(kind string, term int, token uint64, detail string) {
	w.eventAt(ledger.Now(), kind, term, token, detail)
}

func (w *worker) eventAt(at ledger.Mono, kind string, term int, token uint64, detail string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.led.Event(ctx, ledger.Event{Fleet: w.base.Fleet, Impl: w.base.Impl, Identity: w.base.Identity, PID: w.base.PID,
		Kind: kind, Term: term, Token: token, Detail: detail, At: at})
	if err != nil {
		w.log.Warn("cannot report to the ledger", "event", kind, "error", err)
	}
}

func (w *worker) markReady(holder string) {
	if holder != "" {
		w.ready.Do(func() { w.event(ledger.EventReady, 0, 0, holder) })
	}
}

// lead works in units until ctx is done. A unit begins only if canBegin
// says so; once begun it runs to its write, whatever happens to ctx,
// because that is what a unit of real work does. Its start and its return
// bound the lead interval the checker judges: both are stamped first and
// last, before any reporting.
func (w *worker) lead(ctx context.Context, token uint64, canBegin func() bool) {
	start := ledger.Now()
	term := int(w.terms.Add(1))
	w.eventAt(start, ledger.EventLeadStart, term, token, "")
	log := w.log.With("term", term, "token", token)
	log.Info("leading")
	var accepted, refused int
	for ctx.Err() == nil {
		if !canBegin() {
			// Too little validity left for a unit: wait for a renewal or
			// for the end of the term.
			select {
			case <-ctx.Done():
			case <-time.After(min(w.tick, 10*time.Millisecond)):
			}
			continue
		}
		begin := ledger.Now()
		time.Sleep(w.tick)
		wr := w.base
		wr.Term, wr.Token, wr.Begin, wr.Sent = term, token, begin, ledger.Now()
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := w.led.Write(wctx, wr)
		cancel()
		switch {
		case err != nil:
			log.Warn("write failed", "error", err)
		case res.Accepted:
			accepted++
		default:
			refused++
			log.Warn("the fenced store refused a stale write", "highest", res.Highest)
		}
	}
	end := ledger.Now()
	cause := context.Cause(ctx)
	log.Info("stopped leading", "cause", cause, "accepted", accepted, "refused", refused)
	w.eventAt(end, ledger.EventLeadEnd, term, token, fmt.Sprint(cause))
}

func runLeadership(ctx context.Context, o options, cs kubernetes.Interface, w *worker) error {
	lock, err := kubelease.New(cs.CoordinationV1(), o.namespace, o.lease)
	if err != nil {
		return err
	}
	cfg := leadership.Config{
		Identity:      o.identity,
		LeaseDuration: o.leaseDuration,
		RenewInterval: o.renew,
		RetryPeriod:   o.retry,
		Restart:       leadership.RestartProof{Dir: o.restartDir, PodUID: o.podUID, MinTerm: o.minTerm},
		Logger:        w.log,
	}
	var e *leadership.Elector
	if o.clockRate == 1 {
		e, err = leadership.New(lock, cfg)
	} else {
		var clk *driftclock.Clock
		if clk, err = driftclock.New(clock.RealClock{}, o.clockRate); err != nil {
			return err
		}
		w.log.Info("the elector's clock drifts", "rate", o.clockRate)
		e, err = leadership.NewWithClock(lock, cfg, clk.Elector())
	}
	if err != nil {
		return err
	}
	go func() {
		for l := range e.Observe(ctx) {
			w.markReady(l.Identity)
		}
	}()
	margin := o.tick + o.margin
	return e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
		w.lead(ctx, t.Token, func() bool { return t.Remaining() > margin })
		return nil
	})
}

// tokenLock is client-go's Lease lock, noting the leaseTransitions of this
// candidate's successful writes: client-go has no fencing token, and the
// transitions count written by the acquiring write is the nearest thing.
type tokenLock struct {
	resourcelock.Interface
	log         *slog.Logger
	won         atomic.Bool
	transitions atomic.Int32

	mu   sync.Mutex
	seen string // holder in the last record read
}

func (l *tokenLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, raw, err := l.Interface.Get(ctx)
	if err == nil {
		l.mu.Lock()
		l.seen = r.HolderIdentity
		l.mu.Unlock()
	}
	return r, raw, err
}

func (l *tokenLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, r)
	l.note(r, err)
	return err
}

func (l *tokenLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, r)
	l.note(r, err)
	return err
}

func (l *tokenLock) note(r resourcelock.LeaderElectionRecord, err error) {
	if err != nil {
		return
	}
	if r.HolderIdentity == l.Identity() {
		l.transitions.Store(int32(r.LeaderTransitions))
		l.won.Store(true)
	}
	if r.HolderIdentity == "" {
		// client-go's release: say whose Lease it emptied, as read just
		// before by the same release.
		l.mu.Lock()
		seen := l.seen
		l.mu.Unlock()
		if seen != l.Identity() {
			l.log.Warn("client-go released a Lease held by another candidate", "holder", seen)
		} else {
			l.log.Info("client-go released the Lease")
		}
	}
}

func runClientGo(ctx context.Context, o options, cs kubernetes.Interface, w *worker) error {
	renewDeadline, retry := o.renew, o.retry
	if renewDeadline == 0 {
		renewDeadline = o.leaseDuration * 2 / 3
	}
	if retry == 0 {
		retry = o.leaseDuration * 2 / 15
	}
	// client-go returns from Run when it loses the Lease; like a pod that
	// restarts after leaderelection lost, campaign again under the same
	// identity, once the work of the lost term has returned.
	for ctx.Err() == nil {
		lock := &tokenLock{log: w.log, Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: o.namespace, Name: o.lease},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: o.identity},
		}}
		finished := make(chan struct{})
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   o.leaseDuration,
			RenewDeadline:   renewDeadline,
			RetryPeriod:     retry,
			ReleaseOnCancel: true,
			Name:            o.lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					defer close(finished)
					w.lead(ctx, uint64(lock.transitions.Load()), func() bool { return true })
				},
				OnStoppedLeading: func() {},
				OnNewLeader:      w.markReady,
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		// Run calls OnStartedLeading on its own goroutine once it has
		// acquired, which it has if a write naming us succeeded, and
		// returns without waiting for it.
		if lock.won.Load() {
			<-finished
		}
	}
	return nil
}
