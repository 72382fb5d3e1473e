// Package cli tests the leadership command as users run it: the binary,
// built once per test run, in real OS processes (so kill -9 and SIGSTOP are
// real), against a real kube-apiserver started with RBAC authorization.
package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

var (
	cp *controlplane.ControlPlane
	// bin is the leadership binary under test; root the repository root;
	// adminKubeconfig a kubeconfig with full rights.
	bin, root, adminKubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if root, err = repoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "leadership-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "leadership")
	// No -trimpath and no -race: the binary is what users build.
	build := exec.Command(goTool(), "build", "-o", bin, "./cmd/leadership")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the leadership command: %v\n%s", err, out)
		return 1
	}
	adminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	// Coordinated Leader Election (beta, off by default) is on, so that the
	// API server keeps spec.strategy and spec.preferredHolder and runs its
	// coordinator, as on a cluster that uses it: our replicas must work
	// alike on both (TestCoordinatedLeaderElectionFields). Leases without
	// spec.strategy, as in every other test here, behave as with the gate
	// off.
	flags := []string{
		"--authorization-mode=RBAC",
		"--feature-gates=CoordinatedLeaderElection=true",
		"--runtime-config=coordination.k8s.io/v1beta1=true",
	}
	return controlplane.Main(m, controlplane.Options{ExtraAPIServerFlags: flags},
		func(c *controlplane.ControlPlane) {
			cp = c
			if err := cp.WriteKubeconfig(adminKubeconfig); err != nil {
				panic(err)
			}
		})
}

// repoRoot finds the root module from this file's location (the test is
// built without -trimpath), else from the working directory.
func repoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/leadership-dev/leadership\n")) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("cannot find the repository root (go.mod of github.com/leadership-dev/leadership) above %s", strings.Join(starts, " or "))
}

// goTool is the go command that runs this test.
func goTool() string {
	if r := os.Getenv("GOROOT"); r != "" {
		if p := filepath.Join(r, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
