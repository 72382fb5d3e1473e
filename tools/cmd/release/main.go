// Command release builds what the project ships, with no container engine:
// static binaries for linux/amd64 and linux/arm64, the container image (an
// OCI image index over both, as an OCI layout and a tarball), and the
// kubectl plugin's archives with their krew manifest. Two runs on one
// commit write identical files.
//
//	go -C tools run ./cmd/release                      # everything into build/
//	go -C tools run ./cmd/release -push REGISTRY/leadership:0.2.0
//
// -push uploads the image index after building it, with the credentials
// of ~/.docker/config.json (docker login, crane auth login) or a cloud
// helper, as crane does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/leadership-dev/leadership/tools/release/gobuild"
	"github.com/leadership-dev/leadership/tools/release/image"
	"github.com/leadership-dev/leadership/tools/release/krew"
	"github.com/leadership-dev/leadership/tools/release/source"
)

type options struct {
	repo, out, platforms string
	overrides            source.Overrides
	sourceURL            string
	downloadURL          string
	archives             bool
	push                 string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.repo, "repo", ".", "a directory inside the repository to build")
	fs.StringVar(&o.out, "out", "", "build directory (default: build/ at the repository root)")
	fs.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated OS/ARCH list")
	fs.StringVar(&o.overrides.Version, "version", "", "release version (default: the VERSION file, +dirty if tracked files changed)")
	fs.StringVar(&o.overrides.Revision, "revision", "", "commit hash (default: git rev-parse HEAD)")
	fs.StringVar(&o.overrides.Epoch, "source-date-epoch", "", "build time in seconds since 1970 (default: $SOURCE_DATE_EPOCH, else the commit time)")
	fs.StringVar(&o.sourceURL, "source-url", "https://github.com/leadership-dev/leadership", "repository URL for the image labels and the krew homepage")
	fs.StringVar(&o.downloadURL, "download-url", "", "where the release archives will be downloadable, for the krew manifest (default: SOURCE-URL/releases/download/vVERSION)")
	fs.BoolVar(&o.archives, "archives", true, "also write the kubectl plugin's archives and krew manifest")
	fs.StringVar(&o.push, "push", "", "push the image index to this reference after building, e.g. ghcr.io/you/leadership:0.2.0")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "release: unexpected argument %q (all settings are flags; see -h)\n", fs.Arg(0))
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	res, err := build(ctx, o, log)
	if err != nil {
		fmt.Fprintf(stderr, "release: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "image index %s\n  layout  %s\n  archive %s\n", res.digest, res.layout, res.archive)
	for _, a := range res.krewFiles {
		fmt.Fprintf(stdout, "  %s\n", a)
	}
	if o.push != "" {
		ref, err := name.ParseReference(o.push)
		if err != nil {
			fmt.Fprintf(stderr, "release: invalid -push %q: %v (want REGISTRY/REPOSITORY:TAG)\n", o.push, err)
			return 2
		}
		if err := remote.WriteIndex(ref, res.index, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			fmt.Fprintf(stderr, "release: pushing to %s: %v\n", ref, err)
			return 1
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", ref.Context(), res.digest)
	}
	return 0
}

type result struct {
	index           v1.ImageIndex
	digest          v1.Hash
	layout, archive string
	krewFiles       []string
}

func build(ctx context.Context, o options, log *slog.Logger) (result, error) {
	var res result
	var platforms []gobuild.Platform
	for _, s := range strings.Split(o.platforms, ",") {
		p, err := gobuild.ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return res, err
		}
		platforms = append(platforms, p)
	}
	src, err := source.Read(ctx, o.repo, o.overrides)
	if err != nil {
		return res, err
	}
	out := o.out
	if out == "" {
		out = filepath.Join(src.Root, "build")
	}
	log.Info("building", "version", src.Version, "revision", src.Revision, "time", src.Time, "platforms", o.platforms, "out", out)

	var imgs []image.Platform
	for _, p := range platforms {
		bins, err := gobuild.Build(ctx, src, p, filepath.Join(out, "bin", p.OS+"_"+p.Arch))
		if err != nil {
			return res, err
		}
		log.Info("compiled", "platform", p)
		imgs = append(imgs, image.Platform{OS: p.OS, Arch: p.Arch, Binaries: bins})
	}
	md := image.Metadata{Version: src.Version, Revision: src.Revision, Source: o.sourceURL, Created: src.Time}
	if res.index, err = image.Index(md, imgs); err != nil {
		return res, fmt.Errorf("assembling the image: %w", err)
	}
	if res.digest, err = res.index.Digest(); err != nil {
		return res, err
	}
	dir := filepath.Join(out, "image")
	res.layout = filepath.Join(dir, "oci")
	res.archive = filepath.Join(dir, "leadership-"+src.Version+".oci.tar")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	if err := image.WriteLayout(res.layout, res.index, src.Version); err != nil {
		return res, fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := image.WriteArchive(res.layout, res.archive, src.Time); err != nil {
		return res, fmt.Errorf("writing the image tarball: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "digest"), []byte(res.digest.String()+"\n"), 0o644); err != nil {
		return res, err
	}
	log.Info("image written", "digest", res.digest, "layout", res.layout)

	if !o.archives {
		return res, nil
	}
	rel := filepath.Join(out, "release")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		return res, err
	}
	download := o.downloadURL
	if download == "" {
		download = strings.TrimSuffix(o.sourceURL, "/") + "/releases/download/v" + src.Version
	}
	m := krew.Manifest{Version: src.Version, Homepage: o.sourceURL}
	var sums strings.Builder
	for _, p := range imgs {
		file := fmt.Sprintf("leadership_%s_%s_%s.tar.gz", src.Version, p.OS, p.Arch)
		sum, err := krew.Archive(filepath.Join(rel, file), src.Time, map[string]string{
			krew.Binary:              p.Binaries["leadership"],
			"leadership-credentials": p.Binaries["leadership-credentials"],
			"LICENSE":                filepath.Join(src.Root, "LICENSE"),
		})
		if err != nil {
			return res, fmt.Errorf("packing %s: %w", file, err)
		}
		m.Platforms = append(m.Platforms, krew.Platform{OS: p.OS, Arch: p.Arch, URI: strings.TrimSuffix(download, "/") + "/" + file, SHA256: sum})
		fmt.Fprintf(&sums, "%s  %s\n", sum, file)
		res.krewFiles = append(res.krewFiles, filepath.Join(rel, file))
	}
	f, err := os.Create(filepath.Join(rel, "leadership.yaml"))
	if err != nil {
		return res, err
	}
	werr := m.Write(f)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return res, fmt.Errorf("writing the krew manifest: %w", werr)
	}
	if err := os.WriteFile(filepath.Join(rel, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		return res, err
	}
	res.krewFiles = append(res.krewFiles, filepath.Join(rel, "leadership.yaml"), filepath.Join(rel, "SHA256SUMS"))
	return res, nil
}
