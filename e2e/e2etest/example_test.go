package e2etest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// printer stands in for a test's *testing.T: it prints what fails.
type printer struct{ testing.TB }

func (printer) Helper() {}

func (printer) Error(args ...any) {
	// The first words: the rest holds times and process ids.
	kind, _, _ := strings.Cut(fmt.Sprint(args...), " of ")
	fmt.Println("FAIL:", kind)
}

// Two replicas whose work functions ran at once: CheckLedger fails the test
// with the checker's account of the overlap.
func ExampleCheckLedger() {
	led := ledger.NewLocal("my-lease")
	a, _ := led.Replica("a", ledger.ImplLeadership)
	b, _ := led.Replica("b", ledger.ImplLeadership)
	ta := a.Begin(41)
	tb := b.Begin(57) // a has not returned yet
	ta.End()
	tb.End()

	var t testing.TB = printer{} // in a test: t
	r := e2etest.CheckLedger(t, led)
	fmt.Println("overlapping lead intervals:", len(r.LeadOverlaps))
	// Output:
	// FAIL: overlap
	// overlapping lead intervals: 1
}
