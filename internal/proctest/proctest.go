// Package proctest holds what the tests of the process-containment
// packages (supervise, watchdog, contain) share: waiting for the pids a
// test script writes, and asking the kernel whether a pid still exists.
package proctest

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ReadPids waits (up to 30 s) until path holds n pids, one per line, and
// returns them.
func ReadPids(t testing.TB, path string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if lines := strings.Split(string(b), "\n"); len(lines) > n {
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
		if time.Now().After(deadline) {
			t.Fatalf("no %d pids in %s", n, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Exists reports whether pid is in /proc at all, zombie or not.
func Exists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}
