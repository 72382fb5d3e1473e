package image_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/leadership-dev/leadership/tools/release/image"
)

func ExampleIndex() {
	dir, _ := os.MkdirTemp("", "image-example-")
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "leadership")
	_ = os.WriteFile(bin, []byte("not really a binary"), 0o755)

	md := image.Metadata{Version: "0.2.0", Revision: "feedface", Source: "https://github.com/leadership-dev/leadership", Created: time.Unix(1764583200, 0)}
	idx, err := image.Index(md, []image.Platform{
		{OS: "linux", Arch: "amd64", Binaries: map[string]string{"leadership": bin}},
		{OS: "linux", Arch: "arm64", Binaries: map[string]string{"leadership": bin}},
	})
	if err != nil {
		panic(err)
	}
	m, _ := idx.IndexManifest()
	for _, d := range m.Manifests {
		fmt.Println(d.Platform.OS + "/" + d.Platform.Architecture)
	}
	fmt.Println(m.Annotations["org.opencontainers.image.licenses"])
	// Output:
	// linux/amd64
	// linux/arm64
	// Apache-2.0
}
