package watchdog_test

import (
	"time"

	"github.com/leadership-dev/leadership/internal/watchdog"
)

// The supervisor's side: start a watchdog that runs ./work once armed,
// pass it deadlines, stop it, and wait for the tree to be gone.
func ExampleStart() {
	c, err := watchdog.Start(watchdog.Options{
		Exe:  "/usr/local/bin/leadership",
		Args: []string{"internal-watchdog", "--", "./work"},
	})
	if err != nil {
		return
	}
	c.SetDeadline(watchdog.In(10*time.Second), 3*time.Second) // arms it; ./work starts
	// ... after each renewal: c.SetDeadline(...); when the term ends:
	c.Stop(3 * time.Second)
	select {
	case <-c.Gone():
		_ = c.Close()
	case <-c.Lost():
		c.Kill() // then kill the tree, now re-parented to this subreaper
	}
}
