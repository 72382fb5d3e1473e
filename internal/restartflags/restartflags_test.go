package restartflags

import (
	"flag"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/leadership-dev/leadership"
)

func TestRegisterOnBothFlagPackages(t *testing.T) {
	t.Setenv(DirEnv, "/from/env")
	t.Setenv(PodUIDEnv, "uid-env")
	var a Flags
	fs := flag.NewFlagSet("std", flag.ContinueOnError)
	a.Register(fs)
	if err := fs.Parse([]string{"-restart-delay", "2s"}); err != nil {
		t.Fatal(err)
	}
	want := leadership.RestartProof{Dir: "/from/env", PodUID: "uid-env", MinTerm: leadership.DefaultRestartMinTerm, Delay: 2 * time.Second}
	if got := a.Config(); got != want {
		t.Fatalf("flag: %+v, want %+v", got, want)
	}
	var b Flags
	ps := pflag.NewFlagSet("p", pflag.ContinueOnError)
	b.Register(ps)
	if err := ps.Parse([]string{"--restart-proof-dir", "/d", "--pod-uid", "u", "--restart-min-term", "1m"}); err != nil {
		t.Fatal(err)
	}
	want = leadership.RestartProof{Dir: "/d", PodUID: "u", MinTerm: time.Minute}
	if got := b.Config(); got != want {
		t.Fatalf("pflag: %+v, want %+v", got, want)
	}
	for field, name := range map[string]string{"Restart.Dir": "restart-proof-dir", "Restart.PodUID": "pod-uid", "Restart.MinTerm": "restart-min-term", "Restart.Delay": "restart-delay", "LeaseDuration": ""} {
		if got := FlagOf(field); got != name {
			t.Errorf("FlagOf(%q) = %q, want %q", field, got, name)
		}
	}
}
