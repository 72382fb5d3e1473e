// Package restartflags is the command-line wiring of
// leadership.Config.Restart, shared by every command that campaigns
// (leadership run and serve, leadership-credentials), whether it parses its
// flags with the standard flag package or with pflag.
package restartflags

import (
	"os"
	"time"

	"github.com/leadership-dev/leadership"
)

// Environment variables that give the flags their defaults, as the Helm
// chart sets them: the emptyDir's mount path, and the pod's UID from the
// Downward API.
const (
	DirEnv    = "LEADERSHIP_RESTART_PROOF_DIR"
	PodUIDEnv = "POD_UID"
)

// FlagSet is what flag.FlagSet and pflag.FlagSet share.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}

// Flags are the values of the flags.
type Flags struct {
	Dir     string
	PodUID  string
	MinTerm time.Duration
	Delay   time.Duration
}

// Register defines --restart-proof-dir, --pod-uid, --restart-min-term and
// --restart-delay on fs.
func (f *Flags) Register(fs FlagSet) {
	fs.StringVar(&f.Dir, "restart-proof-dir", os.Getenv(DirEnv),
		"directory that survives a container restart and belongs to this pod (an emptyDir), for the lock file that lets a leader restarted in place take over at once when the kernel proves its previous process dead; empty: off (env "+DirEnv+")")
	fs.StringVar(&f.PodUID, "pod-uid", os.Getenv(PodUIDEnv),
		"this pod's UID (Downward API metadata.uid), required with --restart-proof-dir (env "+PodUIDEnv+")")
	fs.DurationVar(&f.MinTerm, "restart-min-term", leadership.DefaultRestartMinTerm,
		"a term shorter than this that ends in a crash is a quick crash, after which the restarted process waits like any follower")
	fs.DurationVar(&f.Delay, "restart-delay", 0,
		"least wait between proving the previous process dead and leading, for stores that cannot fence (requests of the dead leader still in flight)")
}

// Config is the leadership.RestartProof the flags ask for.
func (f *Flags) Config() leadership.RestartProof {
	return leadership.RestartProof{Dir: f.Dir, PodUID: f.PodUID, MinTerm: f.MinTerm, Delay: f.Delay}
}

// FlagOf names the flag behind a leadership.ConfigError's field, "" if
// none of these.
func FlagOf(field string) string {
	switch field {
	case "Restart.Dir":
		return "restart-proof-dir"
	case "Restart.PodUID":
		return "pod-uid"
	case "Restart.MinTerm":
		return "restart-min-term"
	case "Restart.Delay":
		return "restart-delay"
	}
	return ""
}
