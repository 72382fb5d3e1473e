package leadership

import (
	"context"
	"errors"
)

// pingAttempts bounds the answers to one probe: a conflict (the leader
// renewed, someone else wrote) means reading again and answering on the new
// version, but a lock that keeps changing must not keep the observer busy.
const pingAttempts = 4

// answerPing answers a liveness probe of this replica (Record.Ping naming
// its identity) that the observation holds and that is not answered yet. It
// runs on the observer's goroutine, between two observations: no goroutine
// per probe, and at most one answer in flight. answered is the last probe
// answered, owned by the caller, so that a backend that does not keep the
// answer cannot make us answer forever.
func (e *Elector) answerPing(ctx context.Context, answered *string) {
	pa, ok := e.lock.(PingAnswerer)
	if !ok {
		return
	}
	for range pingAttempts {
		o := e.snapshot()
		ping := o.rec.Ping
		if !o.exists || ping == "" || o.rec.Pong == ping || ping == *answered {
			return
		}
		if id, ok := PingTarget(ping); !ok || id != e.cfg.Identity {
			return
		}
		actx, cancel := context.WithTimeout(ctx, e.cfg.RenewInterval)
		res, err := pa.AnswerPing(actx, o.version, ping)
		cancel()
		switch {
		case err == nil:
			*answered = ping
			e.log.Debug("answered a liveness probe of a handover", "ping", ping)
			// A metadata-only change: the observation keeps its countdown.
			e.seeEvent(res)
			return
		case errors.Is(err, ErrConflict):
			// Read the newer record; if it still carries the probe, answer
			// on its version.
			if _, err := e.refresh(ctx); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("cannot read the lock to answer a liveness probe of a handover", "error", err)
				}
				return
			}
		default:
			if ctx.Err() == nil {
				e.log.Warn("cannot answer a liveness probe of a handover; `leadership handover` will refuse to hand over to this replica", "ping", ping, "error", err)
			}
			return
		}
	}
	e.log.Warn("the lock kept changing while answering a liveness probe of a handover; gave up", "ping", e.snapshot().rec.Ping)
}
