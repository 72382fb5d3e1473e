// Package task runs a leader's recurring work inside the terms of a
// leadership.Elector: periodic tasks (every interval, with jitter, with a
// schedule that survives failover) and event-driven tasks (a watch-driven
// handler plus a full sweep at every acquisition, so that what happened while
// nobody led is not lost).
//
// A Group of tasks is itself a leadership.LeadFunc:
//
//	g, err := task.NewGroup(task.Config{Proclaimer: elector}, renew, revoke)
//	...
//	err = elector.Run(ctx, g.Lead)
//
// The promises, which follow from running only inside a term:
//
//   - a task never runs on a follower: it starts when a term begins;
//   - a task stops when the term ends: every call gets a context that is
//     cancelled then, and Lead returns only once every call has returned, so
//     the elector releases the lock only after the work stopped;
//   - a task never overlaps itself: within a term each task is one goroutine
//     that calls its functions one at a time, and two terms never overlap.
//
// Nothing here can stop a process that is paused past its term (a GC pause,
// SIGSTOP, a frozen VM) from finishing a call it had begun: pass Term.Token
// to the store the task writes to, and have the store refuse tokens lower
// than the highest it has seen.
package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/leadership-dev/leadership"
)

// Proclaimer writes values to the lock, fenced by the term: only the current
// term's leader can move them. *leadership.Elector is one.
type Proclaimer interface {
	Proclaim(ctx context.Context, t leadership.Term, values map[string]string) error
}

// Config sets up a Group.
type Config struct {
	// Proclaimer keeps the last run of periodic tasks that set Persist with
	// the lock, so that a new leader does not run them before they are due.
	// It is normally the Elector whose terms run the group. Required when a
	// task sets Persist.
	Proclaimer Proclaimer
	// Logger receives the tasks' logs: failed runs, retries, sweeps. nil
	// means slog.Default().
	Logger *slog.Logger
}

// Task is a unit of leader-only work: a Periodic or an Events.
type Task interface {
	taskName() string
	check(cfg Config) error
	run(ctx context.Context, g *Group, t leadership.Term)
}

// Group runs a set of tasks during each term of an elector. It keeps no
// state between terms but what periodic tasks proclaim, so one Group serves
// every term of its elector.
type Group struct {
	cfg   Config
	log   *slog.Logger
	tasks []Task

	// Seams for the unit tests, which run in a testing/synctest bubble
	// (where the time package is virtual, so scheduling needs no seam): how
	// much of a term is left follows remaining, since a test's Term has no
	// validity of its own, and jitter follows random.
	remaining func(leadership.Term) time.Duration
	random    func() float64
}

// NewGroup checks the tasks and returns a Group that runs them, or an error
// that names the first task that is wrong and why.
func NewGroup(cfg Config, tasks ...Task) (*Group, error) {
	if len(tasks) == 0 {
		return nil, errors.New("task: NewGroup needs at least one task")
	}
	seen := map[string]bool{}
	for i, t := range tasks {
		if t == nil {
			return nil, fmt.Errorf("task: task %d is nil", i)
		}
		if err := t.check(cfg); err != nil {
			return nil, err
		}
		if seen[t.taskName()] {
			return nil, fmt.Errorf("task: two tasks are named %q: names must be unique within a group, because a periodic task's last run is kept under its name", t.taskName())
		}
		seen[t.taskName()] = true
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Group{
		cfg:       cfg,
		log:       log,
		tasks:     append([]Task(nil), tasks...),
		remaining: leadership.Term.Remaining,
		random:    rand.Float64,
	}, nil
}

// Lead runs every task of the group, each in its own goroutine, for the term
// t, until ctx is done; it returns nil once all of them have returned. It is
// a leadership.LeadFunc: pass it to Elector.Run, or call it from one after
// work that must come first in each term (such as raising a store's fencing
// token). A task function that ignores its context keeps Lead, and so the
// release of the lock, waiting.
func (g *Group) Lead(ctx context.Context, t leadership.Term) error {
	var wg sync.WaitGroup
	for _, task := range g.tasks {
		wg.Go(func() { task.run(ctx, g, t) })
	}
	wg.Wait()
	return nil
}

// errTermOver says a call was not started because the term had no validity
// left. Either its context is about to be cancelled, or a renewal sent in
// time is landing and the elector extends the term: the caller looks again
// after termOverPause.
var errTermOver = errors.New("task: the term has no validity left")

const termOverPause = 100 * time.Millisecond

// call runs f with a context whose deadline is timeout (0: none) capped by
// what is left of the term. The cap adds nothing to cancellation, since ctx
// ends with the term anyway; it makes the end visible as a deadline, which
// database drivers and RPC clients pass on to the server.
func (g *Group) call(ctx context.Context, t leadership.Term, timeout time.Duration, f func(context.Context) error) error {
	d := g.remaining(t)
	if d <= 0 {
		return errTermOver
	}
	if timeout > 0 {
		d = min(d, timeout)
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(cctx)
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// namePattern keeps names usable as the name part of an annotation
// (values.leadership.dev/<name>.last-run) and readable in logs.
var namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// maxName leaves room for ".last-run" within an annotation name's 63
// characters.
const maxName = 63 - len(lastRunSuffix)

func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("task: a %s task needs a Name: it appears in logs and keys its state", kind)
	case len(name) > maxName:
		return fmt.Errorf("task: %s task name %q is %d characters; at most %d are allowed", kind, name, len(name), maxName)
	case !namePattern.MatchString(name):
		return fmt.Errorf("task: %s task name %q must consist of lower-case letters, digits, '-' and '.', and start and end with a letter or digit", kind, name)
	}
	return nil
}
