package task

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/leadership-dev/leadership"
)

// lastRunSuffix follows the task name in the key of its last run among the
// lock's values (annotation values.leadership.dev/<name>.last-run on a
// Kubernetes Lease).
const lastRunSuffix = ".last-run"

// LastRunKey is the key under which a periodic task that sets Persist keeps
// the start time of its last successful run among the lock's values
// (leadership.Record.Values), in RFC 3339 format with nanoseconds.
func LastRunKey(name string) string { return name + lastRunSuffix }

// Periodic is a task that runs every Interval while this replica leads.
//
// At the start of a term it runs at once, unless Persist is set and the last
// successful run, kept with the lock by whichever term ran it, says it is not
// yet due: then it waits until it is. Intervals are counted from the start of
// one run to the start of the next, so work that renews something for a
// fixed time from its start keeps its margin; a run that takes longer than
// the interval is followed at once by the next, never overlapped by it.
type Periodic struct {
	// Name identifies the task in logs and keys its last run (LastRunKey):
	// lower-case letters, digits, '-' and '.', at most 54 characters.
	Name string
	// Interval between the starts of two runs. Required.
	Interval time.Duration
	// Jitter lengthens each interval by a random fraction of up to Jitter
	// (0 to 1) of it, so that many replicas' or tasks' runs spread out. The
	// first run of a term is not delayed.
	Jitter float64
	// Timeout bounds one run; 0 means Interval. The run's context deadline
	// is also capped by what is left of the term at the start of the run.
	Timeout time.Duration
	// Retry is the wait after a failed run before the next one, if shorter
	// than Interval; 0 means Interval. A failed run is not recorded as the
	// last run, so a successor runs the task at once.
	Retry time.Duration
	// Persist keeps the start time of each successful run with the lock,
	// through Config.Proclaimer, fenced by the term. It costs one write to
	// the lock per run. Times are wall-clock times of the leader's host, so
	// a successor whose clock is behind runs the task up to that offset late.
	Persist bool
	// Run does the work. Its context ends when the term ends or Timeout
	// passes; the work must return promptly then. t.Token is the fencing
	// token to hand to the stores it writes.
	Run func(ctx context.Context, t leadership.Term) error
}

func (p Periodic) taskName() string { return p.Name }

func (p Periodic) check(cfg Config) error {
	if err := checkName("periodic", p.Name); err != nil {
		return err
	}
	bad := func(field string, v any, rule string) error {
		return fmt.Errorf("task: periodic task %q: %s %v: %s", p.Name, field, v, rule)
	}
	switch {
	case p.Run == nil:
		return bad("Run", nil, "is required")
	case p.Interval <= 0:
		return bad("Interval", p.Interval, "must be positive")
	case math.IsNaN(p.Jitter) || p.Jitter < 0 || p.Jitter > 1:
		return bad("Jitter", p.Jitter, "must be between 0 and 1 (a fraction of Interval)")
	case p.Timeout < 0:
		return bad("Timeout", p.Timeout, "must not be negative (0 means Interval)")
	case p.Retry < 0:
		return bad("Retry", p.Retry, "must not be negative (0 means Interval)")
	case p.Persist && cfg.Proclaimer == nil:
		return bad("Persist", true, "needs Config.Proclaimer (normally the Elector) to keep the last run with the lock")
	}
	return nil
}

func (p Periodic) run(ctx context.Context, g *Group, t leadership.Term) {
	log := g.log.With("task", p.Name, "token", t.Token)
	timeout := p.Timeout
	if timeout == 0 {
		timeout = p.Interval
	}
	wait := p.firstWait(g, t)
	if wait > 0 {
		log.Debug("not yet due: the last run was recent", "wait", wait)
	}
	for sleep(ctx, wait) {
		start := time.Now()
		err := g.call(ctx, t, timeout, func(ctx context.Context) error { return p.Run(ctx, t) })
		log.Debug("ran", "took", time.Since(start), "error", err)
		if ctx.Err() != nil {
			// The term ended during the run: a successor runs it again
			// rather than trusting a run that may have been cut short.
			return
		}
		if errors.Is(err, errTermOver) {
			wait = termOverPause
			continue
		}
		next := p.Interval + time.Duration(p.Jitter*g.random()*float64(p.Interval))
		switch {
		case err != nil:
			if p.Retry > 0 {
				next = min(next, p.Retry)
			}
			log.Warn("periodic task failed; will run again", "error", err, "in", next)
		case p.Persist:
			v := map[string]string{LastRunKey(p.Name): start.UTC().Format(time.RFC3339Nano)}
			if err := g.cfg.Proclaimer.Proclaim(ctx, t, v); err != nil {
				if ctx.Err() != nil || errors.Is(err, leadership.ErrNotLeader) {
					<-ctx.Done() // the term is over; its context ends at once
					return
				}
				log.Warn("could not keep the last run with the lock; a successor may run the task early", "error", err)
			} else {
				log.Debug("kept the last run with the lock", "took", time.Since(start))
			}
		}
		wait = time.Until(start.Add(next))
	}
}

// firstWait is how long a new term waits before the first run: 0 unless the
// last run kept with the lock says the task is not yet due. A last run in
// the future (another host's clock ahead of ours) delays it by at most one
// interval.
func (p Periodic) firstWait(g *Group, t leadership.Term) time.Duration {
	if !p.Persist {
		return 0
	}
	v, ok := t.Values[LastRunKey(p.Name)]
	if !ok {
		return 0
	}
	last, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		g.log.Warn("ignoring an unreadable last run kept with the lock; running the task now", "task", p.Name, "value", v, "error", err)
		return 0
	}
	return min(max(time.Until(last.Add(p.Interval)), 0), p.Interval)
}
