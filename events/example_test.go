package events_test

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/events"
	"github.com/leadership-dev/leadership/kubelease"
)

// Record Events on the Lease as the elector acquires, loses and releases
// it. The replica's ServiceAccount needs "create" on events.k8s.io events.
func ExampleNewRecorder() {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		slog.Error("no Kubernetes config", "error", err)
		return
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	id := leadership.DefaultIdentity()
	rec := events.NewRecorder(cs, "payments", "credential-renewer", id, nil)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rec.Close(ctx) // flush the last events (Released) before exiting
	}()
	lock, _ := kubelease.New(cs.CoordinationV1(), "payments", "credential-renewer")
	e, err := leadership.New(lock, leadership.Config{Identity: id, Hooks: rec.Hooks()})
	if err != nil {
		slog.Error("config", "error", err)
		return
	}
	_ = e // e.Run(ctx, lead)
}

// Emit records an event of your own on the Lease.
func ExampleRecorder_Emit() {
	var cs kubernetes.Interface // from your rest.Config
	rec := events.NewRecorder(cs, "payments", "credential-renewer", "ops-cli", nil)
	rec.Emit("Normal", events.ReasonRequested, "RequestHandover", "ops-cli asked the holder to hand over")
	rec.Close(context.Background())
}

// Hooks are usually joined with other hooks, such as metrics'.
func ExampleRecorder_Hooks() {
	var cs kubernetes.Interface // from your rest.Config
	rec := events.NewRecorder(cs, "payments", "credential-renewer", "renewer-1", nil)
	cfg := leadership.Config{Identity: "renewer-1", Hooks: rec.Hooks()}
	_ = cfg
}

// Close flushes what is queued, within the context's deadline.
func ExampleRecorder_Close() {
	var cs kubernetes.Interface // from your rest.Config
	rec := events.NewRecorder(cs, "payments", "credential-renewer", "renewer-1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec.Close(ctx)
}
