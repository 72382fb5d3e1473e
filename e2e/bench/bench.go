// Package bench measures leadership against client-go's leader election on
// one real kube-apiserver (from package controlplane), in one run, with the
// same timings: graceful handover and crash takeover latency, API requests
// per leader and per idle follower, CPU and memory per candidate, and many
// Leases at once. The command e2e/cmd/bench runs it and writes the report;
// docs/BENCHMARKS.md explains the method and the figures.
//
// Latency scenarios run their candidates in this process (one connection
// and one fault proxy each, one monotonic clock for all timestamps).
// Resource scenarios run each candidate as its own OS process — this
// binary re-executed, see IsChild and ChildMain — so that /proc accounts
// its CPU and memory alone, and so that this process's own CPU is the API
// server's and etcd's.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

// APIServerFlags are the kube-apiserver flags the bench needs from
// controlplane.Options.ExtraAPIServerFlags: the API server's own identity
// Lease (renewed every 10 s, in kube-system) is turned off, so that every
// Lease request the API server counts comes from the candidates and the
// cross-check with apiserver_request_total is exact.
func APIServerFlags() []string {
	return []string{"--feature-gates=APIServerIdentity=false,UnknownVersionInteroperabilityProxy=false"}
}

// Options says what to run. Zero counts skip a scenario.
type Options struct {
	Profiles []Profile `json:"profiles"`
	// Handovers and Crashes are per implementation and profile.
	Handovers int `json:"handovers"`
	Crashes   int `json:"crashes"`
	// Restarts: crash-and-restart-in-place trials per implementation and
	// profile (the leader's process killed and started again at once).
	Restarts int `json:"restarts"`
	// SteadyWindow is the measurement window of the per-role API load and
	// resource use, per profile; zero skips it.
	SteadyWindow map[string]time.Duration `json:"steady_window_ns"`
	// Warmup passes between the roles settling and a window opening.
	Warmup time.Duration `json:"warmup_ns"`
	// ScaleLeases are the Lease counts of the scale scenario, run with
	// ScaleProfile's timings; ScaleWindow is its measurement window.
	ScaleLeases  []int         `json:"scale_leases"`
	ScaleProfile Profile       `json:"scale_profile"`
	ScaleWindow  time.Duration `json:"scale_window_ns"`
	// ScaleImpls are the implementations of the scale scenario (both if
	// empty).
	ScaleImpls []Impl `json:"scale_impls,omitempty"`
	// ScaleCPUProfileDir, if set, receives a pprof CPU profile of this
	// process (API server, etcd) over each scale window, named
	// scale-IMPL-N.pprof: where the API server's time goes.
	ScaleCPUProfileDir string `json:"scale_cpu_profile_dir,omitempty"`
	// CadenceVariant adds, to the steady scenario, leadership renewing as
	// often as client-go (OursAtClientGoCadence).
	CadenceVariant bool `json:"cadence_variant"`
	// Namespace of the Leases ("default" if empty).
	Namespace string `json:"namespace"`
	// Command is recorded in the results as the way to reproduce them.
	Command string `json:"command"`
	// Logf receives progress lines; nil: silent.
	Logf func(format string, args ...any) `json:"-"`
}

// DefaultOptions is the full benchmark: both profiles, 100 handovers and 10
// crashes per implementation and profile, 10 min (default profile) and
// 3 min (fast) steady windows, 100 and 1000 Leases at the default timings.
// It takes about 35 minutes on 2 cores.
func DefaultOptions() Options {
	return Options{
		Profiles:     []Profile{DefaultProfile(), FastProfile()},
		Handovers:    100,
		Crashes:      10,
		Restarts:     10,
		SteadyWindow: map[string]time.Duration{"default": 10 * time.Minute, "fast": 3 * time.Minute},
		Warmup:       10 * time.Second,
		ScaleLeases:  []int{100, 1000},
		ScaleProfile: DefaultProfile(),
		ScaleWindow:  2 * time.Minute,

		CadenceVariant: true,
	}
}

