// Command chaos runs the fault scenarios of package chaos against fleets of
// candidate processes (leadership's elector and client-go's, side by side)
// on a local control plane, and prints a markdown table per scenario:
// overlapping lead intervals (frozen processes' apart), writes refused,
// overlaps of accepted work, stale writes accepted, fencing tokens that
// failed to increase, takeover times and time without a leader.
//
//	go run ./cmd/chaos -scenario all -transitions 20     (from the e2e module)
//
// The first run compiles the API server (minutes); the candidate binary is
// built from ./cmd/candidate each run (seconds once cached).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/chaos"
)

func main() {
	// A FlagSet of its own: the API server's packages fill the global one.
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	scenarios := fs.String("scenario", "all", "comma-separated scenarios, or all: "+names())
	transitions := fs.Int("transitions", 20, "faults per scenario and fleet (each normally one transition)")
	restarts := fs.Int("restarts", 0, "API server restarts / etcd stalls (0: min(transitions, 10))")
	rounds := fs.String("rounds", "", "per-scenario fault counts overriding -transitions/-restarts, e.g. handover-storm=100,apiserver-restart=5")
	candidates := fs.Int("candidates", 3, "candidates per fleet")
	lease := fs.Duration("lease-duration", 2*time.Second, "lease duration of every candidate (whole seconds)")
	tick := fs.Duration("tick", 50*time.Millisecond, "length of one unit of leader work")
	margin := fs.Duration("margin", 200*time.Millisecond, "validity a leadership candidate keeps beyond a tick before beginning a unit")
	wait := fs.Duration("wait-timeout", time.Minute, "bound on every wait for a condition")
	dir := fs.String("dir", "", "keep the candidates' logs here (default: a temp dir, removed unless a scenario fails)")
	bin := fs.String("candidate", "", "prebuilt candidate binary (default: build ./cmd/candidate)")
	drift := fs.Float64("clock-drift", 0.01, "clock-drift scenario: one of leadership's candidates runs at rate 1+drift/2, the others at 1−drift/2 (keep ≤ the library's MaxClockDrift, 0.01 by default, to test the promise; above it, to see the checker catch the overlaps)")
	race := fs.Bool("race", false, "build the candidate with the race detector")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var list []string
	if *scenarios == "all" {
		for _, s := range chaos.Scenarios() {
			list = append(list, s.Name)
		}
	} else {
		list = strings.Split(*scenarios, ",")
	}
	if *transitions < 1 || *candidates < 2 || *lease < time.Second || *lease%time.Second != 0 || *tick <= 0 || *margin < 0 || !(*drift > 0 && *drift <= 0.5) {
		fmt.Fprintln(os.Stderr, "chaos: want -transitions ≥ 1, -candidates ≥ 2, -lease-duration whole seconds ≥ 1s, -tick > 0, -margin ≥ 0, 0 < -clock-drift ≤ 0.5")
		os.Exit(2)
	}
	per, err := parseRounds(*rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelError
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, list, chaos.Options{
		Transitions: *transitions, Restarts: *restarts, PerScenario: per, Candidates: *candidates, LeaseDuration: *lease,
		Tick: *tick, Margin: *margin, WaitTimeout: *wait, Dir: *dir, CandidateBinary: *bin,
		ClockDrift: *drift, Race: *race, Log: log,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func parseRounds(s string) (map[string]int, error) {
	per := map[string]int{}
	if s == "" {
		return per, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("-rounds %q: want scenario=count with count ≥ 1, comma-separated", kv)
		}
		per[strings.TrimSpace(k)] = n
	}
	return per, nil
}

func names() string {
	var ns []string
	for _, s := range chaos.Scenarios() {
		ns = append(ns, s.Name)
	}
	return strings.Join(ns, ", ")
}

func run(ctx context.Context, log *slog.Logger, scenarios []string, o chaos.Options) error {
	began := time.Now()
	r, err := chaos.Start(ctx, o)
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Printf("## chaos run: %s\n\n", strings.Join(scenarios, ", "))
	var results []*chaos.Result
	unsafe := false
	for _, name := range scenarios {
		res, err := r.Run(ctx, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		results = append(results, res)
		if err := chaos.WriteMarkdown(os.Stdout, res); err != nil {
			return err
		}
		for _, f := range res.Fleets {
			for _, p := range f.Report.Problems() {
				log.Warn(p, "scenario", name, "fleet", f.Label)
			}
		}
		if len(res.LeadershipProblems()) > 0 {
			unsafe = true
		}
	}
	if len(results) > 1 {
		if err := chaos.WriteSummary(os.Stdout, results); err != nil {
			return err
		}
	}
	fmt.Printf("Total time %v.\n", time.Since(began).Round(time.Second))
	if unsafe {
		return fmt.Errorf("leadership's history is unsafe (see the warnings above); logs in %s", r.Dir())
	}
	return nil
}
