package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/leadership-dev/leadership"
)

func newServeCmd(g *globalFlags, stdout, stderr io.Writer) *cobra.Command {
	f := &electorFlags{}
	var readyWhenLeader bool
	cmd := &cobra.Command{
		Use:   "serve --lease NAME [--http-addr :4040]",
		Short: "Campaign for a Lease and tell the application over HTTP (a sidecar)",
		Long: `Campaign for the Lease on behalf of an application in the same pod, and answer
over HTTP:

  GET /leader   {"name": holder, "self": this replica's identity, "leader": bool, "token": n}
                token is the holder's fencing token (0 until the holder publishes it,
                within one renew interval of its acquisition)
  GET /healthz  200 unless the elector is wedged (for a liveness probe)
  GET /readyz   200 when healthy and the last API request succeeded; with
                --ready-when-leader, only on the leader (to route a Service to it)
  GET /metrics  Prometheus metrics (leadership_*)

The application polls /leader and acts as leader only while "leader" is true.
Unlike 'leadership run', serve cannot stop the application's work when the term
ends: the application must check /leader often enough and pass the token to
the stores it writes to. Prefer 'leadership run' where the work can be a
separate process.

SIGTERM or SIGINT: release the Lease and exit 0.

` + exitCodesHelp,
		Example: `  leadership serve --lease credential-renewer
  curl -s localhost:4040/leader   # {"name":"pod-a-1f2e3d4c","self":"pod-b-77aa0e12","leader":false,"token":48213}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.httpAddr == "" {
				return usageErrorf("serve needs --http-addr: it is how the application asks who leads")
			}
			c, err := newCampaign(g, f, leadership.Hooks{})
			if err != nil {
				return err
			}
			defer c.close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			httpDone, err := c.serveHTTP(ctx, f.httpAddr, readyWhenLeader)
			if err != nil {
				return err
			}
			c.log.Info("campaigning", "timing", describe(c.cfg))
			_ = c.e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
				<-ctx.Done()
				return nil
			})
			stop()
			return <-httpDone
		},
	}
	f.register(cmd.Flags(), ":4040")
	cmd.Flags().BoolVar(&readyWhenLeader, "ready-when-leader", false, "make /readyz succeed only on the leader")
	return cmd
}
