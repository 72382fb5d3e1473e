package leadership_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
)

// newElector builds an elector on the Lease default/credential-renewer with
// the in-cluster config or ~/.kube/config.
func newElector() (*leadership.Elector, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lock, err := kubelease.New(cs.CoordinationV1(), "default", "credential-renewer")
	if err != nil {
		return nil, err
	}
	return leadership.New(lock, leadership.Config{Identity: leadership.DefaultIdentity()})
}

// The leader renews a credential every minute, passing the term's fencing
// token to the store so that a stale leader's write is refused.
func ExampleElector_Run() {
	e, err := newElector()
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			fmt.Printf("renewing credentials with fencing token %d (%v of validity left)\n", t.Token, t.Remaining())
			select {
			case <-ctx.Done():
				// Return promptly: the lock is released only after this.
				return nil
			case <-tick.C:
			}
		}
	})
	if err != nil {
		slog.Error("elector", "error", err)
	}
}

func ExampleNew() {
	lock, err := kubelease.New(nil, "default", "sweeper")
	fmt.Println(lock, err)
	_, err = leadership.New(nil, leadership.Config{Identity: "pod-0"})
	fmt.Println(err)
	// Output:
	// <nil> kubelease: client is nil
	// leadership: invalid Config.Lock <nil>: required
}

func ExampleConfig_Validate() {
	cfg := leadership.Config{Identity: "pod-0", LeaseDuration: 10 * time.Second, RenewInterval: 6 * time.Second}
	err := cfg.Validate()
	var ce *leadership.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Field)
	}
	fmt.Println(err)
	// Output:
	// RenewInterval
	// leadership: invalid Config.RenewInterval 6s: must leave room for at least two renewals inside the leader's validity: 2×RenewInterval must be ≤ LeaseDuration×(1−MaxClockDrift) = 9.9s
}

func ExampleElector_Observe() {
	e, err := newElector()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		_ = e.Run(ctx, func(ctx context.Context, _ leadership.Term) error { <-ctx.Done(); return nil })
	}()
	for l := range e.Observe(ctx) {
		fmt.Printf("leader %q token %d self %v\n", l.Identity, l.Token, l.Self)
	}
}

func ExampleElector_Leader() {
	e, err := newElector()
	if err != nil {
		return
	}
	// The holder as last observed, without a request.
	l := e.Leader()
	fmt.Println(l.Identity, l.Self)
}

// Resign hands leadership to another replica, for example before a
// planned restart.
func ExampleElector_Resign() {
	e, err := newElector()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Resign(ctx); err != nil {
		fmt.Println("resign:", err)
	}
}

// Healthy backs a liveness probe: it fails when the elector is wedged.
func ExampleElector_Healthy() {
	e, err := newElector()
	if err != nil {
		return
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := e.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

func ExampleDefaultIdentity() {
	// On Kubernetes the host name is the pod name: "web-7d9f-x2x4z-1a2b3c4d".
	// Two calls never return the same identity.
	a, b := leadership.DefaultIdentity(), leadership.DefaultIdentity()
	fmt.Println(a != b)
	// Output: true
}

func ExampleTerm_Remaining() {
	var t leadership.Term // a zero Term is not valid
	fmt.Println(t.Remaining())
	// Output: 0s
}

// A nightly sweep whose schedule survives failover: the last run is kept
// with the lock, and only the current term can move it.
func ExampleElector_Proclaim() {
	e, err := newElector()
	if err != nil {
		return
	}
	_ = e.Run(context.Background(), func(ctx context.Context, t leadership.Term) error {
		last, _ := time.Parse(time.RFC3339, t.Values["sweep-last-run"])
		if time.Since(last) >= 24*time.Hour {
			// sweep(ctx, t.Token) ...
			now := time.Now().UTC().Format(time.RFC3339)
			if err := e.Proclaim(ctx, t, map[string]string{"sweep-last-run": now}); err != nil {
				return err // the term ended: a successor will run it
			}
		}
		<-ctx.Done()
		return nil
	})
}

// A status endpoint reports how long this replica's term stays valid.
func ExampleElector_Term() {
	e, err := newElector()
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /term", func(w http.ResponseWriter, r *http.Request) {
		if t, ok := e.Term(); ok {
			fmt.Fprintf(w, "leading with token %d, valid for %v\n", t.Token, t.Remaining())
			return
		}
		fmt.Fprintln(w, "not leading")
	})
	_ = http.ListenAndServe("127.0.0.1:8080", mux)
}

// A replica whose container crashes and is restarted in the same pod takes
// the Lease back at once when the kernel proves its previous process dead.
// The identity must be stable (the pod name), the directory an emptyDir,
// and the pod UID come from the Downward API. Every process the work starts
// inherits the term's lock file, so that the proof covers it too.
func ExampleRestartProof() {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	lock, err := kubelease.New(cs.CoordinationV1(), "default", "db-migrator")
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	e, err := leadership.New(lock, leadership.Config{
		Identity: os.Getenv("POD_NAME"),
		Restart: leadership.RestartProof{
			Dir:    "/var/run/leadership", // an emptyDir volume
			PodUID: os.Getenv("POD_UID"),
		},
	})
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	_ = e.Run(context.Background(), func(ctx context.Context, t leadership.Term) error {
		cmd := exec.CommandContext(ctx, "./migrate", "--token", fmt.Sprint(t.Token))
		if f := t.RestartLock(); f != nil {
			cmd.ExtraFiles = []*os.File{f} // descriptor 3 of the child
		}
		return cmd.Run()
	})
}

func ExamplePingTarget() {
	// The probe `leadership handover --to renewer-5d8f-2a91c3e0` writes on
	// the Lease, which the replica of that identity answers.
	id, ok := leadership.PingTarget("renewer-5d8f-2a91c3e0/9c1f6a0e2b7d4e35")
	fmt.Println(id, ok)
	// Output: renewer-5d8f-2a91c3e0 true
}

func ExamplePingAnswerer() {
	// kubelease's Lock answers probes; an Elector on it does so by itself.
	var lock leadership.Lock = &kubelease.Lock{}
	_, ok := lock.(leadership.PingAnswerer)
	fmt.Println(ok)
	// Output: true
}
