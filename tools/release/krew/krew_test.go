package krew

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Executables stay executable in the archive, other files do not, and the
// archive does not depend on the files' own times.
func TestArchiveModes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := map[string]string{
		"leadership":             write("leadership", 0o755),
		"leadership-credentials": write("leadership-credentials", 0o700),
		"LICENSE":                write("LICENSE", 0o600),
	}
	mtime := time.Unix(1764583200, 0)
	sum1, err := Archive(filepath.Join(dir, "a.tar.gz"), mtime, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(files["LICENSE"], time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sum2, err := Archive(filepath.Join(dir, "b.tar.gz"), mtime, files)
	if err != nil {
		t.Fatal(err)
	}
	if sum1 != sum2 {
		t.Errorf("two archives of the same files differ: %s, %s", sum1, sum2)
	}
	f, err := os.Open(filepath.Join(dir, "a.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	want := map[string]int64{"LICENSE": 0o644, "leadership": 0o755, "leadership-credentials": 0o755}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Mode != want[h.Name] || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mode %o, time %v; want %o, %v", h.Name, h.Mode, h.ModTime, want[h.Name], mtime)
		}
		delete(want, h.Name)
	}
	if len(want) != 0 {
		t.Errorf("missing from the archive: %v", want)
	}
}
