package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func write(fleet, space string, token uint64) Write {
	now := Now()
	return Write{Fleet: fleet, Impl: ImplLeadership, Identity: "a", PID: 1, Term: 1, Space: space, Token: token, Begin: now, Sent: now}
}

func TestFencing(t *testing.T) {
	s := NewStore()
	steps := []struct {
		w      Write
		accept bool
		high   uint64
	}{
		{write("f", SpaceResourceVersion, 10), true, 10},
		{write("f", SpaceResourceVersion, 10), true, 10}, // same term, same token
		{write("f", SpaceResourceVersion, 12), true, 12},
		{write("f", SpaceResourceVersion, 11), false, 12}, // stale
		{write("f", SpaceLeaseTransitions, 1), true, 1},   // another space
		{write("g", SpaceResourceVersion, 5), true, 5},    // another fleet
		{write("f", SpaceResourceVersion, 0), false, 12},
	}
	var last Mono
	for i, st := range steps {
		r, err := s.Apply(st.w)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if r.Accepted != st.accept || r.Highest != st.high {
			t.Fatalf("step %d (%s/%s token %d): got accepted=%v highest=%d, want %v %d", i, st.w.Fleet, st.w.Space, st.w.Token, r.Accepted, r.Highest, st.accept, st.high)
		}
		if r.At < last {
			t.Fatalf("step %d: decision time went backwards", i)
		}
		last = r.At
	}
	h := s.History("f")
	if len(h.Records) != 6 || h.Records[3].Accepted || !h.Records[2].Accepted {
		t.Fatalf("history of f: %+v", h.Records)
	}
	if n := len(s.History("none").Records); n != 0 {
		t.Fatalf("unknown fleet has %d records", n)
	}
}

func TestBadWritesAndEvents(t *testing.T) {
	s := NewStore()
	good := write("f", SpaceResourceVersion, 1)
	for name, mod := range map[string]func(*Write){
		"no fleet":      func(w *Write) { w.Fleet = "" },
		"no identity":   func(w *Write) { w.Identity = "" },
		"term 0":        func(w *Write) { w.Term = 0 },
		"unknown space": func(w *Write) { w.Space = "epoch" },
		"no begin":      func(w *Write) { w.Begin = 0 },
		"sent < begin":  func(w *Write) { w.Sent = w.Begin - 1 },
	} {
		w := good
		mod(&w)
		if _, err := s.Apply(w); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := len(s.History("f").Records); n != 0 {
		t.Fatalf("invalid writes were recorded: %d", n)
	}
	if err := s.AddEvent(Event{Fleet: "f", Identity: "a", Kind: "party", At: Now()}); err == nil || !strings.Contains(err.Error(), "party") {
		t.Fatalf("unknown event kind: %v", err)
	}
	if err := s.AddEvent(Event{Fleet: "f", Identity: "a", Kind: EventReady}); err == nil {
		t.Fatal("event without a time accepted")
	}
}

func TestServeAndClient(t *testing.T) {
	srv, err := Serve()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := NewClient(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r, err := c.Write(ctx, write("f", SpaceResourceVersion, 7)); err != nil || !r.Accepted || r.Highest != 7 {
		t.Fatalf("write: %+v %v", r, err)
	}
	if r, err := c.Write(ctx, write("f", SpaceResourceVersion, 6)); err != nil || r.Accepted || r.Highest != 7 {
		t.Fatalf("stale write: %+v %v", r, err)
	}
	if err := c.Event(ctx, Event{Fleet: "f", Identity: "a", PID: 1, Kind: EventLeadStart, Term: 1, Token: 7, At: Now()}); err != nil {
		t.Fatal(err)
	}
	if h := srv.History("f"); len(h.Records) != 2 || len(h.Events) != 1 {
		t.Fatalf("history: %d records, %d events", len(h.Records), len(h.Events))
	}
	// A bad request gets a 400 that says what is wrong.
	bad := write("f", "epoch", 1)
	if _, err := c.Write(ctx, bad); err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), `token space "epoch"`) {
		t.Fatalf("bad write: %v", err)
	}
	resp, err := http.Post("http://"+srv.Addr()+"/write", "application/json", strings.NewReader(`{"fleet": "f", "tokn": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: status %d, want 400", resp.StatusCode)
	}
}

func TestClientRefusesRemoteAddress(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "no-port"} {
		if _, err := NewClient(addr); err == nil {
			t.Errorf("%s accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:80", "[::1]:80", "localhost:80"} {
		if _, err := NewClient(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestWait(t *testing.T) {
	s := NewStore()
	done := make(chan error, 1)
	go func() {
		done <- s.Wait(context.Background(), "f", func(v View) bool {
			r, ok := v.LastAccepted()
			return ok && r.Token == 3
		})
	}()
	for tok := uint64(1); tok <= 3; tok++ {
		if _, err := s.Apply(write("f", SpaceResourceVersion, tok)); err != nil {
			t.Fatal(err)
		}
	}
	returns(t, done, "Wait did not see the write")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx, "f", func(View) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a condition never met: %v", err)
	}
}

// returns waits for what a waiter sends on done, and fails the test with
// its error, or with stuck if nothing comes within a generous time.
func returns(t *testing.T, done <-chan error, stuck string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal(stuck)
	}
}

func TestNowIsMonotonic(t *testing.T) {
	a := Now()
	time.Sleep(time.Millisecond)
	b := Now()
	if b.Sub(a) < time.Millisecond {
		t.Fatalf("CLOCK_MONOTONIC advanced %v over a 1ms sleep", b.Sub(a))
	}
}

// A paused leader's write, arriving after its successor's, is refused.
func ExampleStore_Apply() {
	s := NewStore()
	old := Write{Fleet: "credentials", Impl: ImplLeadership, Identity: "a", PID: 1, Term: 1,
		Space: SpaceResourceVersion, Token: 41, Begin: Now(), Sent: Now()}
	successor := old
	successor.Identity, successor.Token = "b", 57

	r, _ := s.Apply(successor)
	fmt.Println("successor accepted:", r.Accepted)
	r, _ = s.Apply(old)
	fmt.Println("paused leader accepted:", r.Accepted, "highest:", r.Highest)
	// Output:
	// successor accepted: true
	// paused leader accepted: false highest: 57
}

func TestFreezeAndThaw(t *testing.T) {
	s := NewStore()
	s.AddFreeze(Freeze{Fleet: "f", Identity: "a", PID: 7, From: 100})
	s.AddFreeze(Freeze{Fleet: "f", Identity: "b", PID: 8, From: 150})
	s.Thaw("f", 7, 300)
	s.Thaw("f", 7, 400) // no open freeze of 7 left: nothing changes
	h := s.History("f")
	if len(h.Freezes) != 2 || h.Freezes[0].To != 300 || h.Freezes[1].To != 0 {
		t.Fatalf("freezes %+v, want a 100..300 and b still stopped", h.Freezes)
	}
	if err := s.AddEvent(Event{Fleet: "f", Identity: "a", PID: 7, Kind: EventGone, At: 500}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvent(Event{Fleet: "f", Identity: "a", Kind: EventLeadStart, At: 500}); err == nil {
		t.Fatal("a lead-start without a term was accepted")
	}
}
