package kubelease

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/leadership-dev/leadership"
)

// watchOnly serves one scripted watch; every other method is unused here.
type watchOnly struct {
	coordinationv1client.LeaseInterface
	w *watch.FakeWatcher
}

func (s watchOnly) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return s.w, nil
}

type watchGetter struct{ w *watch.FakeWatcher }

func (g watchGetter) Leases(string) coordinationv1client.LeaseInterface { return watchOnly{w: g.w} }

// A watch that breaks must say why, as a Failed event, instead of closing
// silently: 410 Gone, 403 and decode failures each reach the elector.
func TestWatchReportsFailures(t *testing.T) {
	status := func(code int32, reason metav1.StatusReason) *metav1.Status {
		return &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: string(reason)}
	}
	cases := []struct {
		name string
		send func(w *watch.FakeWatcher)
		want error
		text string
	}{
		{"gone", func(w *watch.FakeWatcher) { w.Error(status(http.StatusGone, metav1.StatusReasonGone)) }, leadership.ErrExpired, ""},
		{"expired", func(w *watch.FakeWatcher) { w.Error(status(http.StatusGone, metav1.StatusReasonExpired)) }, leadership.ErrExpired, ""},
		{"forbidden", func(w *watch.FakeWatcher) { w.Error(status(http.StatusForbidden, metav1.StatusReasonForbidden)) }, leadership.ErrForbidden, "watch"},
		{"server error", func(w *watch.FakeWatcher) {
			w.Error(status(http.StatusInternalServerError, metav1.StatusReasonInternalError))
		}, nil, "InternalError"},
		{"undecodable", func(w *watch.FakeWatcher) {
			w.Modify(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "x", ResourceVersion: "abc"}})
		}, nil, "not a positive decimal number"},
		{"not a Lease", func(w *watch.FakeWatcher) { w.Modify(&coordinationv1.LeaseList{}) }, nil, "not a Lease"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fw := watch.NewFake()
			l, err := New(watchGetter{w: fw}, "ns", "x")
			if err != nil {
				t.Fatal(err)
			}
			ch, err := l.Watch(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			go c.send(fw)
			ev, ok := <-ch
			if !ok || ev.Type != leadership.Failed || ev.Err == nil {
				t.Fatalf("got %+v (open %v), want a Failed event", ev, ok)
			}
			if c.want != nil && !errors.Is(ev.Err, c.want) {
				t.Fatalf("error %v does not wrap %v", ev.Err, c.want)
			}
			if c.text != "" && !strings.Contains(ev.Err.Error(), c.text) {
				t.Fatalf("error %q does not say %q", ev.Err, c.text)
			}
			if _, ok := <-ch; ok {
				t.Fatal("the channel stayed open after a Failed event")
			}
		})
	}
}
