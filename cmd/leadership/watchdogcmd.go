package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/leadership-dev/leadership/internal/watchdog"
)

// newWatchdogCmd is the watchdog process that `run` starts for each child:
// `leadership internal-watchdog`, reading its orders on stdin.
func newWatchdogCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:    "internal-watchdog",
		Short:  "The watchdog process of 'leadership run' (not for direct use)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only its pipe ends it: a signal meant for the supervisor (a
			// stray kill, a terminal's hangup) must not unguard the child.
			signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
			return withCode(exitFailure, watchdog.Serve(cmd.Context(), os.Stdin, g.log.With("component", "watchdog")))
		},
	}
}
