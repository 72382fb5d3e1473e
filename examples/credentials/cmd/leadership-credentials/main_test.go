package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "leadership-credentials (devel) (commit ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("--version: exit %d, %q, %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Go version: "+runtime.Version()) {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	out.Reset()
	var v struct{ Version, Commit, Date, GoVersion, Platform string }
	if code := run([]string{"version", "-o", "json"}, &out, &errb); code != 0 {
		t.Fatalf("version -o json: exit %d, %q", code, errb.String())
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || v.Commit == "" || v.Date == "" || v.GoVersion != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version -o json: %v, %q", err, out.String())
	}
	errb.Reset()
	if code := run([]string{"version", "-o", "xml"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `invalid -o "xml"`) {
		t.Errorf("version -o xml: exit %d, %q", code, errb.String())
	}
}
