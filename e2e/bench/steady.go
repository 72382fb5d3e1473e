package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Role is what one candidate process cost in a measurement window, scaled
// to rates: API requests per second by verb (from its counting transport),
// CPU seconds per hour (extrapolated from the window) and resident memory
// at the end of the window.
type Role struct {
	Process        string             `json:"process"`
	RequestsPerSec map[string]float64 `json:"requests_per_s"`
	TotalPerSec    float64            `json:"total_requests_per_s"`
	WritesPerSec   float64            `json:"writes_per_s"` // PUT + POST
	Requests       map[string]int64   `json:"requests"`     // raw counts in the window
	CPUPerHour     float64            `json:"cpu_seconds_per_hour"`
	RSSMiB         float64            `json:"rss_mib"`
	PeakRSSMiB     float64            `json:"peak_rss_mib"`
}

// SteadyGroup is one implementation's three candidates on one Lease.
type SteadyGroup struct {
	Config    ImplConfig `json:"config"`
	Leader    Role       `json:"leader"`
	Followers []Role     `json:"followers"`
	// Follower is the mean of the followers.
	Follower Role `json:"follower"`
	// Transitions counts terms begun during the window (should be 0: the
	// roles must not change while they are measured).
	Transitions int `json:"transitions"`
}

// VerbCheck compares, for one verb, the requests the candidates' counting
// transports saw over their whole lives with what the API server's
// apiserver_request_total counted for Leases over the same span.
type VerbCheck struct {
	Verb      string `json:"verb"`
	Counted   int64  `json:"counted"`
	APIServer int64  `json:"apiserver"`
}

// SteadyResult is the API load and resource use of idle followers and a
// leader of each implementation, measured side by side in one window.
type SteadyResult struct {
	Window     time.Duration `json:"window_ns"`
	Groups     []SteadyGroup `json:"groups"`
	Baseline   Role          `json:"baseline_idle_process"`
	CrossCheck []VerbCheck   `json:"cross_check"`
	Load       []loadAvg     `json:"load"`
}

func (r SteadyResult) group(i Impl) (SteadyGroup, bool) {
	for _, g := range r.Groups {
		if g.Config.Impl == i {
			return g, true
		}
	}
	return SteadyGroup{}, false
}

func runSteady(ctx context.Context, e *env, p Profile, impls []Impl, window, warmup time.Duration) (SteadyResult, error) {
	res := SteadyResult{Window: window}
	before, err := leaseRequests(ctx, e.admin)
	if err != nil {
		return res, err
	}
	type group struct {
		cfg ImplConfig
		cs  []*childProc
	}
	var groups []group
	var all []*childProc
	defer func() {
		for _, c := range all {
			_ = c.cmd.Process.Kill()
		}
	}()
	for _, impl := range impls {
		g := group{cfg: p.config(impl)}
		prefix := e.leaseName("steady-" + shortName(impl) + "-" + p.Name)
		if impl == OursAtClientGoCadence {
			prefix = e.leaseName("steady-ours2-" + p.Name)
		}
		for i := range 3 {
			name := fmt.Sprintf("%s-%s-%d", prefix, shortName(impl), i)
			c, err := e.spawn(name, childSpec{Config: g.cfg, Kubeconfig: e.kubeconfig, Namespace: e.ns, Prefix: prefix, Count: 1, Identity: name})
			if err != nil {
				return res, err
			}
			g.cs = append(g.cs, c)
			all = append(all, c)
		}
		groups = append(groups, g)
	}
	base, err := e.spawn(e.leaseName("idle-"+p.Name), childSpec{Config: ImplConfig{Impl: idle}, Kubeconfig: e.kubeconfig, Namespace: e.ns})
	if err != nil {
		return res, err
	}
	all = append(all, base)
	if err := awaitReady(ctx, all, 3*time.Minute); err != nil {
		return res, err
	}
	for _, g := range groups {
		if err := awaitLeaders(ctx, g.cs, 1, 2*p.LeaseDuration+time.Minute); err != nil {
			return res, fmt.Errorf("%s: %w", g.cfg.Impl, err)
		}
	}
	if err := sleepCtx(ctx, warmup); err != nil {
		return res, err
	}
	res.Load = append(res.Load, readLoad("steady "+p.Name+" start"))
	s0, err := snapAll(all)
	if err != nil {
		return res, err
	}
	e.logf("  steady %s: measuring for %v", p.Name, window)
	if err := sleepCtx(ctx, window); err != nil {
		return res, err
	}
	s1, err := snapAll(all)
	if err != nil {
		return res, err
	}
	res.Load = append(res.Load, readLoad("steady "+p.Name+" end"))
	idx := 0
	for _, g := range groups {
		sg := SteadyGroup{Config: g.cfg}
		leaders := 0
		for _, c := range g.cs {
			a, b := s0[idx], s1[idx]
			idx++
			role := roleOf(c.name, a, b)
			sg.Transitions += b.starts - a.starts
			if a.leading == 1 && b.leading == 1 {
				sg.Leader = role
				leaders++
			} else {
				sg.Followers = append(sg.Followers, role)
			}
		}
		if leaders != 1 {
			return res, fmt.Errorf("%s: %d processes led through the whole window, want 1 (transitions %d)", g.cfg.Impl, leaders, sg.Transitions)
		}
		sg.Follower = meanRole(sg.Followers)
		res.Groups = append(res.Groups, sg)
	}
	res.Baseline = roleOf(base.name, s0[idx], s1[idx])

	finals, err := stopAll(all, 2*p.LeaseDuration+30*time.Second)
	all = nil
	if err != nil {
		return res, err
	}
	counted := map[string]int64{}
	for _, f := range finals {
		for k, v := range f.Counts {
			counted[k] += v
		}
	}
	after, err := settledLeaseRequests(ctx, e, counted, before)
	if err != nil {
		return res, err
	}
	res.CrossCheck = crossCheck(counted, sub(after, before))
	return res, nil
}

