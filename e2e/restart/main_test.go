// Package restart tests the fast takeover of a leader that crashed in place
// (leadership.Config.Restart) with real processes — killed with SIGKILL,
// frozen with SIGSTOP, leaving orphans behind — against a real
// kube-apiserver and etcd.
//
// The test binary is also the candidate: started with RESTART_CANDIDATE=1
// it runs one elector (configured from the environment, as a container
// would be) and reports on stdout, one line each, with CLOCK_MONOTONIC
// nanoseconds, which every process of the host shares:
//
//	started MONO          first thing in main
//	leading TOKEN MONO    lead was called
//	grandchild PID        a process that inherited the term's lock file
package restart

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/kubelease"
)

var cp *controlplane.ControlPlane

const candidateEnv = "RESTART_CANDIDATE"

func TestMain(m *testing.M) {
	switch os.Getenv(candidateEnv) {
	case "":
		os.Exit(controlplane.Main(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
	case "grandchild":
		// Inherited the lock file as fd 3; idles until killed (a bare
		// select {} would end it as a deadlock).
		for {
			time.Sleep(time.Hour)
		}
	default:
		started := mono()
		fmt.Printf("started %d\n", started)
		if err := candidate(); err != nil {
			fmt.Fprintln(os.Stderr, "candidate:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// mono reads CLOCK_MONOTONIC, the clock every process of the host shares.
func mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // cannot fail on Linux
	}
	return ts.Nano()
}

func envDuration(name string) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

// candidate runs one elector from the environment: KUBECONFIG, LEASE,
// IDENTITY, LEASE_DURATION, RESTART_DIR, POD_UID, RESTART_MIN_TERM and
// GRANDCHILD=1 (start a process that inherits the term's lock file).
func candidate() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lock, err := kubelease.New(cs.CoordinationV1(), "default", os.Getenv("LEASE"))
	if err != nil {
		return err
	}
	lease, err := envDuration("LEASE_DURATION")
	if err != nil {
		return err
	}
	minTerm, err := envDuration("RESTART_MIN_TERM")
	if err != nil {
		return err
	}
	e, err := leadership.New(lock, leadership.Config{
		Identity:      os.Getenv("IDENTITY"),
		LeaseDuration: lease,
		Restart: leadership.RestartProof{
			Dir:     os.Getenv("RESTART_DIR"),
			PodUID:  os.Getenv("POD_UID"),
			MinTerm: minTerm,
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	return e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
		at := mono()
		if os.Getenv("GRANDCHILD") == "1" {
			// A process the work starts, handed the lock file as the
			// library asks, and left behind: a daemon.
			c := exec.Command(os.Args[0], "-test.run=^$")
			c.Env = append(os.Environ(), candidateEnv+"=grandchild")
			if f := t.RestartLock(); f != nil {
				c.ExtraFiles = []*os.File{f}
			}
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				return err
			}
			fmt.Printf("grandchild %d\n", c.Process.Pid)
		}
		fmt.Printf("leading %s %d\n", strconv.FormatUint(t.Token, 10), at)
		<-ctx.Done()
		return nil
	})
}
