package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/leadership-dev/leadership/tools/release/source"
)

// The whole release build, twice: once in the repository, once in a copy
// of its files at another path, which must give the same image index
// digest and the same archives. Then the image is taken apart: the index
// lists both platforms, and this machine's root file system, unpacked,
// runs its entrypoint under chroot(2) as the image's user to print the
// version that the build stamped.
func TestReleaseBuild(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs the image's entrypoint under chroot(2), which needs root: run it as root (CI and scripts/test.sh do)")
	}
	ctx := context.Background()
	src, err := source.Read(ctx, ".", source.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	// The same identity for both builds: the copy has no .git to ask.
	ov := source.Overrides{Version: src.Version, Revision: src.Revision, Epoch: strconv.FormatInt(src.Time.Unix(), 10)}

	outA := t.TempDir()
	start := time.Now()
	a := buildOrFail(t, options{repo: src.Root, out: outA, overrides: ov})
	t.Logf("first build %v: index %s", time.Since(start).Round(time.Second), a.digest)

	copyRoot := filepath.Join(t.TempDir(), "elsewhere", "leadership")
	copyTracked(t, src.Root, copyRoot)
	outB := t.TempDir()
	start = time.Now()
	b := buildOrFail(t, options{repo: copyRoot, out: outB, overrides: ov})
	t.Logf("second build, from %s: %v: index %s", copyRoot, time.Since(start).Round(time.Second), b.digest)

	if a.digest != b.digest {
		t.Errorf("two builds of one commit differ: index %s and %s", a.digest, b.digest)
	}
	for _, rel := range []string{
		filepath.Join("image", "leadership-"+src.Version+".oci.tar"),
		filepath.Join("release", "leadership_"+src.Version+"_linux_amd64.tar.gz"),
		filepath.Join("release", "leadership_"+src.Version+"_linux_arm64.tar.gz"),
		filepath.Join("release", "leadership.yaml"),
		filepath.Join("release", "SHA256SUMS"),
	} {
		fa, errA := os.ReadFile(filepath.Join(outA, rel))
		fb, errB := os.ReadFile(filepath.Join(outB, rel))
		if errA != nil || errB != nil {
			t.Errorf("%s: %v, %v", rel, errA, errB)
			continue
		}
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s differs between the two builds", rel)
		}
	}

	// Read the image back from the layout on disk, not from memory.
	lp, err := layout.FromPath(filepath.Join(outA, "image", "oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topm.Manifests) != 1 || topm.Manifests[0].Digest != a.digest || topm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != src.Version {
		t.Fatalf("index.json should point at the image index %s tagged %s: %+v", a.digest, src.Version, topm.Manifests)
	}
	idx, err := top.ImageIndex(a.digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	var host v1.Hash
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
		if d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			host = d.Digest
		}
	}
	if strings.Join(platforms, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("the index lists %v, want linux/amd64 and linux/arm64", platforms)
	}
	if host == (v1.Hash{}) {
		t.Fatalf("no image for this machine's linux/%s in %v", runtime.GOARCH, platforms)
	}
	img, err := idx.Image(host)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	created := src.Time.UTC().Format(time.RFC3339)
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   "https://github.com/leadership-dev/leadership",
		"org.opencontainers.image.revision": src.Revision,
		"org.opencontainers.image.version":  src.Version,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  created,
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
		if got := im.Annotations[k]; got != want {
			t.Errorf("index annotation %s = %q, want %q", k, got, want)
		}
	}
	if cfg.Config.User != "65532:65532" || strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/leadership" || !cfg.Created.Time.Equal(src.Time) {
		t.Errorf("config: user %q, entrypoint %q, created %v", cfg.Config.User, cfg.Config.Entrypoint, cfg.Created)
	}

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	unpack(t, img, rootfs)
	for _, want := range []string{"usr/local/bin/leadership", "usr/local/bin/leadership-credentials", "etc/passwd", "etc/group", "tmp"} {
		if _, err := os.Stat(filepath.Join(rootfs, want)); err != nil {
			t.Errorf("the image lacks /%s: %v", want, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd")); !strings.Contains(string(b), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532: %q", b)
	}

	out := chrootRun(t, rootfs, cfg, append(cfg.Config.Entrypoint, "version"))
	t.Logf("leadership version, run from the image:\n%s", out)
	for _, want := range []string{"Version:    " + src.Version + "\n", "Commit:     " + src.Revision + "\n", "Date:       " + created + "\n", "Go version: go", "Platform:   linux/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("leadership version from the image lacks %q:\n%s", want, out)
		}
	}
	out = chrootRun(t, rootfs, cfg, []string{"leadership-credentials", "--version"})
	if want := "leadership-credentials " + src.Version + " (commit " + src.Revision; !strings.HasPrefix(out, want) {
		t.Errorf("leadership-credentials --version from the image: %q, want it to start %q", out, want)
	}
}

func buildOrFail(t *testing.T, o options) result {
	t.Helper()
	o.platforms = "linux/amd64,linux/arm64"
	o.sourceURL = "https://github.com/leadership-dev/leadership"
	o.archives = true
	res, err := build(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// copyTracked copies the files git knows of (committed or not) and any
// new ones not ignored: the build's input, at another path.
func copyTracked(t *testing.T, from, to string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = from
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		fi, err := os.Lstat(filepath.Join(from, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, rel))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(to, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// unpack extracts the image's layers into dir with their modes and owners.
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Clean(h.Name)
			if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
				t.Fatalf("layer entry %q escapes the root", h.Name)
			}
			p := filepath.Join(dir, name)
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("unexpected entry %q of type %c", h.Name, h.Typeflag)
			}
			if err := os.Chown(p, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
			// After chown, which clears set-id bits; sticky survives.
			mode := os.FileMode(h.Mode).Perm()
			if h.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		rc.Close()
	}
}

// chrootRun runs argv inside rootfs as the image's user, with the image's
// environment and nothing of this machine's.
func chrootRun(t *testing.T, rootfs string, cfg *v1.ConfigFile, argv []string) string {
	t.Helper()
	uid, gid, ok := strings.Cut(cfg.Config.User, ":")
	if !ok {
		t.Fatalf("image user %q is not UID:GID", cfg.Config.User)
	}
	u, err1 := strconv.ParseUint(uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("image user %q is not numeric", cfg.Config.User)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// exec.Command resolved argv[0] on this machine's PATH; inside the
	// chroot, the image's PATH decides.
	cmd.Path = argv[0]
	if !strings.HasPrefix(argv[0], "/") {
		cmd.Path = "/usr/local/bin/" + argv[0]
	}
	cmd.Err = nil // the failed lookup on this machine
	cmd.Env = cfg.Config.Env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: uint32(u), Gid: uint32(g), NoSetGroups: true},
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chroot %s %s: %v\nstderr: %s", rootfs, strings.Join(argv, " "), err, stderr.String())
	}
	return stdout.String()
}

func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"-platforms", "linux"}, 1, `invalid platform "linux": want OS/ARCH`},
		{[]string{"-source-date-epoch", "yesterday", "-out", t.TempDir()}, 1, `invalid SOURCE_DATE_EPOCH "yesterday"`},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), c.args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("release %s: exit %d, %q; want %d saying %q", strings.Join(c.args, " "), code, stderr.String(), c.code, c.says)
		}
	}
}
