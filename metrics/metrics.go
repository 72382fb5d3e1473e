// Package metrics turns an elector's Hooks into Prometheus metrics, and
// counts the Kubernetes API requests its client makes.
//
// All metrics carry the constant labels namespace and lease, so that one
// process may register the metrics of several electors on one registry:
//
//	leadership_is_leader                      1 while this replica leads
//	leadership_token                          fencing token of the holder as last observed (this replica's own while it leads)
//	leadership_transitions_total              holder changes observed (to a different replica)
//	leadership_acquire_attempts_total{result} writes that tried to acquire the lock: success, conflict, error
//	leadership_renew_duration_seconds         round-trip latency of renewals (histogram)
//	leadership_renew_failures_total           renewals that failed
//	leadership_validity_remaining_seconds     how long the current term stays valid without another renewal; 0 when not leading
//	leadership_takeover_duration_seconds      from the lock becoming free to this replica's acquisition (histogram)
//	leadership_term_ends_total{cause}         terms of this replica that ended, by cause
//	leadership_releases_total{result}         releases written after a term: success, error
//	leadership_api_requests_total{verb,code}  API requests made through the instrumented client
package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
)

// Metrics are the Prometheus metrics of one elector.
type Metrics struct {
	isLeader    prometheus.Gauge
	token       prometheus.Gauge
	transitions prometheus.Counter
	attempts    *prometheus.CounterVec
	renew       prometheus.Histogram
	renewFail   prometheus.Counter
	takeover    prometheus.Histogram
	termEnds    *prometheus.CounterVec
	releases    *prometheus.CounterVec
	requests    *prometheus.CounterVec

	mu         sync.Mutex
	term       *leadership.Term // the current term, nil when not leading
	lastHolder string
}

// New creates the metrics of the elector on Lease namespace/lease and
// registers them on reg.
func New(reg prometheus.Registerer, namespace, lease string) (*Metrics, error) {
	labels := prometheus.Labels{"namespace": namespace, "lease": lease}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "leadership", Name: name, Help: help, ConstLabels: labels}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts(opts(name, help)))
	}
	vec := func(name, help string, l ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), l)
	}
	m := &Metrics{
		isLeader:    gauge("is_leader", "1 while this replica leads, else 0."),
		token:       gauge("token", "Fencing token of the holder as last observed: this replica's own while it leads, else what the holder published (0 if none yet)."),
		transitions: counter("transitions_total", "Changes of the observed holder to a different replica."),
		attempts:    vec("acquire_attempts_total", "Writes that tried to acquire the lock, by result (success, conflict, error).", "result"),
		renew: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "leadership", Name: "renew_duration_seconds", ConstLabels: labels,
			Help:    "Round-trip latency of renewals, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		renewFail: counter("renew_failures_total", "Renewals that failed (the term continues while validity remains)."),
		takeover: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "leadership", Name: "takeover_duration_seconds", ConstLabels: labels,
			Help:    "Takeover latency as this replica saw it: from the lock becoming free to take (a release or deletion seen, or the holder's lease run out) to this replica's acquiring write.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		termEnds: vec("term_ends_total", "Terms of this replica that ended, by cause.", "cause"),
		releases: vec("releases_total", "Releases of the lock after a term, by result (success, error).", "result"),
		requests: vec("api_requests_total", "Kubernetes API requests by verb (get, list, watch, create, update, patch, delete) and HTTP status code (or \"error\" when no response came).", "verb", "code"),
	}
	remaining := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("validity_remaining_seconds",
		"How long the current term stays valid if no renewal succeeds from now on; 0 when not leading.")), m.remaining)
	for _, c := range []prometheus.Collector{m.isLeader, m.token, m.transitions, m.attempts, m.renew, m.renewFail,
		m.takeover, m.termEnds, m.releases, m.requests, remaining} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) remaining() float64 {
	m.mu.Lock()
	t := m.term
	m.mu.Unlock()
	if t == nil {
		return 0
	}
	return max(0, t.Remaining().Seconds())
}

