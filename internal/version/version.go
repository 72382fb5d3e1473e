// Package version tells which build of the leadership commands is running:
// the release version, the commit and its time, and the Go toolchain.
//
// Release builds (the image and archive builder in tools/cmd/image) set
// the version, commit and date with the linker:
//
//	-ldflags "-X github.com/leadership-dev/leadership/internal/version.version=0.2.0
//	          -X github.com/leadership-dev/leadership/internal/version.commit=SHA
//	          -X github.com/leadership-dev/leadership/internal/version.date=2026-12-01T10:00:00Z
//	          -X github.com/leadership-dev/leadership/internal/version.modified=true"
//
// A plain `go build` or `go install` leaves them empty, and Get falls back
// on what the Go toolchain stamped in the binary: the main module's
// version ("(devel)" or a pseudo-version) and the VCS revision and time,
// so that no build claims to be a release it is not.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X) in release builds; package variables because -X
// can set nothing else. Read only through Get.
var (
	version  string
	commit   string
	date     string
	modified string // "true" when the source tree had uncommitted changes
)

// Info describes the running build.
type Info struct {
	// Version is the release version (the repository's VERSION file) in
	// release builds, else the Go toolchain's idea of the main module's
	// version, else "(devel)".
	Version string `json:"version"`
	// Commit is the source revision, "unknown" when nothing recorded it.
	Commit string `json:"commit"`
	// Modified: the build's source tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// Date is the commit's time (RFC 3339), not the build's, so that
	// two builds of one commit are identical; "unknown" when not recorded.
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the running build's information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi, version, commit, date, modified == "true")
}

func get(bi *debug.BuildInfo, version, commit, date string, modified bool) Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		Modified:  modified,
		Date:      date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if info.Version == "" && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				info.Modified = info.Modified || s.Value == "true"
			}
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}

// String is the one line that --version prints.
func (i Info) String() string {
	c := i.Commit
	if i.Modified {
		c += ", modified"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s, %s)", i.Version, c, i.Date, i.GoVersion, i.Platform)
}
