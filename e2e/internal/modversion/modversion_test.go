package modversion_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadership-dev/leadership/e2e/internal/modversion"
)

// A test binary has no module list, so a small command reports what a real
// binary sees.
func TestOfInABinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "printversion")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/printversion").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "k8s.io/client-go").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), strings.TrimSpace(string(mod)); got != want {
		t.Errorf("modversion.Of(client-go) = %q; go list -m says %q", got, want)
	}
}

func TestOfUnknown(t *testing.T) {
	if v := modversion.Of("example.com/not-built-in"); v != "(version unknown)" {
		t.Errorf("a module not built in: %q", v)
	}
}
