package restartflags_test

import (
	"flag"
	"fmt"

	"github.com/leadership-dev/leadership/internal/restartflags"
)

// The flags on a standard flag.FlagSet (pflag works alike), turned into
// leadership.Config.Restart.
func ExampleFlags_Register() {
	var f restartflags.Flags
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	f.Register(fs)
	_ = fs.Parse([]string{"-restart-proof-dir", "/var/run/leadership-restart", "-pod-uid", "6f1c0a2e", "-restart-delay", "500ms"})
	r := f.Config()
	fmt.Println(r.Dir, r.PodUID, r.MinTerm, r.Delay)
	// Output: /var/run/leadership-restart 6f1c0a2e 30s 500ms
}
