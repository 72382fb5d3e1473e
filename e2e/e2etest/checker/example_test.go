package checker_test

import (
	"fmt"
	"time"

	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// A leader (token 10) is paused past its lease (SIGSTOP); its successor
// (token 20) begins and writes; the old leader resumes, its write is
// refused and its work function returns. The lead intervals overlap, but
// the old leader's process was frozen: a frozen-process overlap, which only
// the fenced store can catch (and did), reported apart from the overlaps
// that break the promise.
func ExampleCheck() {
	ms := func(n int64) ledger.Mono { return ledger.Mono(n * int64(time.Millisecond)) }
	pid := map[string]int{"a": 1, "b": 2}
	unit := func(who string, token uint64, begin, at int64, accepted bool) ledger.Record {
		return ledger.Record{
			Write: ledger.Write{Fleet: "f", Impl: ledger.ImplLeadership, Identity: who, PID: pid[who], Term: 1,
				Space: ledger.SpaceResourceVersion, Token: token, Begin: ms(begin), Sent: ms(at)},
			Result: ledger.Result{Accepted: accepted, At: ms(at)},
		}
	}
	lead := func(who, kind string, token uint64, at int64) ledger.Event {
		return ledger.Event{Fleet: "f", Impl: ledger.ImplLeadership, Identity: who, PID: pid[who], Kind: kind, Term: 1, Token: token, At: ms(at)}
	}
	h := ledger.History{
		Fleet: "f",
		Records: []ledger.Record{
			unit("a", 10, 0, 50, true),
			unit("b", 20, 2100, 2150, true),
			unit("a", 10, 60, 4000, false), // paused at 60ms, resumed at 4s
		},
		Events: []ledger.Event{
			lead("a", ledger.EventLeadStart, 10, 0),
			lead("b", ledger.EventLeadStart, 20, 2100),
			lead("b", ledger.EventLeadEnd, 20, 4050),
			lead("a", ledger.EventLeadEnd, 10, 4010),
		},
		Faults:  []ledger.Fault{{Fleet: "f", Kind: "SIGSTOP", Target: "a", At: ms(55), ExpectTakeover: true}},
		Freezes: []ledger.Freeze{{Fleet: "f", Identity: "a", PID: 1, From: ms(55), To: ms(3990)}},
		Start:   ms(0), End: ms(4100),
	}
	r := checker.Check(h)
	fmt.Println("lead overlaps:", len(r.LeadOverlaps), "frozen-process overlaps:", len(r.FrozenOverlaps), "of", r.FrozenOverlapTime())
	fmt.Println("accepted work overlaps:", len(r.AcceptedOverlaps), "refused:", r.Refused, "safe:", r.Safe())
	fmt.Println("takeover:", r.Takeovers[0])
	// Output:
	// lead overlaps: 0 frozen-process overlaps: 1 of 1.91s
	// accepted work overlaps: 0 refused: 1 safe: true
	// takeover: 2.045s
}