// Results is everything one run measured, with the conditions it ran in.
type Results struct {
	Date     time.Time       `json:"date"`
	Duration time.Duration   `json:"duration_ns"`
	Machine  Machine         `json:"machine"`
	Options  Options         `json:"options"`
	Profiles []ProfileResult `json:"profiles"`
	Scale    []ScaleResult   `json:"scale"`
	Targets  []Target        `json:"targets"`
	Load     []loadAvg       `json:"load"`
}

// ProfileResult holds the scenarios of one timing profile.
type ProfileResult struct {
	Profile  Profile          `json:"profile"`
	Configs  []ImplConfig     `json:"configs"`
	Handover []HandoverResult `json:"handover"`
	Crash    []CrashResult    `json:"crash"`
	Restart  []RestartResult  `json:"restart,omitempty"`
	Steady   *SteadyResult    `json:"steady,omitempty"`
}

func (p ProfileResult) restart(i Impl) (RestartResult, bool) {
	for _, r := range p.Restart {
		if r.Impl == i {
			return r, true
		}
	}
	return RestartResult{}, false
}

func (p ProfileResult) handover(i Impl) (HandoverResult, bool) {
	for _, h := range p.Handover {
		if h.Impl == i {
			return h, true
		}
	}
	return HandoverResult{}, false
}

func (p ProfileResult) crash(i Impl) (CrashResult, bool) {
	for _, c := range p.Crash {
		if c.Impl == i {
			return c, true
		}
	}
	return CrashResult{}, false
}

// Machine describes where the run took place.
type Machine struct {
	NProc      int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
	GoVersion  string `json:"go_version"`
	OSArch     string `json:"os_arch"`
	APIServer  string `json:"apiserver_version"`
	Hostname   string `json:"hostname"`
	KernelInfo string `json:"kernel"`
}

type env struct {
	cp         *controlplane.ControlPlane
	admin      kubernetes.Interface
	ns         string
	run        string
	exe        string
	dir        string
	kubeconfig string
	logf       func(string, ...any)
}

func (e *env) leaseName(what string) string { return "bench-" + e.run + "-" + what }

