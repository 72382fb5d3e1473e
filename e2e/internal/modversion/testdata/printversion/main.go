// Command printversion prints the version of client-go built into it, for
// modversion's test (a test binary carries no module list of its own).
package main

import (
	"fmt"

	_ "k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership/e2e/internal/modversion"
)

func main() { fmt.Println(modversion.Of("k8s.io/client-go")) }
