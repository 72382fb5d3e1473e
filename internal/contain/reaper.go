package contain

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Reaper does for a supervisor what init does for a system: it is a child
// subreaper, and it reaps the orphans re-parented to it (from a lost
// watchdog's tree, or, as a container's PID 1, from anywhere in the
// container). It leaves alone the children that other code of this
// process waits for: those in this process's own process group (started
// by os/exec without a group of their own, such as a kubeconfig's
// credential plugin; a supervised tree is in sessions of its own and can
// never join this group) and those started through Spawn.
type Reaper struct {
	self, pgid int
	log        *slog.Logger

	mu    sync.Mutex
	owned map[int]bool
}

// NewReaper makes this process a child subreaper.
func NewReaper(log *slog.Logger) (*Reaper, error) {
	if err := BecomeSubreaper(); err != nil {
		return nil, err
	}
	return &Reaper{self: os.Getpid(), pgid: syscall.Getpgrp(), log: log, owned: map[int]bool{}}, nil
}

// Run reaps adopted zombies on every SIGCHLD until ctx is done. A SIGCHLD
// that arrives while one is pending is dropped, but the pending one's scan
// sees its zombie too; the slow tick is only a safety net, since each scan
// reads all of /proc.
func (r *Reaper) Run(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		r.Reap()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-t.C:
		}
	}
}

// Spawn runs start, which starts a process and returns its pid, so that
// the reaper never reaps it: its starter waits for it, and calls Disown
// once it has.
func (r *Reaper) Spawn(start func() (int, error)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err == nil {
		r.owned[pid] = true
	}
	return pid, err
}

// Disown forgets a pid from Spawn once its starter has waited for it.
func (r *Reaper) Disown(pid int) {
	r.mu.Lock()
	delete(r.owned, pid)
	r.mu.Unlock()
}

// adopted lists this process's children that are its to reap.
func (r *Reaper) adopted(procs []Proc) []Proc {
	var out []Proc
	for _, p := range procs {
		// A group outside this PID namespace reads as 0: such a group
		// cannot be told from this process's own, and is reaped.
		own := p.Pgid == r.pgid && r.pgid != 0
		if p.PPid == r.self && !own && !r.owned[p.Pid] {
			out = append(out, p)
		}
	}
	return out
}

// Reap reaps the adopted children that have exited.
func (r *Reaper) Reap() {
	procs, err := List()
	if err != nil {
		r.log.Debug("reaper: cannot list processes", "error", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reapLocked(r.adopted(procs))
}

func (r *Reaper) reapLocked(adopted []Proc) {
	for _, p := range adopted {
		if !p.Zombie() {
			continue
		}
		var ws syscall.WaitStatus
		if pid, err := syscall.Wait4(p.Pid, &ws, syscall.WNOHANG, nil); err == nil && pid == p.Pid {
			r.log.Debug("reaped an orphan", "pid", pid, "status", ws)
		}
	}
}

// KillAdopted kills every adopted child and everything below it, and
// returns once none is left (all reaped), or when ctx is done. A
// supervisor calls it when its watchdog was lost: the watchdog's tree was
// re-parented to it.
func (r *Reaper) KillAdopted(ctx context.Context) error {
	for {
		procs, err := List()
		if err != nil {
			return err
		}
		r.mu.Lock()
		adopted := r.adopted(procs)
		roots := make([]int, len(adopted))
		for i, p := range adopted {
			roots[i] = p.Pid
		}
		Signal(adopted, syscall.SIGKILL)
		Signal(Descendants(procs, roots...), syscall.SIGKILL)
		r.reapLocked(adopted)
		r.mu.Unlock()
		if len(adopted) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
