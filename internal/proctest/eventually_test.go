package proctest

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf keeps the message and ends the
// goroutine, as testing.T's does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventuallyFailsNamingWhatItWaitedFor(t *testing.T) {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventually(r, 50*time.Millisecond, "the impossible", func() bool { return false })
	}()
	<-done
	if want := "timed out after 50ms waiting for the impossible"; r.msg != want {
		t.Fatalf("failed with %q, want %q", r.msg, want)
	}
}
