package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module github.com/leadership-dev/leadership\n\ngo 1.26.0\n")
	sub := filepath.Join(dir, "tools")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	ov := Overrides{Revision: "feedface", Epoch: "1764583200"}

	write("VERSION", "0.2.0\n")
	info, err := Read(context.Background(), sub, ov)
	if err != nil {
		t.Fatal(err)
	}
	if info.Root != dir || info.Version != "0.2.0" || info.Revision != "feedface" || !info.Time.Equal(time.Unix(1764583200, 0)) || info.Time.Location() != time.UTC {
		t.Errorf("Read: %+v", info)
	}

	for content, says := range map[string]string{
		"v0.2.0\n": `VERSION holds "v0.2.0": it must be a semantic version such as 0.2.0 (no leading v)`,
		"":         `VERSION holds "": it must be a semantic version`,
	} {
		write("VERSION", content)
		if _, err := Read(context.Background(), sub, ov); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("VERSION %q: %v, want an error saying %q", content, err, says)
		}
	}
	if _, err := Read(context.Background(), t.TempDir(), ov); err == nil || !strings.Contains(err.Error(), "no repository root") {
		t.Errorf("outside the repository: %v", err)
	}
}
