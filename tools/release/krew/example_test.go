package krew_test

import (
	"os"

	"github.com/leadership-dev/leadership/tools/release/krew"
)

func ExampleManifest_Write() {
	m := krew.Manifest{
		Version:  "0.2.0",
		Homepage: "https://github.com/leadership-dev/leadership",
		Platforms: []krew.Platform{{
			OS: "linux", Arch: "amd64",
			URI:    "https://github.com/leadership-dev/leadership/releases/download/v0.2.0/leadership_0.2.0_linux_amd64.tar.gz",
			SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		}},
	}
	if err := m.Write(os.Stdout); err != nil {
		panic(err)
	}
}