// Run runs the benchmark described by opts on cp, which must have been
// started with APIServerFlags. The binary running it must call ChildMain
// when IsChild (its candidate processes are this binary, re-executed).
func Run(ctx context.Context, cp *controlplane.ControlPlane, opts Options) (*Results, error) {
	if cp == nil {
		return nil, errors.New("bench: no control plane")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: cannot find its own binary to start candidate processes: %w", err)
	}
	dir, err := os.MkdirTemp("", "leadership-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	kc := filepath.Join(dir, "kubeconfig")
	if err := cp.WriteKubeconfig(kc); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	admin, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var id [3]byte
	_, _ = rand.Read(id[:])
	e := &env{cp: cp, admin: admin, ns: opts.Namespace, run: hex.EncodeToString(id[:]), exe: exe, dir: dir, kubeconfig: kc, logf: opts.Logf}
	if e.ns == "" {
		e.ns = "default"
	}
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	r := &Results{Date: began.UTC(), Options: opts, Machine: machine(admin)}
	r.Load = append(r.Load, readLoad("start"))

	for _, p := range opts.Profiles {
		pr := ProfileResult{Profile: p, Configs: []ImplConfig{p.config(Ours), p.config(ClientGo), p.config(OursAtClientGoCadence)}}
		if opts.Handovers > 0 {
			e.logf("%s profile: %d graceful handovers per implementation (both at once, on separate Leases)", p.Name, opts.Handovers)
			pr.Handover = make([]HandoverResult, 2)
			if err := both(func(i int, impl Impl) (err error) {
				pr.Handover[i], err = runHandovers(ctx, e, p.config(impl), p.Name, opts.Handovers)
				return err
			}); err != nil {
				return r, err
			}
			r.Load = append(r.Load, readLoad(p.Name+" handovers done"))
		}
		if opts.Crashes > 0 {
			e.logf("%s profile: %d crash takeovers per implementation (both at once, on separate Leases)", p.Name, opts.Crashes)
			pr.Crash = make([]CrashResult, 2)
			if err := both(func(i int, impl Impl) (err error) {
				pr.Crash[i], err = runCrashes(ctx, e, p.config(impl), p.Name, opts.Crashes)
				return err
			}); err != nil {
				return r, err
			}
			r.Load = append(r.Load, readLoad(p.Name+" crashes done"))
		}
		if opts.Restarts > 0 {
			e.logf("%s profile: %d crashes and restarts in place per implementation (both at once, on separate Leases)", p.Name, opts.Restarts)
			pr.Restart = make([]RestartResult, 2)
			if err := both(func(i int, impl Impl) (err error) {
				pr.Restart[i], err = runRestarts(ctx, e, p.config(impl), p.Name, opts.Restarts)
				return err
			}); err != nil {
				return r, err
			}
			r.Load = append(r.Load, readLoad(p.Name+" restarts done"))
		}
		if w := opts.SteadyWindow[p.Name]; w > 0 {
			e.logf("%s profile: API load and resources of leaders and idle followers", p.Name)
			impls := []Impl{Ours, ClientGo}
			if opts.CadenceVariant {
				impls = append(impls, OursAtClientGoCadence)
			}
			s, err := runSteady(ctx, e, p, impls, w, opts.Warmup)
			if err != nil {
				return r, fmt.Errorf("bench: steady %s: %w", p.Name, err)
			}
			pr.Steady = &s
		}
		r.Profiles = append(r.Profiles, pr)
	}
	scaleImpls := opts.ScaleImpls
	if len(scaleImpls) == 0 {
		scaleImpls = []Impl{Ours, ClientGo}
	}
	for _, n := range opts.ScaleLeases {
		for _, impl := range scaleImpls {
			e.logf("scale: %d Leases × 3 candidate processes, %s", n, impl)
			s, err := runScale(ctx, e, opts.ScaleProfile, impl, n, opts.ScaleWindow, opts.Warmup, opts.ScaleCPUProfileDir)
			if err != nil {
				return r, fmt.Errorf("bench: scale %s × %d: %w", impl, n, err)
			}
			r.Scale = append(r.Scale, s)
		}
	}
	r.Load = append(r.Load, readLoad("end"))
	r.Duration = time.Since(began)
	r.Targets = r.targets()
	return r, nil
}

// both runs f for leadership and client-go at once.
func both(f func(i int, impl Impl) error) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, impl := range []Impl{Ours, ClientGo} {
		wg.Go(func() { errs[i] = f(i, impl) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (o Options) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bench: invalid options: "+format, args...)
	}
	if o.Handovers < 0 || o.Crashes < 0 || o.Restarts < 0 {
		return bad("counts must not be negative (handovers %d, crashes %d, restarts %d)", o.Handovers, o.Crashes, o.Restarts)
	}
	for _, p := range o.Profiles {
		if p.LeaseDuration < time.Second || p.LeaseDuration%time.Second != 0 {
			return bad("profile %q: lease duration %v must be a whole number of seconds ≥ 1s", p.Name, p.LeaseDuration)
		}
		if err := p.config(Ours).ours("x", nil).Validate(); err != nil {
			return bad("profile %q: %v", p.Name, err)
		}
		if p.RenewDeadline >= p.LeaseDuration || float64(p.RenewDeadline) <= 1.2*float64(p.RetryPeriod) {
			return bad("profile %q: client-go needs lease duration > renew deadline > 1.2 × retry period (%v, %v, %v)", p.Name, p.LeaseDuration, p.RenewDeadline, p.RetryPeriod)
		}
	}
	for k, w := range o.SteadyWindow {
		if w < 0 {
			return bad("steady window of %q is negative", k)
		}
	}
	for _, n := range o.ScaleLeases {
		if n < 1 || n > 5000 {
			return bad("scale Lease count %d must be in [1, 5000]", n)
		}
	}
	if len(o.ScaleLeases) > 0 && (o.ScaleWindow <= 0 || o.ScaleProfile.LeaseDuration <= 0) {
		return bad("the scale scenario needs a window and a profile")
	}
	return nil
}

func machine(admin kubernetes.Interface) Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				m.MemTotal = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.KernelInfo = strings.TrimSpace(string(b))
	}
	// The embedded API server reports no version of its own (no release
	// build flags); the module it was built from says it.
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				m.APIServer = "k8s.io/kubernetes " + d.Version
			}
		}
	}
	if m.APIServer == "" {
		if v, err := admin.Discovery().ServerVersion(); err == nil {
			m.APIServer = v.GitVersion
		}
	}
	return m
}
