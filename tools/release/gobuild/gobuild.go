// Package gobuild cross-compiles the project's commands into static,
// reproducible binaries: no cgo, no build paths (-trimpath), no VCS stamp
// of the toolchain's own (the release's version, commit and date go in with
// -X instead), no build ID, and every environment knob that changes code
// generation pinned.
package gobuild

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/leadership-dev/leadership/tools/release/source"
)

// Command is one binary the release ships: the package to build and the
// directory of the module that holds it, relative to the repository root.
type Command struct {
	Module, Package string
}

// Commands are the binaries built, by name. The reference workload is a
// module of its own (examples/credentials), so that its PostgreSQL driver
// stays out of the library's go.mod; it replaces the library with the
// checkout, so both binaries are built from the same source.
var Commands = map[string]Command{
	"leadership":             {Module: ".", Package: "./cmd/leadership"},
	"leadership-credentials": {Module: "examples/credentials", Package: "./cmd/leadership-credentials"},
}

const versionPkg = "github.com/leadership-dev/leadership/internal/version"

// Platform is GOOS/GOARCH.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ParsePlatform reads "linux/amd64".
func ParsePlatform(s string) (Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	if !ok || os == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("invalid platform %q: want OS/ARCH, e.g. linux/amd64", s)
	}
	return Platform{os, arch}, nil
}

// Build compiles every command for p into dir and returns the binaries'
// paths by name.
func Build(ctx context.Context, src source.Info, p Platform, dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	modified := "false"
	if src.Modified {
		modified = "true"
	}
	ldflags := strings.Join([]string{
		"-s", "-w", "-buildid=",
		"-X", versionPkg + ".version=" + src.Version,
		"-X", versionPkg + ".commit=" + src.Revision,
		"-X", versionPkg + ".date=" + src.Time.Format(time.RFC3339),
		"-X", versionPkg + ".modified=" + modified,
	}, " ")
	flags := []string{"build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-ldflags", ldflags, "-o", dir + string(filepath.Separator)}
	// One go build per module, in a fixed order.
	pkgs := map[string][]string{}
	out := map[string]string{}
	for name, c := range Commands {
		pkgs[c.Module] = append(pkgs[c.Module], c.Package)
		out[name] = filepath.Join(dir, name)
	}
	for _, mod := range slices.Sorted(maps.Keys(pkgs)) {
		slices.Sort(pkgs[mod])
		if err := goBuild(ctx, filepath.Join(src.Root, mod), p, append(slices.Clone(flags), pkgs[mod]...)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// goBuild runs the go command with args in the module directory dir.
func goBuild(ctx context.Context, dir string, p Platform, args []string) error {
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch,
		// Baseline instruction sets, whatever the builder's environment says.
		"GOAMD64=v1", "GOARM64=v8.0", "GOARM=7",
		// The flags above are all; the caller's GOFLAGS must not add any.
		"GOFLAGS=",
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s in %s: %v\n%s", p, dir, err, stderr.String())
	}
	return nil
}

// goTool is the go command of the running toolchain when known.
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
