package metrics_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
	"github.com/leadership-dev/leadership/metrics"
)

// Wire the metrics into an elector: the hooks into its Config, the request
// counter into the client's rest.Config, and the registry into /metrics.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, "payments", "credential-renewer")
	if err != nil {
		panic(err) // only a second registration of the same lease fails
	}
	cfg := &rest.Config{Host: "https://127.0.0.1:6443"} // in practice from clientcmd
	m.InstrumentConfig(cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		panic(err)
	}
	lock, err := kubelease.New(cs.CoordinationV1(), "payments", "credential-renewer")
	if err != nil {
		panic(err)
	}
	e, err := leadership.New(lock, leadership.Config{
		Identity: leadership.DefaultIdentity(),
		Hooks:    m.Hooks(),
	})
	if err != nil {
		panic(err)
	}
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	_ = e // e.Run(ctx, lead) as usual
}

// The hooks update the gauges and counters as the elector calls them.
func ExampleMetrics_Hooks() {
	reg := prometheus.NewRegistry()
	m, _ := metrics.New(reg, "default", "demo")
	h := m.Hooks()
	h.OnAttempt(nil)
	h.OnAcquire(leadership.Term{Token: 42}, "replica-a", 1500*time.Millisecond)
	h.OnLeader(leadership.Leader{Identity: "replica-b", Token: 42, Self: true})

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "leadership_is_leader", "leadership_token", "leadership_transitions_total":
			v := mf.GetMetric()[0]
			fmt.Println(mf.GetName(), v.GetGauge().GetValue()+v.GetCounter().GetValue())
		case "leadership_takeover_duration_seconds":
			fmt.Println(mf.GetName(), "count", mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	// Output:
	// leadership_is_leader 1
	// leadership_takeover_duration_seconds count 1
	// leadership_token 42
	// leadership_transitions_total 1
}

// Cause names a term's end for labels and events.
func ExampleCause() {
	fmt.Println(metrics.Cause(leadership.ErrValidityExpired))
	fmt.Println(metrics.Cause(fmt.Errorf("%w: holder is now %q", leadership.ErrLockLost, "b")))
	// Output:
	// validity_expired
	// lock_lost
}

// Verb classifies a request as the API server's audit log would.
func ExampleVerb() {
	for _, u := range []string{
		"/apis/coordination.k8s.io/v1/namespaces/default/leases/db",
		"/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=true&fieldSelector=metadata.name%3Ddb",
		"/apis/coordination.k8s.io/v1/namespaces/default/leases",
	} {
		req, _ := http.NewRequest(http.MethodGet, "https://host"+u, nil)
		fmt.Println(metrics.Verb(req.Method, req.URL))
	}
	// Output:
	// get
	// watch
	// list
}

// WrapTransport counts the requests of any http.RoundTripper.
func ExampleMetrics_WrapTransport() {
	reg := prometheus.NewRegistry()
	m, _ := metrics.New(reg, "default", "demo")
	client := &http.Client{Transport: m.WrapTransport(http.DefaultTransport)}
	_ = client // requests through client now count in leadership_api_requests_total
}

// InstrumentConfig is WrapTransport for a client-go rest.Config.
func ExampleMetrics_InstrumentConfig() {
	reg := prometheus.NewRegistry()
	m, _ := metrics.New(reg, "default", "demo")
	cfg := &rest.Config{Host: "https://127.0.0.1:6443"}
	m.InstrumentConfig(cfg)
	_, _ = kubernetes.NewForConfig(cfg)
}
