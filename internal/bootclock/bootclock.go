package bootclock

import "time"

// start anchors the fallback: where no suspend-aware clock exists, the
// monotonic clock is the best available and the suspend check degrades to a
// no-op (fencing tokens still cover a resumed leader).
var start = time.Now()

func fallback() time.Duration { return time.Since(start) }
