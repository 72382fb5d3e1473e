//go:build !linux

// Package bootclock reads a clock that keeps counting while the machine is
// suspended, unlike the monotonic clock that Go's timers follow.
package bootclock

import "time"

// Now returns the monotonic time since process start: this platform has no
// suspend-aware clock wired in.
func Now() time.Duration { return fallback() }
