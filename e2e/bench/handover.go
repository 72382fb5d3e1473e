package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// HandoverResult is the graceful handover latency of one implementation:
// from the moment the leader's work returned (its context was cancelled
// because its elector was stopped) to the moment the next leader's work
// started.
type HandoverResult struct {
	Impl    Impl `json:"impl"`
	Latency Dist `json:"latency"`
	// Overlaps counts pairs of lead intervals on the Lease that intersect,
	// by the checker's judgement (should be 0).
	Overlaps int `json:"overlaps"`
}

// runHandovers stops the leader of three candidates n times, each time
// restarting the stopped one under a new identity, and measures how long
// the Lease stays without working leader.
func runHandovers(ctx context.Context, e *env, cfg ImplConfig, profile string, n int) (HandoverResult, error) {
	res := HandoverResult{Impl: cfg.Impl}
	s, err := newSlots(e.cp, cfg, e.ns, e.leaseName("handover-"+shortName(cfg.Impl)+"-"+profile), 3)
	if err != nil {
		return res, err
	}
	defer s.close()
	wait := 2*cfg.LeaseDuration + 30*time.Second
	var lat []time.Duration
	for len(lat) < n {
		slot, _, err := s.settled(ctx, wait)
		if err != nil {
			return res, fmt.Errorf("%s handover %d: %w", cfg.Impl, len(lat)+1, err)
		}
		// A random pause puts the stop at a random phase of client-go's
		// polling, as a real rollout would.
		if err := sleepCtx(ctx, 200*time.Millisecond+rand.N(cfg.RetryPeriod)); err != nil {
			return res, err
		}
		old := s.c[slot]
		stopAt := ledger.Now()
		if err := old.stop(wait); err != nil {
			return res, err
		}
		oldIv, err := s.ended(ctx, old.id, wait)
		if err != nil {
			return res, err
		}
		next, err := s.nextStart(ctx, old.id, stopAt.Add(-time.Millisecond), wait)
		if err != nil {
			return res, fmt.Errorf("%s handover %d: %w", cfg.Impl, len(lat)+1, err)
		}
		lat = append(lat, next.Start.Sub(oldIv.End))
		if err := s.restart(slot); err != nil {
			return res, err
		}
	}
	res.Latency = newDist(lat)
	res.Overlaps = s.overlaps()
	return res, nil
}

// CrashResult is the takeover after the leader's traffic was cut with no
// release: the successor's work starts after the holder's lease ran out,
// counted from the last renewal the API server accepted (as an independent
// admin watch saw it).
type CrashResult struct {
	Impl          Impl          `json:"impl"`
	LeaseDuration time.Duration `json:"lease_duration"`
	// BeyondLease is (successor's work starts) − (last accepted renewal) −
	// lease duration.
	BeyondLease Dist `json:"beyond_lease"`
	// SinceCut is (successor's work starts) − (traffic cut).
	SinceCut Dist `json:"since_cut"`
	// OldStoppedBeforeNew is how long before the successor's work started
	// the cut-off leader's work stopped by itself; negative: both worked
	// at once for that long.
	OldStoppedBeforeNew Dist `json:"old_stopped_before_new"`
	Overlaps            int  `json:"overlaps"`
}

