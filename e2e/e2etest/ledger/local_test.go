package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLocalRecordsTermsAndUnits(t *testing.T) {
	l := NewLocal("f")
	a, err := l.Replica("a", ImplLeadership)
	if err != nil {
		t.Fatal(err)
	}
	cg, err := l.Replica("cg", ImplClientGo)
	if err != nil {
		t.Fatal(err)
	}
	first := a.Begin(10)
	if !first.Unit() {
		t.Fatal("the first write of the fleet was refused")
	}
	first.End()
	cg.Begin(0).End()
	second := a.Begin(12)
	second.Unit()
	if got := l.Active(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("active %v, want [a]", got)
	}
	if last, ok := l.Last(""); !ok || last.Identity != "a" || last.Term != 2 || !last.Open || last.Token != 12 {
		t.Fatalf("last term %+v, want a's second, running, token 12", last)
	}
	if last, ok := l.Last("cg"); !ok || last.Open || last.End < last.Start {
		t.Fatalf("client-go's term %+v, want ended", last)
	}
	late := a.Begin(11) // a stale token: the fenced store refuses it
	if late.Unit() {
		t.Fatal("a write under token 11 after one under 12 was accepted")
	}
	second.End()
	late.End()
	h := l.History()
	if len(h.Records) != 3 || len(h.Events) != 8 || h.Start <= 0 || h.End < h.Start {
		t.Fatalf("history: %d records, %d events, window %d..%d", len(h.Records), len(h.Events), h.Start, h.End)
	}
	if r := h.Records[2]; r.Accepted || r.Term != 3 || r.Space != SpaceResourceVersion {
		t.Fatalf("the stale write was recorded as %+v", r)
	}
	for _, e := range h.Events {
		if e.Identity == "cg" && e.Impl != ImplClientGo {
			t.Fatalf("client-go's event recorded as %q", e.Impl)
		}
	}
}

func TestLocalRefusesBadReplicas(t *testing.T) {
	for _, tc := range []struct {
		fleet, identity, impl, want string
	}{
		{"", "a", ImplLeadership, "fleet has no name"},
		{"f", "", ImplLeadership, "needs an identity"},
		{"f", "a", "etcd", `implementation "etcd"`},
	} {
		if _, err := NewLocal(tc.fleet).Replica(tc.identity, tc.impl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Replica(%q, %q) in fleet %q: %v, want an error saying %q", tc.identity, tc.impl, tc.fleet, err, tc.want)
		}
	}
}

func TestLocalAwait(t *testing.T) {
	l := NewLocal("f")
	a, err := l.Replica("a", ImplLeadership)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// An hour's poll: only the ledger's change can wake it in time.
		done <- l.Await(context.Background(), time.Minute, time.Hour, "a leader", func(ls []Lead) bool { return len(ls) == 1 })
	}()
	a.Begin(1)
	returns(t, done, "Await did not wake on the term's start")
	err = l.Await(context.Background(), 10*time.Millisecond, time.Millisecond, "two leaders", func(ls []Lead) bool { return len(ls) == 2 })
	if err == nil || !strings.Contains(err.Error(), "waiting for two leaders") {
		t.Fatalf("Await on a condition never met: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Await(ctx, time.Minute, time.Hour, "two leaders", func([]Lead) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await with a cancelled context: %v", err)
	}
}

// Two in-process replicas, one after the other: their terms as a test sees
// them while they run. (e2etest.CheckLedger judges the History by the
// checker's definitions.)
func ExampleLocal() {
	l := NewLocal("my-lease")
	a, _ := l.Replica("a", ImplLeadership)
	b, _ := l.Replica("b", ImplLeadership)

	term := a.Begin(41) // first thing in a's work function
	term.Unit()         // a unit of its work, under its fencing token
	term.End()          // as the work function returns
	b.Begin(57).Unit()  // b leads now

	for _, ld := range l.Leads() {
		fmt.Println(ld.Identity, ld.Token, "running:", ld.Open)
	}
	fmt.Println("active:", l.Active())
	// Output:
	// a 41 running: false
	// b 57 running: true
	// active: [b]
}

func TestMonoTime(t *testing.T) {
	before := time.Now()
	m := Now()
	after := time.Now()
	// Within the two readings, give or take the time between the two
	// clocks' readings inside Time (generous: a loaded machine may
	// preempt in between).
	const slack = 100 * time.Millisecond
	if got := m.Time(); got.Before(before.Add(-slack)) || got.After(after.Add(slack)) {
		t.Fatalf("Now().Time() = %v, want between %v and %v", got, before, after)
	}
	if d := m.Add(time.Second).Time().Sub(m.Time()); d < time.Second-slack || d > time.Second+slack {
		t.Fatalf("a second later on CLOCK_MONOTONIC is %v later on the wall clock", d)
	}
}
