package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/leadership-dev/leadership"
)

// These tests run on client-go's fake clientset in a synctest bubble:
// they check what the Recorder sends and that it never blocks an elector,
// not what an API server does with it (e2e/cli's tests record Events on a
// real one, with the chart's RBAC).

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// created records the Events the clientset was asked to create, in order.
type created struct {
	mu  sync.Mutex
	evs []*eventsv1.Event
}

func (c *created) reactor(a k8stesting.Action) (bool, runtime.Object, error) {
	ev := a.(k8stesting.CreateAction).GetObject().(*eventsv1.Event)
	c.mu.Lock()
	c.evs = append(c.evs, ev.DeepCopy())
	c.mu.Unlock()
	return false, nil, nil // and let the tracker store it
}

func (c *created) all() []*eventsv1.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*eventsv1.Event(nil), c.evs...)
}

// Each moment of a term becomes the Event a reader of `kubectl describe
// lease` expects, on the Lease, with its UID; a term that ended by the
// replica's own choice is not reported as lost.
func TestHooksRecordTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "renewer", UID: "uid-1"}}
		cs := fake.NewClientset(lease)
		var got created
		cs.PrependReactor("create", "events", got.reactor)
		r := NewRecorder(cs, "ns", "renewer", "a", quiet())
		h := r.Hooks()
		term := leadership.Term{Identity: "a", Token: 7}
		h.OnAcquire(term, "b", 1500*time.Millisecond)
		h.OnTermEnd(term, leadership.ErrHandover)
		h.OnRelease(term, nil)
		h.OnAcquire(term, "", 0)
		h.OnTermEnd(term, leadership.ErrResigned)
		h.OnTermEnd(term, leadership.ErrLockLost)
		h.OnRelease(term, errors.New("conflict"))
		r.Close(t.Context())

		want := []struct{ reason, typ, note string }{
			{ReasonAcquired, "Normal", "a became leader with fencing token 7, taking over from b 1.5s after the lock became free"},
			{ReasonHandover, "Normal", "a stepped down (token 7): a handover was requested"},
			{ReasonReleased, "Normal", "a released the lock after its work returned (token 7)"},
			{ReasonAcquired, "Normal", "a became leader with fencing token 7"},
			{ReasonLost, "Warning", "a lost leadership (token 7): " + leadership.ErrLockLost.Error()},
		}
		evs := got.all()
		if len(evs) != len(want) {
			for _, ev := range evs {
				t.Logf("%s %s: %s", ev.Type, ev.Reason, ev.Note)
			}
			t.Fatalf("%d events created; want %d", len(evs), len(want))
		}
		for i, w := range want {
			ev := evs[i]
			if ev.Reason != w.reason || ev.Type != w.typ || ev.Note != w.note {
				t.Errorf("event %d: %s %s %q; want %s %s %q", i, ev.Type, ev.Reason, ev.Note, w.typ, w.reason, w.note)
			}
			if ev.Regarding.Kind != "Lease" || ev.Regarding.Name != "renewer" || ev.Regarding.UID != "uid-1" || ev.Namespace != "ns" {
				t.Errorf("event %d regards %+v in %q; want the Lease ns/renewer with its UID", i, ev.Regarding, ev.Namespace)
			}
			if ev.ReportingController != Controller || ev.ReportingInstance != "a" {
				t.Errorf("event %d reported by %q/%q", i, ev.ReportingController, ev.ReportingInstance)
			}
		}
	})
}

// An API server that hangs delays no hook, a full queue drops events
// instead of growing, and Close gives up when its context is done.
func TestHooksNeverBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		hang := make(chan struct{})
		var calls sync.WaitGroup
		cs.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
			<-hang
			return false, nil, nil
		})
		r := NewRecorder(cs, "ns", "renewer", "a", quiet())
		h := r.Hooks()
		calls.Go(func() {
			for range 10 * queueSize {
				h.OnAcquire(leadership.Term{Token: 1}, "", 0)
			}
		})
		synctest.Wait()
		done := make(chan struct{})
		go func() { calls.Wait(); close(done) }()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("a hook blocked on a hanging API server")
		}
		if n := len(r.queue); n != queueSize {
			t.Errorf("%d events queued; want the queue full at %d, the rest dropped", n, queueSize)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		r.Close(ctx)
		if took := time.Since(start); took != 10*time.Second {
			t.Errorf("Close returned after %v; want it to give up with its context, at 10s", took)
		}
		close(hang) // the loop ends; the bubble checks that nothing is left
	})
}

// A Lease name at the limit still gives valid Event names, and a long
// identity or note is cut to what the API accepts.
func TestNamesStayValid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		var got created
		cs.PrependReactor("create", "events", got.reactor)
		long := strings.Repeat("l", 253)
		r := NewRecorder(cs, "ns", long, strings.Repeat("i", 300), quiet())
		r.Emit("Normal", ReasonAcquired, "Acquire", strings.Repeat("n", 2000))
		r.Emit("Normal", ReasonAcquired, "Acquire", "again")
		r.Close(t.Context())
		evs := got.all()
		if len(evs) != 2 {
			t.Fatalf("%d events; want 2", len(evs))
		}
		if evs[0].Name == evs[1].Name {
			t.Errorf("two events share the name %q", evs[0].Name)
		}
		for _, ev := range evs {
			if errs := validation.IsDNS1123Subdomain(ev.Name); len(errs) > 0 {
				t.Errorf("event name %q: %v", ev.Name, errs)
			}
			if len(ev.ReportingInstance) > 128 || len(ev.Note) > 1024 {
				t.Errorf("reportingInstance of %d bytes, note of %d: the API refuses more than 128 and 1024", len(ev.ReportingInstance), len(ev.Note))
			}
		}
	})
}
