package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/leadership-dev/leadership/internal/watchdog"
)

// newWatchdogCmd is the watchdog process that `run` starts for each child:
// `leadership internal-watchdog [--cgroup DIR] [--restart-lock-fd N] -- CMD
// [ARGS...]`, reading
// its orders on stdin and reporting on file descriptor 3. It runs CMD.
func newWatchdogCmd(g *globalFlags) *cobra.Command {
	var cgroup string
	var restartLockFD int
	cmd := &cobra.Command{
		Use:    "internal-watchdog [--cgroup DIR] -- CMD [ARGS...]",
		Short:  "The watchdog process of 'leadership run' (not for direct use)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only its pipe ends it: a signal meant for the supervisor (a
			// stray kill, a terminal's hangup) must not unguard the child.
			// Caught rather than ignored: an ignored signal would stay
			// ignored in the command, which must get its SIGTERM.
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
			go func() {
				for range sigs {
				}
			}()
			// The report pipe must not leak into the command.
			unix.CloseOnExec(3)
			reports := os.NewFile(3, "reports")
			spec := watchdog.Spec{Command: args, Cgroup: cgroup, Stdout: os.Stdout, Stderr: os.Stderr}
			if restartLockFD > 0 {
				// The term's restart lock file: held until this process
				// exits, after the tree is gone, and passed to the command
				// as descriptor 3.
				unix.CloseOnExec(restartLockFD)
				spec.Inherit = []*os.File{os.NewFile(uintptr(restartLockFD), "restart-lock")}
			}
			return withCode(exitFailure, watchdog.Serve(cmd.Context(), os.Stdin, reports, spec, g.log.With("component", "watchdog")))
		},
	}
	cmd.Flags().StringVar(&cgroup, "cgroup", "", "cgroup v2 directory to start CMD in")
	cmd.Flags().IntVar(&restartLockFD, "restart-lock-fd", 0, "inherited descriptor of the term's restart lock file, passed to CMD as descriptor 3")
	return cmd
}
