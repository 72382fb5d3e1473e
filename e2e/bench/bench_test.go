package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	if IsChild() {
		// This test binary is also the bench's candidate process.
		os.Exit(ChildMain())
	}
	os.Exit(controlplane.Main(m, controlplane.Options{ExtraAPIServerFlags: APIServerFlags()}, func(c *controlplane.ControlPlane) { cp = c }))
}

// TestSmoke runs the whole bench with tiny counts so that it cannot rot. It
// checks that the results are complete and well-formed, and the behaviour
// the figures rest on (no two leaders, followers of leadership do not poll,
// client-go's do, the counting transport agrees with the API server); it
// judges no performance figure.
func TestSmoke(t *testing.T) {
	fast := FastProfile()
	opts := Options{
		Profiles:     []Profile{fast},
		Handovers:    3,
		Crashes:      2,
		Restarts:     2,
		SteadyWindow: map[string]time.Duration{fast.Name: 3 * time.Second},
		Warmup:       time.Second,
		ScaleLeases:  []int{10},
		ScaleProfile: fast,
		ScaleWindow:  3 * time.Second,
		Logf:         t.Logf,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := Run(ctx, cp, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r) // fails on NaN or ±Inf anywhere
	if err != nil {
		t.Fatalf("results do not encode as JSON: %v", err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results JSON does not decode: %v", err)
	}

	if len(r.Profiles) != 1 {
		t.Fatalf("%d profiles, want 1", len(r.Profiles))
	}
	p := r.Profiles[0]
	for _, impl := range []Impl{Ours, ClientGo} {
		h, ok := p.handover(impl)
		if !ok || h.Latency.N != opts.Handovers || len(h.Latency.SamplesMS) != opts.Handovers {
			t.Errorf("%s: handover samples %+v, want %d", impl, h.Latency, opts.Handovers)
		}
		c, ok := p.crash(impl)
		if !ok || c.BeyondLease.N != opts.Crashes || c.SinceCut.N != opts.Crashes {
			t.Errorf("%s: crash samples %+v, want %d", impl, c.BeyondLease, opts.Crashes)
		}
		for _, v := range c.SinceCut.SamplesMS {
			if v <= 0 {
				t.Errorf("%s: a successor started %v ms after the cut", impl, v)
			}
		}
		checkDist(t, string(impl)+" handover", h.Latency)
		checkDist(t, string(impl)+" crash", c.BeyondLease)
	}
	for _, impl := range []Impl{Ours, ClientGo} {
		rs, ok := p.restart(impl)
		if !ok || rs.Takeover.N != opts.Restarts {
			t.Errorf("%s: restart samples %+v, want %d", impl, rs.Takeover, opts.Restarts)
		}
		checkDist(t, string(impl)+" restart", rs.Takeover)
	}
	// A leadership leader restarted in place proves its predecessor dead
	// and leads again itself, long before the lease would run out.
	if rs, _ := p.restart(Ours); rs.ByRestarted != opts.Restarts || rs.Takeover.MaxMS >= float64(fast.LeaseDuration/time.Millisecond) {
		t.Errorf("leadership: %d of %d restarts led again by the restarted process, slowest after %v ms (lease %v); want all, well within the lease", rs.ByRestarted, opts.Restarts, rs.Takeover.MaxMS, fast.LeaseDuration)
	}
	// leadership's promise: the next leader starts only after the previous
	// one's work has returned.
	if h, _ := p.handover(Ours); h.Overlaps != 0 || h.Latency.MinMS <= 0 {
		t.Errorf("leadership: handover overlaps %d, shortest latency %v ms; want no overlap", h.Overlaps, h.Latency.MinMS)
	}
	if c, _ := p.crash(Ours); c.Overlaps != 0 || c.OldStoppedBeforeNew.MinMS <= 0 {
		t.Errorf("leadership: crash overlaps %d, old work stopped %v ms before the new started; want > 0", c.Overlaps, c.OldStoppedBeforeNew.MinMS)
	}

	s := p.Steady
	if s == nil || len(s.Groups) != 2 {
		t.Fatalf("steady: %+v, want two groups", s)
	}
	for _, g := range s.Groups {
		if len(g.Followers) != 2 || g.Transitions != 0 || g.Leader.WritesPerSec <= 0 {
			t.Errorf("%s: %d followers, %d transitions, leader writes %v/s; want 2, 0, > 0", g.Config.Impl, len(g.Followers), g.Transitions, g.Leader.WritesPerSec)
		}
		for _, f := range g.Followers {
			polls := f.Requests["GET"]
			switch {
			case g.Config.Impl == Ours && polls != 0:
				t.Errorf("leadership follower %s sent %d GETs in the window; followers must watch, not poll", f.Process, polls)
			case g.Config.Impl == ClientGo && polls == 0:
				t.Errorf("client-go follower %s sent no GET in %v with a %v retry period", f.Process, s.Window, fast.RetryPeriod)
			}
			if f.RSSMiB <= 0 || f.CPUPerHour < 0 {
				t.Errorf("%s: RSS %v MiB, CPU %v s/h", f.Process, f.RSSMiB, f.CPUPerHour)
			}
		}
	}
	if s.Baseline.RSSMiB <= 0 || s.Baseline.TotalPerSec != 0 {
		t.Errorf("idle process: RSS %v MiB, %v requests/s; want > 0 and 0", s.Baseline.RSSMiB, s.Baseline.TotalPerSec)
	}
	if len(s.CrossCheck) == 0 {
		t.Error("no cross-check with apiserver_request_total")
	}
	for _, c := range s.CrossCheck {
		if c.Verb == "WATCH" {
			continue
		}
		// A request cancelled in flight at shutdown may reach the API
		// server although the client saw an error; nothing else differs.
		if c.APIServer < c.Counted || c.APIServer > c.Counted+5 {
			t.Errorf("%s: counted %d, API server %d", c.Verb, c.Counted, c.APIServer)
		}
	}

	if len(r.Scale) != 2 {
		t.Fatalf("%d scale results, want 2", len(r.Scale))
	}
	for _, sc := range r.Scale {
		if sc.Leases != 10 || !sc.Sustained() || sc.TotalPerSec <= 0 || sc.APIServerCores <= 0 {
			t.Errorf("scale %s: %+v", sc.Config.Impl, sc)
		}
	}
	if len(r.Targets) == 0 {
		t.Error("no targets judged")
	}

	md := r.Markdown()
	for _, want := range []string{"graceful handover p99", "crash takeover beyond the lease", "idle follower API requests/s", "scale: API server + etcd CPU", "| WATCH |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "NaN") || strings.Contains(md, "Inf") {
		t.Errorf("report has NaN or Inf:\n%s", md)
	}

	path := filepath.Join(t.TempDir(), "latency.png")
	if err := r.WritePlot(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Errorf("plot is %v, too small to read", b)
	}
	t.Logf("smoke report:\n%s", md)
}

func checkDist(t *testing.T, what string, d Dist) {
	t.Helper()
	for _, v := range []float64{d.MinMS, d.P50MS, d.P99MS, d.MaxMS, d.MeanMS} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s: %+v", what, d)
		}
	}
	if d.N > 0 && !(d.MinMS <= d.P50MS && d.P50MS <= d.P99MS && d.P99MS <= d.MaxMS) {
		t.Errorf("%s: statistics out of order: %+v", what, d)
	}
}

