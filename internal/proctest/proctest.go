// Package proctest holds what the tests of the process-containment
// packages (supervise, watchdog, contain) share: waiting for a condition on
// real processes, waiting for the pids a test script writes, and asking the
// kernel whether a pid still exists.
package proctest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it holds, and fails the test,
// naming what it waited for, if it does not within 30 s. It is for the state
// of real processes and of the kernel, which move on their own: a virtual
// clock (testing/synctest) cannot stand in for them.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventually(t, 30*time.Second, what, cond)
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ReadPids waits (up to 30 s) until path holds n pids, one per line, and
// returns them.
func ReadPids(t testing.TB, path string, n int) []int {
	t.Helper()
	var lines []string
	Eventually(t, fmt.Sprintf("%d pids in %s", n, path), func() bool {
		b, _ := os.ReadFile(path)
		lines = strings.Split(string(b), "\n")
		return len(lines) > n
	})
	pids := make([]int, n)
	for i := range pids {
		p, err := strconv.Atoi(strings.TrimSpace(lines[i]))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pids[i] = p
	}
	return pids
}

// Exists reports whether pid is in /proc at all, zombie or not.
func Exists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}
