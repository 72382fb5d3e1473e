package bench

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Target is one of leadership's performance targets, judged on this run.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func (r *Results) profile(name string) (ProfileResult, bool) {
	for _, p := range r.Profiles {
		if p.Profile.Name == name {
			return p, true
		}
	}
	return ProfileResult{}, false
}

func (r *Results) scale(impl Impl, n int) (ScaleResult, bool) {
	for _, s := range r.Scale {
		if s.Config.Impl == impl && s.Leases == n {
			return s, true
		}
	}
	return ScaleResult{}, false
}

// targets judges the targets on the default profile (the fast one
// where the default one was not run).
func (r *Results) targets() []Target {
	var out []Target
	var p ProfileResult
	ok := false
	if p, ok = r.profile("default"); !ok && len(r.Profiles) > 0 {
		p, ok = r.Profiles[0], true
	}
	if ok {
		name := p.Profile.Name
		if h, ok := p.handover(Ours); ok && h.Latency.N > 0 {
			out = append(out, Target{Name: "graceful handover p99 (" + name + ")", Goal: "≤ 50 ms",
				Measured: fmtMS(h.Latency.P99MS) + fmt.Sprintf(" (n = %d)", h.Latency.N), Met: h.Latency.P99MS <= 50})
		}
		if c, ok := p.crash(Ours); ok && c.BeyondLease.N > 0 {
			out = append(out, Target{Name: "crash takeover p99 (" + name + ")", Goal: "≤ lease + 250 ms",
				Measured: "lease + " + fmtMS(c.BeyondLease.P99MS) + fmt.Sprintf(" (n = %d)", c.BeyondLease.N), Met: c.BeyondLease.P99MS <= 250})
		}
		if ro, ok := p.restart(Ours); ok && ro.Takeover.N > 0 {
			t := Target{Name: "crash and restart in place p99, kill to leading again, restart included (" + name + ")", Goal: "≤ 1 s and ≥ 15× faster than client-go",
				Measured: fmtMS(ro.Takeover.P99MS) + fmt.Sprintf(" (n = %d)", ro.Takeover.N), Met: ro.Takeover.P99MS <= 1000}
			if rc, ok := p.restart(ClientGo); ok && rc.Takeover.N > 0 {
				t.Measured += "; client-go " + fmtMS(rc.Takeover.P99MS) + " (×" + fmtRatio(rc.Takeover.P99MS, ro.Takeover.P99MS) + ")"
				t.Met = t.Met && rc.Takeover.P99MS >= 15*ro.Takeover.P99MS
			}
			out = append(out, t)
		}
		if p.Steady != nil {
			if g, ok := p.Steady.group(Ours); ok {
				w := p.Steady.Window.Seconds()
				out = append(out, Target{Name: "idle follower API requests (" + name + ")", Goal: "≤ 0.01 /s",
					Measured: fmt.Sprintf("%.4f /s (%d requests by %d followers in %.0f s)", g.Follower.TotalPerSec, sumCounts(g.Follower.Requests), len(g.Followers), w),
					Met:      g.Follower.TotalPerSec <= 0.01})
				writes := g.Leader.Requests["PUT"] + g.Leader.Requests["POST"]
				allowed := w/g.Config.RenewEvery.Seconds() + 1 // a window edge may catch one more
				out = append(out, Target{Name: "leader writes (" + name + ")", Goal: fmt.Sprintf("≤ one per renew interval (%v)", g.Config.RenewEvery),
					Measured: fmt.Sprintf("%d writes in %.0f s = one per %.2f s", writes, w, w/math.Max(1, float64(writes))),
					Met:      float64(writes) <= allowed})
			}
		}
	}
	if o, ok := r.scale(Ours, 1000); ok {
		t := Target{Name: "1000 Leases × 3 candidates", Goal: "sustained, with lower API-server CPU than client-go"}
		if c, ok := r.scale(ClientGo, 1000); ok {
			t.Measured = fmt.Sprintf("sustained: %v; API server %.3f cores vs client-go %.3f (×%s)", o.Sustained(), o.APIServerCores, c.APIServerCores, fmtRatio(o.APIServerCores, c.APIServerCores))
			t.Met = o.Sustained() && o.APIServerCores < c.APIServerCores
		} else {
			t.Measured = fmt.Sprintf("sustained: %v; client-go not measured", o.Sustained())
		}
		out = append(out, t)
	}
	return out
}

