package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScaleResult is many Leases with three candidate processes each; every
// process runs one elector per Lease (one client, one HTTP/2 connection
// pool, as a controller with many locks would).
type ScaleResult struct {
	Config     ImplConfig    `json:"config"`
	Leases     int           `json:"leases"`
	Candidates int           `json:"candidates_per_lease"`
	Window     time.Duration `json:"window_ns"`
	// Startup is how long until every Lease had a leader.
	Startup time.Duration `json:"startup_ns"`
	// RequestsPerSec is every Lease request the candidates sent in the
	// window (their counting transports), by verb and in total.
	RequestsPerSec map[string]float64 `json:"requests_per_s"`
	TotalPerSec    float64            `json:"total_requests_per_s"`
	// APIServerPerSec is apiserver_request_total for Leases over the
	// window (watches count when they end).
	APIServerPerSec float64 `json:"apiserver_requests_per_s"`
	// APIServerCores is the CPU of the bench process over the window in
	// CPU-seconds per second: etcd, kube-apiserver and the loopback
	// forwarder in front of it, nothing else of note runs there.
	APIServerCores  float64 `json:"apiserver_cores"`
	APIServerRSSMiB float64 `json:"apiserver_rss_mib"`
	// CandidatesCores is the three candidate processes' CPU together.
	CandidatesCores  float64 `json:"candidates_cores"`
	CandidatesRSSMiB float64 `json:"candidates_rss_mib"`
	// Transitions counts terms begun during the window; LeadersAtEnd the
	// Leases led at its end. Sustained: 0 and Leases.
	Transitions  int       `json:"transitions"`
	LeadersAtEnd int       `json:"leaders_at_end"`
	Load         []loadAvg `json:"load"`
}

// Sustained reports whether every Lease kept its leader through the window.
func (r ScaleResult) Sustained() bool { return r.Transitions == 0 && r.LeadersAtEnd == r.Leases }

func runScale(ctx context.Context, e *env, p Profile, impl Impl, n int, window, warmup time.Duration, profileDir string) (ScaleResult, error) {
	cfg := p.config(impl)
	res := ScaleResult{Config: cfg, Leases: n, Candidates: 3, Window: window}
	prefix := e.leaseName(fmt.Sprintf("scale-%s-%d", shortName(impl), n))
	var cs []*childProc
	defer func() {
		for _, c := range cs {
			_ = c.cmd.Process.Kill()
		}
	}()
	began := time.Now()
	for i := range 3 {
		name := fmt.Sprintf("%s-%d", prefix, i)
		c, err := e.spawn(name, childSpec{Config: cfg, Kubeconfig: e.kubeconfig, Namespace: e.ns, Prefix: prefix, Count: n, Identity: name})
		if err != nil {
			return res, err
		}
		cs = append(cs, c)
	}
	if err := awaitReady(ctx, cs, 3*time.Minute); err != nil {
		return res, err
	}
	if err := awaitLeaders(ctx, cs, n, 5*time.Minute+2*p.LeaseDuration); err != nil {
		return res, fmt.Errorf("%s × %d: %w", impl, n, err)
	}
	res.Startup = time.Since(began)
	if err := sleepCtx(ctx, warmup); err != nil {
		return res, err
	}
	res.Load = append(res.Load, readLoad(fmt.Sprintf("scale %s %d start", impl, n)))
	m0, err := leaseRequests(ctx, e.admin)
	if err != nil {
		return res, err
	}
	self0, err := readProc(os.Getpid())
	if err != nil {
		return res, err
	}
	s0, err := snapAll(cs)
	if err != nil {
		return res, err
	}
	e.logf("  scale %s × %d: measuring for %v", impl, n, window)
	stopProfile, err := startCPUProfile(profileDir, fmt.Sprintf("scale-%s-%d.pprof", impl, n))
	if err != nil {
		return res, err
	}
	err = sleepCtx(ctx, window)
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return res, err
	}
	s1, err := snapAll(cs)
	if err != nil {
		return res, err
	}
	self1, err := readProc(os.Getpid())
	if err != nil {
		return res, err
	}
	m1, err := leaseRequests(ctx, e.admin)
	if err != nil {
		return res, err
	}
	res.Load = append(res.Load, readLoad(fmt.Sprintf("scale %s %d end", impl, n)))

	w := self1.At.Sub(self0.At).Seconds()
	res.APIServerCores = (self1.CPU - self0.CPU).Seconds() / w
	res.APIServerRSSMiB = float64(self1.RSS) / (1 << 20)
	var total int64
	for _, v := range sub(m1, m0) {
		total += v
	}
	res.APIServerPerSec = float64(total) / w
	res.RequestsPerSec = map[string]float64{}
	for i := range cs {
		r := roleOf(cs[i].name, s0[i], s1[i])
		for k, v := range r.RequestsPerSec {
			res.RequestsPerSec[k] += v
		}
		res.TotalPerSec += r.TotalPerSec
		res.CandidatesCores += r.CPUPerHour / 3600
		res.CandidatesRSSMiB += r.RSSMiB
		res.Transitions += s1[i].starts - s0[i].starts
		res.LeadersAtEnd += s1[i].leading
	}

	_, err = stopAll(cs, 2*p.LeaseDuration+time.Minute)
	cs = nil
	if err != nil {
		return res, err
	}
	return res, e.deleteLeases(ctx, prefix, n)
}

// deleteLeases removes a scale run's Leases so that the next run starts
// from the same store size.
func (e *env) deleteLeases(ctx context.Context, prefix string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := e.admin.CoordinationV1().Leases(e.ns).Delete(ctx, fmt.Sprintf("%s-%d", prefix, i), metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("delete scale Leases: %w", err)
	default:
		return nil
	}
}

// startCPUProfile profiles this process into dir/name until the returned
// function is called; with no dir it does nothing.
func startCPUProfile(dir, name string) (stop func() error, err error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("CPU profile: %w (is another profile running?)", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
