package proctest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/leadership-dev/leadership/internal/proctest"
)

func TestReadPidsAndExists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pids")
	cmd := exec.Command("sh", "-c", "echo $$ > "+path+"; exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pids := proctest.ReadPids(t, path, 1)
	if pids[0] != cmd.Process.Pid {
		t.Fatalf("read pid %d, started %d", pids[0], cmd.Process.Pid)
	}
	if !proctest.Exists(pids[0]) {
		t.Fatal("a running process does not exist")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if proctest.Exists(pids[0]) {
		t.Fatalf("pid %d exists after it was reaped", pids[0])
	}
	if proctest.Exists(os.Getpid()) != true {
		t.Fatal("this process does not exist: " + strconv.Itoa(os.Getpid()))
	}
}

// Eventually returns once a real process, reaped by another goroutine, is
// gone.
func TestEventuallyWaitsForARealCondition(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	reaped := make(chan error, 1)
	go func() { reaped <- cmd.Wait() }()
	proctest.Eventually(t, "the process to be reaped", func() bool { return !proctest.Exists(pid) })
	if err := <-reaped; err != nil {
		t.Fatalf("sleep 0.2: %v", err)
	}
}
