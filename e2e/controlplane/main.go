package controlplane

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

// VerboseEnv is the environment variable that makes Main keep klog output
// ("1"), for debugging the API server without editing tests.
const VerboseEnv = "LEADERSHIP_E2E_VERBOSE"

// mainStartTimeout is generous: under -race on a loaded 2-core machine the
// API server needs far longer than its usual few seconds.
const mainStartTimeout = 5 * time.Minute

// Main starts one control plane for a test package's TestMain, hands it to
// set (typically to store it in a package-level variable), runs m.Run(),
// stops it, and returns the exit code for os.Exit. It silences klog unless
// the env var LEADERSHIP_E2E_VERBOSE=1. If opts.Logf is nil, progress goes to
// stderr, so a run prints a couple of lines.
func Main(m *testing.M, opts Options, set func(*ControlPlane)) int {
	if os.Getenv(VerboseEnv) == "1" {
		opts.Verbose = true
	}
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), mainStartTimeout)
	cp, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}
	if set != nil {
		set(cp)
	}
	code := m.Run()
	cp.Stop()
	return code
}

// silenceKlog stops klog output, which is about 200 lines per API server
// start. klog's state is process-global; nothing here can make it local.
func silenceKlog() {
	fs := flag.NewFlagSet("controlplane-klog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	klog.InitFlags(fs)
	for name, value := range map[string]string{
		"logtostderr":     "false",
		"alsologtostderr": "false",
		"stderrthreshold": "FATAL",
	} {
		// A flag missing from a future klog must not stop the tests.
		_ = fs.Set(name, value)
	}
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
}
