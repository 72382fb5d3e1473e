package task_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
	"github.com/leadership-dev/leadership/task"
)

// newElector builds an elector on the Lease default/maintenance with the
// in-cluster config or ~/.kube/config.
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
	lock, err := kubelease.New(cs.CoordinationV1(), "default", "maintenance")
	if err != nil {
		return nil, err
	}
	return leadership.New(lock, leadership.Config{Identity: leadership.DefaultIdentity()})
}

// A group with a periodic task whose schedule survives failover and an
// event-driven task, run by the elector in every term this replica wins.
func ExampleNewGroup() {
	e, err := newElector()
	if err != nil {
		slog.Error("setup", "error", err)
		return
	}
	renew := task.Periodic{
		Name:     "renew-certificates",
		Interval: 10 * time.Minute,
		Jitter:   0.1,
		Persist:  true, // a new leader renews at once only if 10 minutes have passed
		Run: func(ctx context.Context, t leadership.Term) error {
			fmt.Println("renewing with fencing token", t.Token)
			return nil
		},
	}
	cleanup := task.Events[string]{
		Name: "cleanup",
		Watch: func(ctx context.Context) (<-chan string, error) {
			ch := make(chan string)
			// Start a watch here; send the name of each object that
			// changes until ctx is done.
			return ch, nil
		},
		Sweep: func(ctx context.Context, t leadership.Term) ([]string, error) {
			return []string{"every", "object", "and", "every", "leftover"}, nil
		},
		Handle: func(ctx context.Context, t leadership.Term, name string) error {
			fmt.Println("reconciling", name)
			return nil
		},
		SweepInterval: 5 * time.Minute,
	}
	g, err := task.NewGroup(task.Config{Proclaimer: e}, renew, cleanup)
	if err != nil {
		slog.Error("tasks", "error", err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_ = e.Run(ctx, g.Lead)
}

// NewGroup says what is wrong with a task before anything runs.
func ExampleNewGroup_invalid() {
	_, err := task.NewGroup(task.Config{}, task.Periodic{
		Name:     "nightly-sweep",
		Interval: 24 * time.Hour,
		Persist:  true,
		Run:      func(context.Context, leadership.Term) error { return nil },
	})
	fmt.Println(err)
	// Output:
	// task: periodic task "nightly-sweep": Persist true: needs Config.Proclaimer (normally the Elector) to keep the last run with the lock
}

// Work that must come first in every term (here: raising a store's fencing
// token) runs before the group, in the same LeadFunc.
func ExampleGroup_Lead() {
	e, err := newElector()
	if err != nil {
		return
	}
	g, err := task.NewGroup(task.Config{Proclaimer: e}, task.Periodic{
		Name:     "renew",
		Interval: time.Minute,
		Run:      func(context.Context, leadership.Term) error { return nil },
	})
	if err != nil {
		return
	}
	claim := func(ctx context.Context, token uint64) error { return nil } // e.g. UPDATE fence SET token = $1
	_ = e.Run(context.Background(), func(ctx context.Context, t leadership.Term) error {
		if err := claim(ctx, t.Token); err != nil {
			return err // step down: the store has seen a later term
		}
		return g.Lead(ctx, t)
	})
}

// A nightly task: at most once a day whoever leads, with the last run kept
// on the Lease, fenced by the term.
func ExamplePeriodic() {
	e, err := newElector()
	if err != nil {
		return
	}
	nightly := task.Periodic{
		Name:     "nightly-report",
		Interval: 24 * time.Hour,
		Timeout:  time.Hour, // also capped by what is left of the term
		Retry:    10 * time.Minute,
		Persist:  true,
		Run: func(ctx context.Context, t leadership.Term) error {
			deadline, _ := ctx.Deadline()
			fmt.Println("reporting until", deadline)
			return nil
		},
	}
	g, err := task.NewGroup(task.Config{Proclaimer: e}, nightly)
	if err != nil {
		return
	}
	_ = e.Run(context.Background(), g.Lead)
}

// An event-driven task keyed by a struct: Handle gets the key, looks at
// the current state, and makes the world agree.
func ExampleEvents() {
	type key struct{ Namespace, Name string }
	ev := task.Events[key]{
		Name: "reconcile",
		Sweep: func(ctx context.Context, t leadership.Term) ([]key, error) {
			return []key{{"default", "a"}, {"default", "b"}}, nil
		},
		Handle: func(ctx context.Context, t leadership.Term, k key) error {
			return nil
		},
		Retry: 500 * time.Millisecond, // then 1s, 2s, ... up to 32s
	}
	_, err := task.NewGroup(task.Config{}, ev)
	fmt.Println(err)
	// Output: <nil>
}

func ExampleLastRunKey() {
	// On a Kubernetes Lease: annotation values.leadership.dev/renew.last-run.
	fmt.Println(task.LastRunKey("renew"))
	// Output: renew.last-run
}