func sumCounts(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// Markdown renders the results as the tables of docs/BENCHMARKS.md.
func (r *Results) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	w("Run on %s, took %v. Machine: %d × %s, %s, %s, %s; kube-apiserver %s.\n\n",
		r.Date.Format("2006-01-02 15:04 MST"), r.Duration.Round(time.Second), m.NProc, m.CPUModel, m.MemTotal, m.OSArch, m.GoVersion, m.APIServer)
	w("Load average (1/5/15 min) during the run: %s.\n\n", loadSummary(r.Load))
	if r.Options.Command != "" {
		w("Command: `%s`\n\n", r.Options.Command)
	}

	w("| measure | profile | leadership | client-go | leadership / client-go |\n|---|---|--:|--:|--:|\n")
	for _, p := range r.Profiles {
		pn := fmt.Sprintf("%s (%v lease)", p.Profile.Name, p.Profile.LeaseDuration)
		ho, hok := p.handover(Ours)
		hc, _ := p.handover(ClientGo)
		if hok {
			w("| graceful handover p50 (n = %d) | %s | %s | %s | %s |\n", ho.Latency.N, pn, fmtMS(ho.Latency.P50MS), fmtMS(hc.Latency.P50MS), fmtRatio(ho.Latency.P50MS, hc.Latency.P50MS))
			w("| graceful handover p99 | %s | %s | %s | %s |\n", pn, fmtMS(ho.Latency.P99MS), fmtMS(hc.Latency.P99MS), fmtRatio(ho.Latency.P99MS, hc.Latency.P99MS))
			w("| graceful handover min … max | %s | %s … %s | %s … %s | |\n", pn, fmtMS(ho.Latency.MinMS), fmtMS(ho.Latency.MaxMS), fmtMS(hc.Latency.MinMS), fmtMS(hc.Latency.MaxMS))
		}
		co, cok := p.crash(Ours)
		cc, _ := p.crash(ClientGo)
		if cok {
			w("| crash takeover beyond the lease, p50 (n = %d) | %s | %s | %s | %s |\n", co.BeyondLease.N, pn, fmtMS(co.BeyondLease.P50MS), fmtMS(cc.BeyondLease.P50MS), fmtRatio(co.BeyondLease.P50MS, cc.BeyondLease.P50MS))
			w("| crash takeover beyond the lease, p99 | %s | %s | %s | %s |\n", pn, fmtMS(co.BeyondLease.P99MS), fmtMS(cc.BeyondLease.P99MS), fmtRatio(co.BeyondLease.P99MS, cc.BeyondLease.P99MS))
			w("| crash takeover beyond the lease, min … max | %s | %s … %s | %s … %s | |\n", pn, fmtMS(co.BeyondLease.MinMS), fmtMS(co.BeyondLease.MaxMS), fmtMS(cc.BeyondLease.MinMS), fmtMS(cc.BeyondLease.MaxMS))
			w("| crash: cut-off leader's work stopped before the successor's began (negative: both worked that long), min | %s | %s | %s | |\n", pn, fmtMS(co.OldStoppedBeforeNew.MinMS), fmtMS(cc.OldStoppedBeforeNew.MinMS))
		}
		if ro, ok := p.restart(Ours); ok {
			rc, _ := p.restart(ClientGo)
			w("| crash and restart in place: kill to leading again, p50 (n = %d) | %s | %s | %s | %s |\n", ro.Takeover.N, pn, fmtMS(ro.Takeover.P50MS), fmtMS(rc.Takeover.P50MS), fmtRatio(ro.Takeover.P50MS, rc.Takeover.P50MS))
			w("| crash and restart in place: kill to leading again, p99 | %s | %s | %s | %s |\n", pn, fmtMS(ro.Takeover.P99MS), fmtMS(rc.Takeover.P99MS), fmtRatio(ro.Takeover.P99MS, rc.Takeover.P99MS))
			w("| crash and restart in place: min … max | %s | %s … %s | %s … %s | |\n", pn, fmtMS(ro.Takeover.MinMS), fmtMS(ro.Takeover.MaxMS), fmtMS(rc.Takeover.MinMS), fmtMS(rc.Takeover.MaxMS))
		}
		if hok || cok {
			w("| two leaders working at once (handover and crash trials) | %s | %d | %d | |\n", pn, ho.Overlaps+co.Overlaps, hc.Overlaps+cc.Overlaps)
		}
		if s := p.Steady; s != nil {
			o, _ := s.group(Ours)
			c, _ := s.group(ClientGo)
			o2, has2 := s.group(OursAtClientGoCadence)
			w("| leader API requests/s (renew every %v / %v) | %s | %s | %s | %s |\n", o.Config.RenewEvery.Round(time.Millisecond), c.Config.RenewEvery, pn, fmtRate(o.Leader), fmtRate(c.Leader), fmtRatio(o.Leader.TotalPerSec, c.Leader.TotalPerSec))
			if has2 {
				w("| leader API requests/s, leadership renewing every %v like client-go | %s | %s | %s | %s |\n", o2.Config.RenewEvery, pn, fmtRate(o2.Leader), fmtRate(c.Leader), fmtRatio(o2.Leader.TotalPerSec, c.Leader.TotalPerSec))
			}
			w("| idle follower API requests/s (mean of %d) | %s | %s | %s | %s |\n", len(o.Followers), pn, fmtRate(o.Follower), fmtRate(c.Follower), fmtRatio(o.Follower.TotalPerSec, c.Follower.TotalPerSec))
			w("| leader CPU, s per hour | %s | %.2f | %.2f | %s |\n", pn, o.Leader.CPUPerHour, c.Leader.CPUPerHour, fmtRatio(o.Leader.CPUPerHour, c.Leader.CPUPerHour))
			w("| idle follower CPU, s per hour | %s | %.2f | %.2f | %s |\n", pn, o.Follower.CPUPerHour, c.Follower.CPUPerHour, fmtRatio(o.Follower.CPUPerHour, c.Follower.CPUPerHour))
			w("| leader RSS above an idle process of the same binary (%.0f MiB), MiB | %s | %s | %s | %s |\n", s.Baseline.RSSMiB, pn, fmtRSS(o.Leader, s.Baseline), fmtRSS(c.Leader, s.Baseline), fmtRatio(o.Leader.RSSMiB-s.Baseline.RSSMiB, c.Leader.RSSMiB-s.Baseline.RSSMiB))
			w("| idle follower RSS above the idle process, MiB | %s | %s | %s | %s |\n", pn, fmtRSS(o.Follower, s.Baseline), fmtRSS(c.Follower, s.Baseline), fmtRatio(o.Follower.RSSMiB-s.Baseline.RSSMiB, c.Follower.RSSMiB-s.Baseline.RSSMiB))
		}
	}
	for _, n := range scaleCounts(r.Scale) {
		o, ook := r.scale(Ours, n)
		c, cok := r.scale(ClientGo, n)
		if !ook || !cok {
			continue
		}
		pn := fmt.Sprintf("%d Leases × 3", n)
		w("| scale: Lease API requests/s, all candidates | %s | %.1f | %.1f | %s |\n", pn, o.TotalPerSec, c.TotalPerSec, fmtRatio(o.TotalPerSec, c.TotalPerSec))
		w("| scale: API server + etcd CPU, cores | %s | %.3f | %.3f | %s |\n", pn, o.APIServerCores, c.APIServerCores, fmtRatio(o.APIServerCores, c.APIServerCores))
		w("| scale: candidates' CPU, cores (3 processes) | %s | %.3f | %.3f | %s |\n", pn, o.CandidatesCores, c.CandidatesCores, fmtRatio(o.CandidatesCores, c.CandidatesCores))
		w("| scale: every Lease kept its leader through the window | %s | %s | %s | |\n", pn, yesNo(o.Sustained()), yesNo(c.Sustained()))
	}

	if len(r.Targets) > 0 {
		w("\n**leadership's targets**\n\n| target | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			w("| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, yesNo(t.Met))
		}
	}

	if len(r.Scale) > 0 {
		w("\n**Scale, details** (%v lease; each candidate process runs one elector per Lease; window %v)\n\n", r.Options.ScaleProfile.LeaseDuration, r.Options.ScaleWindow)
		w("| Leases × 3 | implementation | requests/s by verb (counted) | apiserver_request_total/s | API server + etcd CPU (cores) | API server RSS MiB | candidates CPU (cores) | candidates RSS MiB | all led after | terms begun in window | load (1 min) |\n|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, s := range r.Scale {
			l := 0.0
			if len(s.Load) > 0 {
				l = s.Load[len(s.Load)-1].Load1
			}
			w("| %d | %s | %s | %.1f | %.3f | %.0f | %.3f | %.0f | %v | %d | %.2f |\n", s.Leases, s.Config.Impl, fmtVerbs(s.RequestsPerSec), s.APIServerPerSec, s.APIServerCores, s.APIServerRSSMiB, s.CandidatesCores, s.CandidatesRSSMiB, s.Startup.Round(100*time.Millisecond), s.Transitions, l)
		}
	}

	for _, p := range r.Profiles {
		s := p.Steady
		if s == nil {
			continue
		}
		w("\n**Per-process detail, %s profile** (window %v; load %s)\n\n", p.Profile.Name, s.Window, loadSummary(s.Load))
		w("| implementation | renew every | role | process | requests/s by verb | CPU s/hour | RSS MiB | peak RSS MiB |\n|---|--:|---|---|---|--:|--:|--:|\n")
		for _, g := range s.Groups {
			w("| %s | %v | leader | %s | %s | %.2f | %.1f | %.1f |\n", g.Config.Impl, g.Config.RenewEvery.Round(time.Millisecond), shortProc(g.Leader.Process), fmtVerbs(g.Leader.RequestsPerSec), g.Leader.CPUPerHour, g.Leader.RSSMiB, g.Leader.PeakRSSMiB)
			for _, f := range g.Followers {
				w("| %s | %v | follower | %s | %s | %.2f | %.1f | %.1f |\n", g.Config.Impl, g.Config.RenewEvery.Round(time.Millisecond), shortProc(f.Process), fmtVerbs(f.RequestsPerSec), f.CPUPerHour, f.RSSMiB, f.PeakRSSMiB)
			}
		}
		w("| (none) | | idle process | %s | — | %.2f | %.1f | %.1f |\n", shortProc(s.Baseline.Process), s.Baseline.CPUPerHour, s.Baseline.RSSMiB, s.Baseline.PeakRSSMiB)
		w("\nCross-check over the candidate processes' whole lives: Lease requests counted by their transports vs. the API server's `apiserver_request_total`:\n\n| verb | counted | apiserver_request_total |\n|---|--:|--:|\n")
		for _, c := range s.CrossCheck {
			w("| %s | %d | %d |\n", c.Verb, c.Counted, c.APIServer)
		}
	}
	return b.String()
}

