package gobuild_test

import (
	"fmt"

	"github.com/leadership-dev/leadership/tools/release/gobuild"
)

func ExampleParsePlatform() {
	p, err := gobuild.ParsePlatform("linux/arm64")
	fmt.Println(p.OS, p.Arch, err)
	_, err = gobuild.ParsePlatform("arm64")
	fmt.Println(err)
	// Output:
	// linux arm64 <nil>
	// invalid platform "arm64": want OS/ARCH, e.g. linux/amd64
}
