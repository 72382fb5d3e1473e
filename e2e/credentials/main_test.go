// Package credentials tests the credential workload
// (examples/credentials/cmd/leadership-credentials) as real OS processes
// against a real kube-apiserver (pods, Secrets, the Lease) and a real
// PostgreSQL server, both started by the tests, under kill -9 and SIGSTOP of
// the leader.
package credentials

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

var (
	cp *controlplane.ControlPlane
	pg *pgServer
	// workloadBin is examples/credentials/cmd/leadership-credentials, built
	// for this run.
	workloadBin string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// PostgreSQL is not optional: these tests fail, never skip, without it.
	bindir, err := findPGBinDir()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t := time.Now()
	if pg, err = startPG(ctx, bindir); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: starting PostgreSQL from %s: %v\n", bindir, err)
		return 1
	}
	defer pg.stop()
	fmt.Fprintf(os.Stderr, "postgres: %s ready on 127.0.0.1:%d in %v\n", bindir, pg.port, time.Since(t).Round(time.Millisecond))

	dir, err := os.MkdirTemp("", "leadership-e2e-credentials-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	t = time.Now()
	if workloadBin, err = buildWorkload(ctx, dir); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: building cmd/leadership-credentials: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "built cmd/leadership-credentials (race=%v) in %v\n", raceEnabled, time.Since(t).Round(time.Millisecond))
	return controlplane.Main(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c })
}

// buildWorkload builds the command from the repository this test lives in
// (its own module, examples/credentials, which replaces the library with
// this checkout), with the race detector when the test binary has it, so the
// workload's own races show up under the faults too.
func buildWorkload(ctx context.Context, dir string) (string, error) {
	root, err := filepath.Abs(filepath.Join("..", "..", "examples", "credentials"))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "leadership-credentials")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/leadership-credentials")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %v in %s: %w\n%s", args, root, err, out)
	}
	return bin, nil
}
