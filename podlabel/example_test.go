package podlabel_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
	"github.com/leadership-dev/leadership/podlabel"
)

// Label the leader's Pod, so that a Service selecting
// leadership.dev/leader-credential-renewer=true reaches the leader. The Pod
// learns its name and namespace from the Downward API.
func ExampleNew() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		slog.Error("not in a cluster", "error", err)
		return
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := os.Getenv("POD_NAMESPACE")
	lab, err := podlabel.New(podlabel.Options{Client: cs, Namespace: ns, Pod: os.Getenv("POD_NAME"), Lease: "credential-renewer"})
	if err != nil {
		slog.Error("pod label", "error", err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lab.Close(ctx) // the label off this Pod before exiting
	}()
	lock, _ := kubelease.New(cs.CoordinationV1(), ns, "credential-renewer")
	e, err := leadership.New(lock, leadership.Config{Identity: leadership.DefaultIdentity(), Hooks: lab.Hooks()})
	if err != nil {
		slog.Error("config", "error", err)
		return
	}
	_ = e // e.Run(ctx, lead)
}

// Key is the label a Service selects.
func ExampleKey() {
	key, _ := podlabel.Key("credential-renewer")
	slog.Info("select the leader with", "selector", key+"="+podlabel.Value)
}

// Check reports a wrong Pod name or missing permission at start-up.
func ExampleLabeler_Check() {
	var cs kubernetes.Interface // from your rest.Config
	lab, err := podlabel.New(podlabel.Options{Client: cs, Namespace: "payments", Pod: "renewer-7f9c-b2", Lease: "credential-renewer"})
	if err != nil {
		return
	}
	defer lab.Close(context.Background())
	if err := lab.Check(context.Background()); err != nil {
		slog.Error("cannot label this Pod", "error", err)
	}
}
