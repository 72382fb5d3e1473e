// Command bench measures leadership against client-go's leader election on
// a local control plane (a real kube-apiserver on an embedded etcd, started
// here): graceful handover and crash takeover latency, API requests and
// CPU/memory per leader and idle follower, and 100 and 1000 Leases at once.
// It prints a markdown table with ratios leadership / client-go and writes
// results.json, results.md and latency.png into -out.
//
// Run it from the e2e directory:
//
//	go run ./cmd/bench -out ../docs/bench
//
// The full run takes about 35 minutes on 2 cores; -quick runs every
// scenario with tiny counts in about a minute.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/bench"
	"github.com/leadership-dev/leadership/e2e/controlplane"
)

func main() {
	if bench.IsChild() {
		// This binary is also the bench's candidate process.
		os.Exit(bench.ChildMain())
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	def := bench.DefaultOptions()
	// A FlagSet of its own: the API server's packages fill the global one.
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	out := fs.String("out", "../docs/bench", "directory for results.json, results.md and latency.png")
	profiles := fs.String("profiles", "default,fast", "timing profiles to run: default (15s lease, client-go's defaults), fast (2s lease)")
	handovers := fs.Int("handovers", def.Handovers, "graceful handovers per implementation and profile")
	crashes := fs.Int("crashes", def.Crashes, "crash takeovers per implementation and profile")
	restarts := fs.Int("restarts", def.Restarts, "crashes and restarts in place (kill -9 of the leader's process, restarted at once) per implementation and profile")
	only := fs.String("only", "", "run only this scenario: restart (the others' counts and windows become 0)")
	windowDefault := fs.Duration("window-default", def.SteadyWindow["default"], "steady measurement window, default profile (0 skips)")
	windowFast := fs.Duration("window-fast", def.SteadyWindow["fast"], "steady measurement window, fast profile (0 skips)")
	scale := fs.String("scale", "100,1000", "Lease counts of the scale scenario, comma-separated (empty skips)")
	scaleWindow := fs.Duration("scale-window", def.ScaleWindow, "scale measurement window")
	warmup := fs.Duration("warmup", def.Warmup, "pause between roles settling and a window opening")
	quick := fs.Bool("quick", false, "tiny counts and windows (fast profile, 10 Leases): checks that everything runs, measures nothing worth quoting")
	scaleImpls := fs.String("scale-impls", "leadership,client-go", "implementations of the scale scenario")
	profileDir := fs.String("scale-cpuprofile-dir", "", "write a pprof CPU profile of the API server's process over each scale window into this directory")
	from := fs.String("from", "", "measure nothing: render results.md and latency.png from this results.json of an earlier run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see -h", fs.Args())
	}

	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		var r bench.Results
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("-from %s: %w", *from, err)
		}
		return write(&r, *out, false)
	}
	opts := def
	opts.Handovers, opts.Crashes, opts.Restarts, opts.Warmup, opts.ScaleWindow = *handovers, *crashes, *restarts, *warmup, *scaleWindow
	opts.SteadyWindow = map[string]time.Duration{"default": *windowDefault, "fast": *windowFast}
	opts.Profiles = nil
	for name := range strings.SplitSeq(*profiles, ",") {
		switch strings.TrimSpace(name) {
		case "default":
			opts.Profiles = append(opts.Profiles, bench.DefaultProfile())
		case "fast":
			opts.Profiles = append(opts.Profiles, bench.FastProfile())
		case "":
		default:
			return fmt.Errorf("-profiles: unknown profile %q; use default, fast or both", name)
		}
	}
	opts.ScaleLeases = nil
	for s := range strings.SplitSeq(*scale, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("-scale: %q is not a positive Lease count", s)
		}
		opts.ScaleLeases = append(opts.ScaleLeases, n)
	}
	opts.ScaleCPUProfileDir = *profileDir
	for name := range strings.SplitSeq(*scaleImpls, ",") {
		switch i := bench.Impl(strings.TrimSpace(name)); i {
		case bench.Ours, bench.ClientGo:
			opts.ScaleImpls = append(opts.ScaleImpls, i)
		default:
			return fmt.Errorf("-scale-impls: unknown implementation %q; use leadership, client-go or both", name)
		}
	}
	switch *only {
	case "":
	case "restart":
		opts.Handovers, opts.Crashes, opts.ScaleLeases = 0, 0, nil
		opts.SteadyWindow = map[string]time.Duration{}
	default:
		return fmt.Errorf("-only %q: the only scenario that can run alone is restart", *only)
	}
	if *quick {
		fast := bench.FastProfile()
		opts.Profiles = []bench.Profile{fast}
		opts.Handovers, opts.Crashes, opts.Restarts = 3, 2, 2
		opts.SteadyWindow = map[string]time.Duration{"fast": 5 * time.Second}
		opts.Warmup = time.Second
		opts.ScaleLeases, opts.ScaleProfile, opts.ScaleWindow = []int{10}, fast, 5*time.Second
	}
	opts.Command = "go run ./cmd/bench " + strings.Join(args, " ")
	opts.Logf = func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Logf("starting a local control plane (embedded etcd + kube-apiserver)")
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	cp, err := controlplane.Start(startCtx, controlplane.Options{ExtraAPIServerFlags: bench.APIServerFlags()})
	cancel()
	if err != nil {
		return err
	}
	defer cp.Stop()

	r, err := bench.Run(ctx, cp, opts)
	if err != nil {
		return err
	}
	return write(r, *out, true)
}

// write prints the report and writes it with the plot (and, for a fresh
// run, the JSON) into out.
func write(r *bench.Results, out string, withJSON bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	md := r.Markdown()
	fmt.Print(md)
	if withJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "results.json"), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := r.WritePlot(filepath.Join(out, "latency.png")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", filepath.Join(out, "{results.json,results.md,latency.png}"))
	return nil
}
