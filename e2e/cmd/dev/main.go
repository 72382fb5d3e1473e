// Command dev runs the local control plane (an embedded etcd and a real
// kube-apiserver, in this process) until interrupted, and writes a
// kubeconfig for it, so that `leadership run`, `status` and `handover` can be
// tried by hand in several terminals:
//
//	go -C e2e run ./cmd/dev -kubeconfig /tmp/leadership.kubeconfig
//
// It lives in the e2e module because only that module may require
// k8s.io/kubernetes; the leadership command itself never does.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

func main() {
	fs := flag.NewFlagSet("dev", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "write the admin kubeconfig to this file (required)")
	rbac := fs.Bool("rbac", false, "start the API server with --authorization-mode=RBAC (the admin kubeconfig keeps full rights)")
	verbose := fs.Bool("verbose", false, "show the API server's own logs")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go -C e2e run ./cmd/dev -kubeconfig FILE [-rbac] [-verbose]\n\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if *kubeconfig == "" || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	if err := run(*kubeconfig, *rbac, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string, rbac, verbose bool) error {
	path, err := filepath.Abs(kubeconfig)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := controlplane.Options{
		Verbose: verbose,
		Logf:    func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	if rbac {
		opts.ExtraAPIServerFlags = []string{"--authorization-mode=RBAC"}
	}
	fmt.Fprintln(os.Stderr, "starting a local control plane (embedded etcd + kube-apiserver)…")
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	cp, err := controlplane.Start(startCtx, opts)
	cancel()
	if err != nil {
		return err
	}
	defer cp.Stop()
	if err := cp.WriteKubeconfig(path); err != nil {
		return err
	}
	defer os.Remove(path)
	fmt.Printf(`
The control plane is up; its kubeconfig is %[1]s (namespace "default").
Build the command and try it in a few terminals:

  go build -o /tmp/leadership ./cmd/leadership      # from the repository root
  export KUBECONFIG=%[1]s
  /tmp/leadership run --lease demo --identity a --lease-duration 4s -- sh -c 'while :; do echo "a leads, token $LEADERSHIP_TOKEN"; sleep 1; done'
  /tmp/leadership run --lease demo --identity b --lease-duration 4s -- sh -c 'while :; do echo "b leads, token $LEADERSHIP_TOKEN"; sleep 1; done'
  /tmp/leadership status --lease demo
  /tmp/leadership handover --lease demo --to b

Press Ctrl-C to stop the control plane (the kubeconfig is removed).
`, path)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping the control plane…")
	return nil
}
