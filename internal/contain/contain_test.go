package contain

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/internal/proctest"
)

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func TestDescendants(t *testing.T) {
	procs := []Proc{{Pid: 10, PPid: 1}, {Pid: 11, PPid: 10}, {Pid: 12, PPid: 11}, {Pid: 13, PPid: 1}, {Pid: 14, PPid: 12}}
	var got []int
	for _, p := range Descendants(procs, 10) {
		got = append(got, p.Pid)
	}
	if fmt.Sprint(got) != "[11 12 14]" {
		t.Fatalf("descendants of 10: %v", got)
	}
}

func TestStatOfSelf(t *testing.T) {
	p, err := Stat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.PPid != os.Getppid() || p.Pgid != syscall.Getpgrp() || p.Zombie() {
		t.Fatalf("stat of self: %+v", p)
	}
}

// orphan starts a shell in a process group of its own that leaves behind
// a process in a new session running script, and returns that process's
// pid once the shell has exited (so it is re-parented to this subreaper).
func orphan(t *testing.T, script string) int {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("sh", "-c", `setsid sh -c 'echo $$ > `+pidFile+`; `+script+`' </dev/null >/dev/null 2>&1 &
while [ ! -s `+pidFile+` ]; do sleep 0.01; done`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestReaperReapsOrphans: an orphan re-parented to the subreaper is reaped
// when it exits (no zombie is left), while a child that other code of this
// process waits for (in its own process group) is left to that code.
func TestReaperReapsOrphans(t *testing.T) {
	r, err := NewReaper(testLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	pid := orphan(t, "exec sleep 0.3")
	p, err := Stat(pid)
	if err != nil || p.PPid != os.Getpid() {
		t.Fatalf("orphan %d not re-parented to this subreaper: %+v, %v", pid, p, err)
	}
	proctest.Eventually(t, "the orphan to be reaped", func() bool { return !proctest.Exists(pid) })

	// Children in this process's own group belong to their starters.
	for i := 0; i < 20; i++ {
		cmd := exec.Command("sh", "-c", "exit 3")
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("a child of this process's own group lost its status to the reaper: %v", err)
		}
	}
}

// TestKillAdopted: a daemon in a session of its own, re-parented to the
// subreaper, is killed and reaped.
func TestKillAdopted(t *testing.T) {
	r, err := NewReaper(testLog)
	if err != nil {
		t.Fatal(err)
	}
	pid := orphan(t, `trap "" TERM HUP; while :; do sleep 0.05; done`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.KillAdopted(ctx); err != nil {
		t.Fatal(err)
	}
	if proctest.Exists(pid) {
		t.Fatalf("adopted daemon %d exists after KillAdopted", pid)
	}
}

// TestCgroup: where a sub-cgroup can be made, a process started into it
// is killed by Kill and the cgroup reads empty after.
func TestCgroup(t *testing.T) {
	cgs, err := DetectCgroups()
	if err != nil {
		t.Skipf("no sub-cgroup can be made here (the error tells why): %v", err)
	}
	cg, err := cgs.New(fmt.Sprintf("leadership-contain-test-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := cg.Open()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "setsid sleep 600 & sleep 600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	if p, err := cg.Populated(); err != nil || !p {
		t.Fatalf("populated = %v, %v; want true", p, err)
	}
	if err := cg.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	r, err := NewReaper(testLog) // the setsid sleep was re-parented here
	if err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, "the cgroup to be empty", func() bool {
		r.Reap()
		p, err := cg.Populated()
		return err == nil && !p
	})
	if err := cg.Remove(); err != nil {
		t.Fatal(err)
	}
}
