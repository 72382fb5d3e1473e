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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/leadership-dev/leadership/tools/release/source"
)

// Commands are the packages built, by binary name.
var Commands = map[string]string{
	"leadership":             "./cmd/leadership",
	"leadership-credentials": "./cmd/leadership-credentials",
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
	args := []string{"build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-ldflags", ldflags, "-o", dir + string(filepath.Separator)}
	out := map[string]string{}
	for name, pkg := range Commands {
		args = append(args, pkg)
		out[name] = filepath.Join(dir, name)
	}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = src.Root
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
		return nil, fmt.Errorf("go build for %s: %v\n%s", p, err, stderr.String())
	}
	return out, nil
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
