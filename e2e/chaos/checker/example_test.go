package checker_test

import (
	"fmt"
	"time"

	"github.com/leadership-dev/leadership/e2e/chaos/checker"
	"github.com/leadership-dev/leadership/e2e/chaos/ledger"
)

// A leader (token 10) is paused past its lease; its successor (token 20)
// begins and writes; the old leader resumes and its write is refused. The
// refused unit does not count as work, so there is no overlap.
func ExampleCheck() {
	ms := func(n int64) ledger.Mono { return ledger.Mono(n * int64(time.Millisecond)) }
	unit := func(who string, token uint64, begin, at int64, accepted bool) ledger.Record {
		return ledger.Record{
			Write: ledger.Write{Fleet: "f", Impl: ledger.ImplLeadership, Identity: who, PID: 1, Term: 1,
				Space: ledger.SpaceResourceVersion, Token: token, Begin: ms(begin), Sent: ms(at)},
			Result: ledger.Result{Accepted: accepted, At: ms(at)},
		}
	}
	h := ledger.History{
		Fleet: "f",
		Records: []ledger.Record{
			unit("a", 10, 0, 50, true),
			unit("b", 20, 2100, 2150, true),
			unit("a", 10, 60, 4000, false), // paused at 60ms, resumed at 4s
		},
		Faults: []ledger.Fault{{Fleet: "f", Kind: "SIGSTOP", Target: "a", At: ms(55), ExpectTakeover: true}},
		Start:  ms(0), End: ms(4100),
	}
	r := checker.Check(h)
	fmt.Println("overlaps:", len(r.Overlaps), "refused:", r.Refused, "safe:", r.Safe())
	fmt.Println("takeover:", r.Takeovers[0])
	// Output:
	// overlaps: 0 refused: 1 safe: true
	// takeover: 2.045s
}
