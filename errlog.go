package leadership

import (
	"log/slog"
	"time"
)

// errLogger logs a repeating error once, then again only when it changes or
// a minute has passed, so an outage does not flood the log.
type errLogger struct {
	last   string
	at     time.Time
	failed bool
}

func (l *errLogger) log(log *slog.Logger, now time.Time, msg string, err error) {
	s := err.Error()
	if s != l.last || now.Sub(l.at) >= time.Minute {
		log.Warn(msg, "error", err)
		l.last, l.at = s, now
	}
	l.failed = true
}

func (l *errLogger) ok(log *slog.Logger, msg string) {
	if l.failed {
		log.Info(msg)
	}
	*l = errLogger{}
}
