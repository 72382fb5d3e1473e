package podlock_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/leadership-dev/leadership/internal/podlock"
)

// A term takes the lock before it writes its proof, and a restarted
// process that takes it again without waiting knows the term is gone.
func ExampleAcquire() {
	dir, err := os.MkdirTemp("", "podlock")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, podlock.FileName("Lease default/db"))
	term, err := podlock.Acquire(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = podlock.Acquire(path)
	fmt.Println("while the term lives:", errors.Is(err, podlock.ErrHeld))
	proof := term.Proof()
	term.Close() // the term's last process is gone
	next, err := podlock.Acquire(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer next.Close()
	fmt.Println("after:", next.Proof() == proof)
	// Output:
	// while the term lives: true
	// after: true
}
