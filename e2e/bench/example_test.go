package bench_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/leadership-dev/leadership/e2e/bench"
	"github.com/leadership-dev/leadership/e2e/controlplane"
)

// A main that runs the bench: the same binary serves as the candidate
// processes, so it hands over to ChildMain first.
func ExampleRun() {
	if bench.IsChild() {
		os.Exit(bench.ChildMain())
	}
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{ExtraAPIServerFlags: bench.APIServerFlags()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cp.Stop()
	opts := bench.DefaultOptions()
	opts.Handovers, opts.ScaleWindow = 50, time.Minute
	r, err := bench.Run(ctx, cp, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(r.Markdown())
	_ = r.WritePlot("latency.png")
}
