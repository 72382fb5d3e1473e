package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/podlabel"
)

// labelPodFlags are run's and serve's --label-pod and the Pod it labels.
type labelPodFlags struct {
	labelPod     bool
	podName      string
	podNamespace string
}

func (f *labelPodFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.labelPod, "label-pod", false, "while this replica leads, label its Pod "+podlabel.Prefix+"<lease>=true (advisory, for a Service to select the leader); needs get, list and patch on pods")
	fs.StringVar(&f.podName, "pod-name", "", "this replica's Pod, for --label-pod (default: $POD_NAME, from the Downward API)")
	fs.StringVar(&f.podNamespace, "pod-namespace", "", "this replica's Pod's namespace, for --label-pod (default: $POD_NAMESPACE, else the in-cluster ServiceAccount's namespace)")
}

// labeler starts the Pod labeller of --label-pod (nil without it) and
// checks that the Pod can be read.
func (f *labelPodFlags) labeler(k *kube, lease string, cfg leadership.Config) (*podlabel.Labeler, error) {
	if !f.labelPod {
		if f.podName != "" || f.podNamespace != "" {
			return nil, usageErrorf("--pod-name and --pod-namespace only go with --label-pod")
		}
		return nil, nil
	}
	name := f.podName
	if name == "" {
		name = os.Getenv("POD_NAME")
	}
	if name == "" {
		return nil, usageErrorf("--label-pod needs this replica's Pod name: set POD_NAME from the Downward API (env valueFrom fieldRef fieldPath metadata.name) or pass --pod-name")
	}
	ns := f.podNamespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if b, err := os.ReadFile(inClusterNamespaceFile); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" {
		return nil, usageErrorf("--label-pod needs this replica's Pod namespace: set POD_NAMESPACE from the Downward API (fieldRef metadata.namespace) or pass --pod-namespace")
	}
	l, err := podlabel.New(podlabel.Options{
		Client: k.client, Namespace: ns, Pod: name, Lease: lease,
		Resync: cfg.LeaseDuration, RetryPeriod: cfg.RetryPeriod, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, usageErrorf("--label-pod: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := l.Check(ctx); err != nil {
		l.Close(ctx)
		switch {
		case apierrors.IsForbidden(err):
			return nil, withCode(exitForbidden, fmt.Errorf("--label-pod: %w", err))
		case apierrors.IsNotFound(err):
			return nil, withCode(exitUsage, fmt.Errorf("--label-pod: %w", err))
		}
		return nil, withCode(exitFailure, fmt.Errorf("--label-pod: %w", err))
	}
	return l, nil
}