func TestDist(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := newDist(ds)
	if d.N != 100 || d.MinMS != 1 || d.P50MS != 50 || d.P90MS != 90 || d.P99MS != 99 || d.MaxMS != 100 || d.MeanMS != 50.5 {
		t.Errorf("1..100 ms: %+v", d)
	}
	if d := newDist([]time.Duration{3 * time.Millisecond}); d.P50MS != 3 || d.P99MS != 3 {
		t.Errorf("one sample: %+v", d)
	}
	if d := newDist(nil); d.N != 0 || d.P99MS != 0 || math.IsNaN(d.MeanMS) {
		t.Errorf("empty: %+v", d)
	}
}

func TestParseLeaseRequests(t *testing.T) {
	text := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="GET",version="v1"} 12
apiserver_request_total{code="409",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 1.5e+03
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 99
apiserver_request_total{code="0",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="namespace",subresource="",verb="WATCH",version="v1"} 4
`
	got, err := parseLeaseRequests(text)
	if err != nil {
		t.Fatal(err)
	}
	if got["GET"] != 12 || got["PUT"] != 1503 || got["WATCH"] != 4 || len(got) != 3 {
		t.Errorf("got %v", got)
	}
	if _, err := parseLeaseRequests(`apiserver_request_total{verb="GET} 1`); err == nil {
		t.Error("an unterminated label was accepted")
	}
}

func TestVerbOf(t *testing.T) {
	for path, want := range map[string]string{
		"GET /apis/coordination.k8s.io/v1/namespaces/default/leases/x":                                  "GET",
		"GET /apis/coordination.k8s.io/v1/namespaces/default/leases?watch=true&fieldSelector=a":         "WATCH",
		"GET /apis/coordination.k8s.io/v1/namespaces/default/leases":                                    "LIST",
		"PUT /apis/coordination.k8s.io/v1/namespaces/default/leases/x":                                  "PUT",
		"POST /apis/coordination.k8s.io/v1/namespaces/default/leases":                                   "POST",
		"GET /api/v1/namespaces/default/pods/leases":                                                    "other",
		"GET /apis/coordination.k8s.io/v1/namespaces/leases/leases/leases":                              "GET",
		"DELETE /apis/coordination.k8s.io/v1/namespaces/default/leases/x":                               "DELETE",
		"GET /apis/coordination.k8s.io/v1/namespaces/default/leases/x/status":                           "other",
		"GET /apis/coordination.k8s.io/v1/namespaces/default/leases?watch=1&resourceVersion=5&timeout=": "WATCH",
	} {
		method, url, _ := strings.Cut(path, " ")
		req, err := http.NewRequest(method, "https://127.0.0.1"+url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := verbOf(req); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}