func scaleCounts(ss []ScaleResult) []int {
	seen := map[int]bool{}
	for _, s := range ss {
		seen[s.Leases] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// shortProc drops the run's Lease prefix from a process name.
func shortProc(name string) string {
	if i := strings.Index(name, "steady-"); i >= 0 {
		return name[i+len("steady-"):]
	}
	if i := strings.Index(name, "idle-"); i >= 0 {
		return name[i:]
	}
	return name
}

func fmtMS(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case a >= 10:
		return fmt.Sprintf("%.0f ms", v)
	case a >= 1:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func fmtRatio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "—"
	}
	r := a / b
	switch a := math.Abs(r); {
	case a == 0:
		return "0"
	case a < 0.01:
		return fmt.Sprintf("%.4f", r)
	case a < 10:
		return fmt.Sprintf("%.2f", r)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}

// fmtRSS is a process's resident memory above the idle process's, which
// is the elector's share: the bench binary links the kube-apiserver, whose
// package initialisation alone makes ~90 MiB resident in every process.
func fmtRSS(r, idle Role) string {
	return fmt.Sprintf("%+.1f", r.RSSMiB-idle.RSSMiB)
}

func fmtRate(r Role) string {
	if r.TotalPerSec == 0 {
		return "0"
	}
	return fmt.Sprintf("%.3f (%s)", r.TotalPerSec, fmtVerbs(r.RequestsPerSec))
}

func fmtVerbs(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func loadSummary(ls []loadAvg) string {
	if len(ls) == 0 {
		return "not recorded"
	}
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%.2f/%.2f/%.2f (%s)", l.Load1, l.Load5, l.Load15, l.Phase))
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}