func runCrashes(ctx context.Context, e *env, cfg ImplConfig, profile string, n int) (CrashResult, error) {
	res := CrashResult{Impl: cfg.Impl, LeaseDuration: cfg.LeaseDuration}
	lease := e.leaseName("crash-" + shortName(cfg.Impl) + "-" + profile)
	w, err := watchLease(ctx, e.admin, e.ns, lease)
	if err != nil {
		return res, err
	}
	defer w.stop()
	s, err := newSlots(e.cp, cfg, e.ns, lease, 3)
	if err != nil {
		return res, err
	}
	defer s.close()
	wait := 3*cfg.LeaseDuration + 30*time.Second
	var beyond, sinceCut, gap []time.Duration
	for len(beyond) < n {
		slot, lead, err := s.settled(ctx, wait)
		if err != nil {
			return res, fmt.Errorf("%s crash %d: %w", cfg.Impl, len(beyond)+1, err)
		}
		victim := s.c[slot]
		// Wait for the leader to renew at least once, so that the cut
		// lands in its steady state, then at a random phase of its renewals.
		if err := s.led.Await(ctx, wait, 20*time.Millisecond, "a renewal by "+victim.id, func([]ledger.Lead) bool {
			return w.count(victim.id, lead.Start.Add(cfg.RenewEvery/2)) >= 1
		}); err != nil {
			return res, err
		}
		if err := sleepCtx(ctx, rand.N(cfg.RenewEvery)); err != nil {
			return res, err
		}
		victim.proxy.Blackhole()
		cutAt := ledger.Now()
		next, err := s.nextStart(ctx, victim.id, cutAt, wait)
		if err != nil {
			return res, fmt.Errorf("%s crash %d: %w", cfg.Impl, len(beyond)+1, err)
		}
		last, ok := w.lastBy(victim.id, next.Start)
		if !ok {
			return res, fmt.Errorf("%s crash %d: the admin watch saw no write by %s", cfg.Impl, len(beyond)+1, victim.id)
		}
		beyond = append(beyond, next.Start.Sub(last)-cfg.LeaseDuration)
		sinceCut = append(sinceCut, next.Start.Sub(cutAt))
		// Leave the cut-off leader alone until its work stops by itself,
		// as it would in a real partition, to see whether the two overlap.
		old, err := s.ended(ctx, victim.id, 2*cfg.LeaseDuration+2*cfg.RenewDeadline+30*time.Second)
		if err != nil {
			return res, fmt.Errorf("%s crash %d: the cut-off leader's work did not stop: %w", cfg.Impl, len(beyond), err)
		}
		gap = append(gap, next.Start.Sub(old.End))
		if err := victim.kill(wait); err != nil {
			return res, err
		}
		if err := s.restart(slot); err != nil {
			return res, err
		}
	}
	res.BeyondLease, res.SinceCut, res.OldStoppedBeforeNew = newDist(beyond), newDist(sinceCut), newDist(gap)
	res.Overlaps = s.overlaps()
	return res, nil
}

// leaseWatch records, through the admin's own connection, when each write
// to a Lease arrived and who held it after the write.
type leaseWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	writes []leaseWrite
}

// leaseWrite is one write the admin watch saw: who held the Lease after it,
// and when it arrived, on the clock of the ledger's lead intervals.
type leaseWrite struct {
	holder string
	at     ledger.Mono
}

func watchLease(ctx context.Context, admin kubernetes.Interface, ns, name string) (*leaseWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	lw := &leaseWatch{cancel: cancel, done: make(chan struct{})}
	opts := metav1.ListOptions{FieldSelector: "metadata.name=" + name}
	first, err := admin.CoordinationV1().Leases(ns).Watch(ctx, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("admin watch of Lease %s/%s: %w", ns, name, err)
	}
	go func() {
		defer close(lw.done)
		w, rv := first, ""
		for {
			for ev := range w.ResultChan() {
				if ev.Type != watch.Added && ev.Type != watch.Modified {
					continue
				}
				l, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					continue
				}
				rv = l.ResourceVersion
				holder := ""
				if l.Spec.HolderIdentity != nil {
					holder = *l.Spec.HolderIdentity
				}
				at := ledger.Now()
				lw.mu.Lock()
				lw.writes = append(lw.writes, leaseWrite{holder, at})
				lw.mu.Unlock()
			}
			w.Stop()
			if ctx.Err() != nil {
				return
			}
			// The watch ended (server timeout): resume from the last
			// version seen, so that no write is missed.
			o := opts
			o.ResourceVersion = rv
			for {
				if w, err = admin.CoordinationV1().Leases(ns).Watch(ctx, o); err == nil {
					break
				}
				if sleepCtx(ctx, time.Second) != nil {
					return
				}
			}
		}
	}()
	return lw, nil
}

func (w *leaseWatch) stop() {
	w.cancel()
	<-w.done
}

// count is the number of writes by holder seen after since.
func (w *leaseWatch) count(holder string, since ledger.Mono) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.writes {
		if v.holder == holder && v.at > since {
			n++
		}
	}
	return n
}

// lastBy is the arrival of the last write by holder seen before t.
func (w *leaseWatch) lastBy(holder string, t ledger.Mono) (ledger.Mono, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.writes) - 1; i >= 0; i-- {
		v := w.writes[i]
		if v.holder == holder && v.at < t {
			return v.at, true
		}
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