func roleOf(name string, a, b snapshot) Role {
	w := b.proc.At.Sub(a.proc.At).Seconds()
	r := Role{Process: name, RequestsPerSec: map[string]float64{}, Requests: sub(b.counts, a.counts)}
	for k, v := range r.Requests {
		if v == 0 {
			delete(r.Requests, k)
			continue
		}
		r.RequestsPerSec[k] = float64(v) / w
		r.TotalPerSec += float64(v) / w
		if k == "PUT" || k == "POST" {
			r.WritesPerSec += float64(v) / w
		}
	}
	r.CPUPerHour = (b.proc.CPU - a.proc.CPU).Seconds() / w * 3600
	r.RSSMiB = float64(b.proc.RSS) / (1 << 20)
	r.PeakRSSMiB = float64(b.proc.HWM) / (1 << 20)
	return r
}

func meanRole(rs []Role) Role {
	m := Role{Process: "mean", RequestsPerSec: map[string]float64{}, Requests: map[string]int64{}}
	if len(rs) == 0 {
		return m
	}
	n := float64(len(rs))
	for _, r := range rs {
		for k, v := range r.RequestsPerSec {
			m.RequestsPerSec[k] += v / n
		}
		for k, v := range r.Requests {
			m.Requests[k] += v
		}
		m.TotalPerSec += r.TotalPerSec / n
		m.WritesPerSec += r.WritesPerSec / n
		m.CPUPerHour += r.CPUPerHour / n
		m.RSSMiB += r.RSSMiB / n
		m.PeakRSSMiB += r.PeakRSSMiB / n
	}
	return m
}

// settledLeaseRequests reads apiserver_request_total until it accounts for
// every request counted (the API server records a request, and a watch,
// only when it has completed), or for 30 s at most.
func settledLeaseRequests(ctx context.Context, e *env, counted, before map[string]int64) (map[string]int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := leaseRequests(ctx, e.admin)
		if err != nil {
			return nil, err
		}
		d := sub(cur, before)
		done := true
		for k, v := range counted {
			if k != "failed" && k != "other" && d[k] < v {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			return cur, nil
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func crossCheck(counted, server map[string]int64) []VerbCheck {
	verbs := map[string]bool{}
	for k := range counted {
		if k != "failed" && k != "other" {
			verbs[k] = true
		}
	}
	for k, v := range server {
		if v != 0 {
			verbs[k] = true
		}
	}
	var out []VerbCheck
	for _, k := range slices.Sorted(maps.Keys(verbs)) {
		out = append(out, VerbCheck{Verb: k, Counted: counted[k], APIServer: server[k]})
	}
	return out
}
