package version_test

import (
	"fmt"

	"github.com/leadership-dev/leadership/internal/version"
)

func ExampleGet() {
	v := version.Get()
	fmt.Println(v.Version != "", v.GoVersion != "")
	// Output: true true
}
