// Package contain finds, kills and reaps every descendant of a process on
// Linux, whatever session or process group they moved to: a child
// subreaper keeps orphans in the tree, /proc shows the tree, and a cgroup
// v2 sub-cgroup (where one can be created) holds the processes so that
// cgroup.kill ends them all at once and cgroup.events says when they are
// gone.
package contain

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Proc is one process as /proc/PID/stat shows it.
type Proc struct {
	Pid, PPid, Pgid, Sid int
	// State is the state letter: R, S, D, Z (zombie), T (stopped)...
	State byte
}

// Zombie reports whether the process has exited and awaits its reaping.
func (p Proc) Zombie() bool { return p.State == 'Z' || p.State == 'X' }

// List reads every process in /proc. Processes that vanish while it reads
// are left out.
func List() ([]Proc, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("contain: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("contain: reading /proc: %w", err)
	}
	out := make([]Proc, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if p, err := Stat(pid); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Stat reads /proc/PID/stat.
func Stat(pid int) (Proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, err
	}
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return Proc{}, fmt.Errorf("contain: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 4 || len(f[0]) == 0 {
		return Proc{}, fmt.Errorf("contain: malformed /proc/%d/stat", pid)
	}
	p := Proc{Pid: pid, State: f[0][0]}
	var e1, e2, e3 error
	p.PPid, e1 = strconv.Atoi(f[1])
	p.Pgid, e2 = strconv.Atoi(f[2])
	p.Sid, e3 = strconv.Atoi(f[3])
	if err := errors.Join(e1, e2, e3); err != nil {
		return Proc{}, fmt.Errorf("contain: malformed /proc/%d/stat: %w", pid, err)
	}
	return p, nil
}

// Descendants returns the processes below the roots (the roots excluded),
// following parent links.
func Descendants(procs []Proc, roots ...int) []Proc {
	children := map[int][]Proc{}
	for _, p := range procs {
		children[p.PPid] = append(children[p.PPid], p)
	}
	var out []Proc
	seen := map[int]bool{}
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if !seen[c.Pid] {
				seen[c.Pid] = true
				out = append(out, c)
				queue = append(queue, c.Pid)
			}
		}
	}
	return out
}

// BecomeSubreaper makes this process a child subreaper: a descendant
// orphaned by its parent's exit is re-parented to it rather than to init,
// so it stays in this process's tree and can be found, killed and reaped.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("contain: cannot become a child subreaper: %w", err)
	}
	return nil
}

// Signal sends sig to each process; ones already gone are skipped. A pid
// is signalled through a pidfd, and only if the process still has the
// parent it was listed with, so that a pid reused in between by an
// unrelated process is left alone.
func Signal(procs []Proc, sig syscall.Signal) {
	for _, p := range procs {
		if p.Zombie() {
			continue
		}
		fd, err := unix.PidfdOpen(p.Pid, 0)
		if err != nil {
			continue // gone
		}
		if now, err := Stat(p.Pid); err == nil && now.PPid == p.PPid {
			_ = unix.PidfdSendSignal(fd, sig, nil, 0)
		}
		_ = unix.Close(fd)
	}
}
