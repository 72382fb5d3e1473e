package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/leadership-dev/leadership"
)

func TestHooksUpdateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, "ns", "l")
	if err != nil {
		t.Fatal(err)
	}
	h := m.Hooks()
	h.OnAttempt(nil)
	h.OnAttempt(leadership.ErrConflict)
	h.OnAttempt(errors.New("boom"))
	h.OnRenew(10*time.Millisecond, nil)
	h.OnRenew(20*time.Millisecond, errors.New("timeout"))
	h.OnLeader(leadership.Leader{Identity: "a", Token: 5})
	h.OnLeader(leadership.Leader{Identity: ""})
	h.OnLeader(leadership.Leader{Identity: "a", Token: 7})
	h.OnLeader(leadership.Leader{Identity: "b", Token: 9, Self: true})
	h.OnTermEnd(leadership.Term{Token: 9}, leadership.ErrHandover)
	h.OnRelease(leadership.Term{Token: 9}, nil)

	for name, want := range map[string]float64{
		"success": 1, "conflict": 1, "error": 1,
	} {
		if got := testutil.ToFloat64(m.attempts.WithLabelValues(name)); got != want {
			t.Errorf("attempts %s = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(m.renewFail); got != 1 {
		t.Errorf("renew failures = %v", got)
	}
	// a → (released) → a again is no change of holder; → b is.
	if got := testutil.ToFloat64(m.transitions); got != 2 {
		t.Errorf("transitions = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.isLeader); got != 1 {
		t.Errorf("is_leader = %v", got)
	}
	if got := testutil.ToFloat64(m.termEnds.WithLabelValues("handover")); got != 1 {
		t.Errorf("term ends = %v", got)
	}
	if got := m.remaining(); got != 0 {
		t.Errorf("remaining validity without a term = %v", got)
	}
	// A second elector on another Lease shares the registry.
	if _, err := New(reg, "ns", "other"); err != nil {
		t.Fatalf("second lease on one registry: %v", err)
	}
}

func TestTransportCounts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusConflict)
		}
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	m, _ := New(reg, "ns", "l")
	c := &http.Client{Transport: m.WrapTransport(http.DefaultTransport)}
	get, _ := http.NewRequest(http.MethodGet, srv.URL+"/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", nil)
	put, _ := http.NewRequest(http.MethodPut, srv.URL+"/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", strings.NewReader("{}"))
	for _, r := range []*http.Request{get, put} {
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	bad, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/api/v1/namespaces", nil)
	if _, err := c.Do(bad); err == nil {
		t.Fatal("expected a connection error")
	}
	for _, c := range []struct{ verb, code string }{{"get", "200"}, {"update", "409"}, {"list", "error"}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.verb, c.code)); got != 1 {
			t.Errorf("requests{%s,%s} = %v, want 1", c.verb, c.code, got)
		}
	}
}
