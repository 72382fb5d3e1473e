// Package image assembles the project's container image without a
// container engine: a FROM-scratch file system holding the static
// binaries, a passwd and group entry for the non-root user 65532, an OCI
// image per platform and an OCI image index over them, all with fixed
// times (the commit's) and sorted entries, so that two builds of one commit
// have the same digest.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image.
const (
	BinDir     = "/usr/local/bin"
	Entrypoint = BinDir + "/leadership"
	// UID and GID of the user "nonroot" the image runs as, as in the
	// distroless images, so that Pod security "restricted" admits it.
	UID = 65532
	GID = 65532
)

// Metadata goes into the OCI labels and annotations.
type Metadata struct {
	Version  string
	Revision string
	Source   string // repository URL
	Created  time.Time
}

func (m Metadata) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "leadership",
		"org.opencontainers.image.description": "Leader election on a Kubernetes Lease, for programs in any language",
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.url":         m.Source,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
}

// Platform is one image of the index: its OS/architecture and binaries
// (name → path on this machine).
type Platform struct {
	OS, Arch string
	Binaries map[string]string
}

// Index builds the image of every platform and the index over them, in
// the order given.
func Index(md Metadata, platforms []Platform) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := Image(md, p)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: p.OS, Architecture: p.Arch},
			},
		})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, md.labels()).(v1.ImageIndex), nil
}

// Image builds the image of one platform.
func Image(md Metadata, p Platform) (v1.Image, error) {
	layer, err := RootFS(md.Created, p.Binaries)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: md.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Created:      created,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", UID, GID),
			Entrypoint: []string{Entrypoint},
			Env:        []string{"PATH=" + BinDir, "HOME=/home/nonroot"},
			WorkingDir: "/",
			Labels:     md.labels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "tools/cmd/release (leadership " + md.Version + ")",
			Comment:   "static binaries, passwd and group for nonroot 65532",
		},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, md.labels()).(v1.Image), nil
}

// entry is one file of the root file system.
type entry struct {
	hdr  tar.Header
	data []byte
	path string // file on this machine to copy, instead of data
}

// RootFS is the single layer: the binaries under BinDir and what a
// non-root process expects to find (passwd, group, a home, /tmp).
func RootFS(mtime time.Time, binaries map[string]string) (v1.Layer, error) {
	dir := func(name string, mode int64, uid int) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}}
	}
	file := func(name, content string) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}, data: []byte(content)}
	}
	entries := []entry{
		dir("etc", 0o755, 0),
		file("etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)),
		file("etc/group", fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)),
		// Go's resolver reads it: /etc/hosts first, then DNS.
		file("etc/nsswitch.conf", "hosts: files dns\n"),
		dir("home", 0o755, 0),
		dir("home/nonroot", 0o700, UID),
		dir("tmp", 0o1777, 0),
		dir("usr", 0o755, 0),
		dir("usr/local", 0o755, 0),
		dir("usr/local/bin", 0o755, 0),
	}
	for name, path := range binaries {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{
			hdr:  tar.Header{Typeflag: tar.TypeReg, Name: BinDir[1:] + "/" + name, Mode: 0o755, Size: fi.Size()},
			path: path,
		})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = mtime.UTC().Truncate(time.Second)
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		switch {
		case e.path != "":
			f, err := os.Open(e.path)
			if err != nil {
				return nil, err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
			if n != h.Size {
				return nil, fmt.Errorf("%s changed while being read", e.path)
			}
		case e.data != nil:
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
