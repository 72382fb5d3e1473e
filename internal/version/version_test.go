package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/leadership-dev/leadership", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abc"},
			{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, c := range []struct {
		name                  string
		bi                    *debug.BuildInfo
		version, commit, date string
		modified              bool
		want                  Info
	}{
		{"release build: the linker's values win", stamped, "0.2.0", "feedface", "2026-12-01T00:00:00Z", false,
			Info{Version: "0.2.0", Commit: "feedface", Modified: true, Date: "2026-12-01T00:00:00Z", GoVersion: "go1.99.1", Platform: platform}},
		{"plain go build: the toolchain's stamp", stamped, "", "", "", false,
			Info{Version: "(devel)", Commit: "0123abc", Modified: true, Date: "2026-11-30T10:00:00Z", GoVersion: "go1.99.1", Platform: platform}},
		{"nothing recorded: say so", nil, "", "", "", false,
			Info{Version: "(devel)", Commit: "unknown", Date: "unknown", GoVersion: runtime.Version(), Platform: platform}},
		{"modified set by the linker", nil, "0.2.0+dirty", "feedface", "2026-12-01T00:00:00Z", true,
			Info{Version: "0.2.0+dirty", Commit: "feedface", Modified: true, Date: "2026-12-01T00:00:00Z", GoVersion: runtime.Version(), Platform: platform}},
	} {
		if got := get(c.bi, c.version, c.commit, c.date, c.modified); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestString(t *testing.T) {
	s := Info{Version: "0.2.0", Commit: "feedface", Modified: true, Date: "2026-12-01T00:00:00Z", GoVersion: "go1.99.1", Platform: "linux/arm64"}.String()
	for _, want := range []string{"0.2.0", "commit feedface, modified", "2026-12-01T00:00:00Z", "go1.99.1", "linux/arm64"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}
