// Package source says what a release build is built from: the version
// (the repository's VERSION file), the commit, and the commit's time, which
// stands for the build's time everywhere so that two builds of one commit
// are identical.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Info identifies the source of a build.
type Info struct {
	// Root is the repository root (the directory of VERSION and go.mod).
	Root string
	// Version is VERSION's content, with "+dirty" when Modified.
	Version string
	// Revision is the full commit hash.
	Revision string
	// Modified: tracked files differ from the commit.
	Modified bool
	// Time is the commit time (or SOURCE_DATE_EPOCH), in UTC, whole seconds.
	Time time.Time
}

// semver is what VERSION may hold: MAJOR.MINOR.PATCH with an optional
// pre-release, as krew and Helm require.
var semver = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// Overrides replace what git would say, for builds outside a git checkout.
type Overrides struct {
	Version  string // "": VERSION
	Revision string // "": git rev-parse HEAD
	// Epoch is SOURCE_DATE_EPOCH in seconds; "": the environment's
	// SOURCE_DATE_EPOCH, else the commit time.
	Epoch string
}

// Read finds the repository root above dir and describes its source.
func Read(ctx context.Context, dir string, o Overrides) (Info, error) {
	root, err := findRoot(dir)
	if err != nil {
		return Info{}, err
	}
	info := Info{Root: root}
	info.Version = o.Version
	if info.Version == "" {
		b, err := os.ReadFile(filepath.Join(root, "VERSION"))
		if err != nil {
			return Info{}, fmt.Errorf("cannot read the version: %w (the repository root holds a VERSION file such as 0.2.0)", err)
		}
		info.Version = strings.TrimSpace(string(b))
		if !semver.MatchString(info.Version) {
			return Info{}, fmt.Errorf("VERSION holds %q: it must be a semantic version such as 0.2.0 (no leading v)", info.Version)
		}
	}
	info.Revision = o.Revision
	if info.Revision == "" {
		out, err := git(ctx, root, "rev-parse", "HEAD")
		if err != nil {
			return Info{}, fmt.Errorf("cannot read the commit (pass -revision outside a git checkout): %w", err)
		}
		info.Revision = out
		// Only tracked files count: build/ and editor files do not change
		// what is built.
		st, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no")
		if err != nil {
			return Info{}, err
		}
		if st != "" {
			info.Modified = true
			if o.Version == "" {
				info.Version += "+dirty"
			}
		}
	}
	epoch := o.Epoch
	if epoch == "" {
		epoch = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if epoch == "" {
		out, err := git(ctx, root, "log", "-1", "--format=%ct", info.Revision)
		if err != nil {
			return Info{}, fmt.Errorf("cannot read the commit time (pass -source-date-epoch or set SOURCE_DATE_EPOCH): %w", err)
		}
		epoch = out
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || sec < 0 {
		return Info{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", epoch)
	}
	info.Time = time.Unix(sec, 0).UTC()
	return info, nil
}

func findRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/leadership-dev/leadership\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no repository root (go.mod of github.com/leadership-dev/leadership) above %s: pass -repo", abs)
		}
	}
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
