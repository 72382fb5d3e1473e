// Command leadership runs leader election on a Kubernetes Lease for
// programs in any language, and inspects and steers it.
//
//	leadership run      --lease NAME [flags] -- CMD [ARGS...]   run CMD only while this replica leads
//	leadership serve    --lease NAME [--http-addr :4040]        a sidecar: campaign and tell the app over HTTP
//	leadership status   [--lease NAME | --all] [-o table|json] who holds which Lease
//	leadership handover --lease NAME [--to ID]                 ask the holder to step down
//	leadership version  [-o text|json|yaml]                    which build this is
//	leadership completion bash|zsh|fish|powershell             shell completion script
//
// Installed as kubectl-leadership, it is also the kubectl plugin
// "kubectl leadership" (see plugin.go).
//
// See docs/CLI.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, documented in --help and docs/CLI.md.
const (
	exitOK        = 0
	exitFailure   = 1 // the API server failed or refused, or the command could not do its job
	exitUsage     = 2 // invalid flags or arguments
	exitNotFound  = 3 // the Lease (or its namespace) does not exist
	exitForbidden = 4 // RBAC denied a request
	exitTimeout   = 5 // handover did not happen within --timeout
)

const exitCodesHelp = `Exit codes:
  0  success (run and serve: stopped by SIGTERM or SIGINT)
  1  failure: the API server was unreachable or refused, or the command could not do its job
  2  invalid flags or arguments
  3  the Lease or its namespace does not exist
  4  permission denied (RBAC): the message names the verb and resource to grant
  5  handover: the holder did not change within --timeout
  run --exit-with-child exits with the child's own status (128+N if signal N killed it).`

// exitError carries an exit code with the message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

func main() {
	name, args := invocation(os.Args[0], os.Args[1:])
	os.Exit(executeAs(context.Background(), name, args, os.Stdout, os.Stderr))
}

// execute runs the command line and returns the exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return executeAs(ctx, "leadership", args, stdout, stderr)
}

// executeAs is execute under the name the binary was started as (see
// plugin.go).
func executeAs(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	setDisplayName(root, name)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	code := exitFailure
	if errors.As(err, &ee) {
		code = ee.code
	} else if isFlagError(err) {
		code = exitUsage
	}
	if code == exitChildStatus {
		return ee.err.(childStatus).code
	}
	msg := err.Error()
	if code == exitUsage && cmd != nil {
		msg += fmt.Sprintf("\nRun '%s --help' for usage.", cmd.CommandPath())
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	return code
}

// isFlagError recognises cobra's and pflag's own complaints, which come
// back as plain errors.
func isFlagError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "unknown command", "accepts ", "requires at least", "bad flag syntax", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// exitChildStatus marks run --exit-with-child's exit with the child's own
// status, which is not an error to print.
const exitChildStatus = -1

type childStatus struct{ code int }

func (c childStatus) Error() string { return fmt.Sprintf("child exited with status %d", c.code) }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "leadership",
		Short: "Leader election on a Kubernetes Lease, for programs in any language",
		Long: `leadership elects one leader among replicas that share a Kubernetes Lease, and
runs work only while this replica leads, with a term that ends before any other
replica could take over and a fencing token that strictly increases.

Commands talk to the cluster of --kubeconfig (else $KUBECONFIG, ~/.kube/config,
or the in-cluster ServiceAccount). The namespace is --namespace, else the
kubeconfig context's namespace when --kubeconfig is given, else the pod's own
namespace when running in a cluster, else the kubeconfig context's, else
"default".

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  # run a credential renewer only on the leader among the replicas
  leadership run --lease credential-renewer -- ./renew-credentials

  # who leads?
  leadership status --lease credential-renewer

  # move leadership to another replica gracefully
  leadership handover --lease credential-renewer --to renewer-7f9c-b2`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setupLogging(stderr)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		msg := err.Error()
		if strings.Contains(msg, "time: ") {
			msg += " (durations take a unit, e.g. 500ms, 15s, 2m)"
		}
		return withCode(exitUsage, errors.New(msg))
	})
	g.register(root)
	root.AddCommand(newRunCmd(g, stdout, stderr), newServeCmd(g, stdout, stderr),
		newStatusCmd(g, stdout), newHandoverCmd(g, stdout), newWatchdogCmd(g), newCopyToCmd(stdout))
	addReleaseCommands(root, stdout)
	return root
}