// Hooks returns the hooks that update the metrics; set them as
// leadership.Config.Hooks (or call them from your own).
func (m *Metrics) Hooks() leadership.Hooks {
	return leadership.Hooks{
		OnAttempt: func(err error) {
			switch {
			case err == nil:
				m.attempts.WithLabelValues("success").Inc()
			case errors.Is(err, leadership.ErrConflict):
				m.attempts.WithLabelValues("conflict").Inc()
			default:
				m.attempts.WithLabelValues("error").Inc()
			}
		},
		OnAcquire: func(t leadership.Term, previous string, waited time.Duration) {
			m.mu.Lock()
			m.term = &t
			m.mu.Unlock()
			m.takeover.Observe(waited.Seconds())
		},
		OnRenew: func(latency time.Duration, err error) {
			m.renew.Observe(latency.Seconds())
			if err != nil {
				m.renewFail.Inc()
			}
		},
		OnTermEnd: func(t leadership.Term, cause error) {
			m.mu.Lock()
			if m.term != nil && m.term.Token == t.Token {
				m.term = nil
			}
			m.mu.Unlock()
			m.termEnds.WithLabelValues(Cause(cause)).Inc()
		},
		OnRelease: func(t leadership.Term, err error) {
			if err == nil {
				m.releases.WithLabelValues("success").Inc()
			} else {
				m.releases.WithLabelValues("error").Inc()
			}
		},
		OnLeader: func(l leadership.Leader) {
			if l.Self {
				m.isLeader.Set(1)
			} else {
				m.isLeader.Set(0)
			}
			m.token.Set(float64(l.Token))
			m.mu.Lock()
			changed := l.Identity != "" && l.Identity != m.lastHolder
			if l.Identity != "" {
				m.lastHolder = l.Identity
			}
			m.mu.Unlock()
			if changed {
				m.transitions.Inc()
			}
		},
	}
}

// Cause names why a term ended, for a metric label or an event: one of
// validity_expired, suspended, lock_lost, lock_deleted, identity_clash,
// handover, resigned, lead_returned, stopped (Run's context ended) or
// other.
func Cause(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{leadership.ErrValidityExpired, "validity_expired"},
		{leadership.ErrSuspended, "suspended"},
		{leadership.ErrLockLost, "lock_lost"},
		{leadership.ErrLockDeleted, "lock_deleted"},
		{leadership.ErrIdentityClash, "identity_clash"},
		{leadership.ErrHandover, "handover"},
		{leadership.ErrResigned, "resigned"},
		{leadership.ErrLeadReturned, "lead_returned"},
		{context.Canceled, "stopped"},
		{context.DeadlineExceeded, "stopped"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}

// WrapTransport returns rt with every request counted in
// leadership_api_requests_total.
func (m *Metrics) WrapTransport(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{next: rt, requests: m.requests}
}

// InstrumentConfig makes every client built from cfg count its requests
// (keeping any WrapTransport cfg already has). Build the elector's client
// from cfg afterwards.
func (m *Metrics) InstrumentConfig(cfg *rest.Config) {
	prev := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		return m.WrapTransport(rt)
	}
}

type roundTripper struct {
	next     http.RoundTripper
	requests *prometheus.CounterVec
}

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	r.requests.WithLabelValues(Verb(req.Method, req.URL), code).Inc()
	return resp, err
}

// Verb is the Kubernetes API verb of a request: get, list, watch, create,
// update, patch, delete or deletecollection (or the lowercased HTTP method
// for paths outside the resource API).
func Verb(method string, u *url.URL) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodGet, http.MethodHead, http.MethodDelete:
	default:
		return strings.ToLower(method)
	}
	named, ok := namedResource(u.Path)
	if !ok {
		return strings.ToLower(method)
	}
	if method == http.MethodDelete {
		if named {
			return "delete"
		}
		return "deletecollection"
	}
	if w := u.Query().Get("watch"); w == "true" || w == "1" {
		return "watch"
	}
	if named {
		return "get"
	}
	return "list"
}

// namedResource parses /api/v1/... and /apis/group/version/... paths: ok if
// it is a resource path, named if it names one object.
func namedResource(path string) (named, ok bool) {
	p := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(p) >= 2 && p[0] == "api":
		p = p[2:]
	case len(p) >= 3 && p[0] == "apis":
		p = p[3:]
	default:
		return false, false
	}
	if len(p) >= 1 && p[0] == "watch" { // the legacy /watch/ prefix
		p = p[1:]
	}
	if len(p) >= 3 && p[0] == "namespaces" {
		p = p[2:] // a namespaced resource
	}
	switch len(p) {
	case 0:
		return false, false
	case 1:
		return false, true
	}
	return true, true
}
