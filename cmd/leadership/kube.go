package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// inClusterNamespaceFile holds the pod's namespace in a cluster.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// globalFlags are the flags every command shares.
type globalFlags struct {
	kubeconfig string
	context    string
	namespace  string
	logFormat  string
	logLevel   string

	log *slog.Logger
}

func (g *globalFlags) register(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster ServiceAccount)")
	f.StringVar(&g.context, "context", "", "kubeconfig context to use (default: its current context)")
	f.StringVarP(&g.namespace, "namespace", "n", "", "namespace of the Lease (default: see 'leadership --help')")
	f.StringVar(&g.logFormat, "log-format", "text", "log format on stderr: text or json")
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func (g *globalFlags) setupLogging(stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usageErrorf("invalid --log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		return usageErrorf("invalid --log-format %q: use text or json", g.logFormat)
	}
	// client-go logs through klog (warnings from the API server, failed
	// watches, throttling); without this its lines would come in klog's own
	// format on the same stderr and break a JSON log stream. klog's logger is
	// process-wide; the command sets it once, at start.
	klog.SetSlogLogger(g.log)
	return nil
}

// kube is a connection to the cluster.
type kube struct {
	config    *rest.Config
	client    kubernetes.Interface
	namespace string
	// where says which cluster, for messages.
	where string
}

// connect loads the client configuration and resolves the namespace; wrap,
// if not nil, instruments the transport (metrics, API health) knowing the
// namespace.
func (g *globalFlags) connect(wrap func(namespace string, cfg *rest.Config) error) (*kube, error) {
	if g.namespace != "" {
		if errs := validation.IsDNS1123Label(g.namespace); len(errs) > 0 {
			return nil, usageErrorf("invalid namespace %q: %s", g.namespace, strings.Join(errs, "; "))
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if g.kubeconfig != "" {
		if _, err := os.Stat(g.kubeconfig); err != nil {
			return nil, usageErrorf("cannot read --kubeconfig %q: %v", g.kubeconfig, err)
		}
		rules.ExplicitPath = g.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: g.context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, withCode(exitFailure, errors.New("no Kubernetes configuration found: pass --kubeconfig FILE, set $KUBECONFIG, or run inside a cluster with a ServiceAccount"))
		}
		return nil, withCode(exitFailure, fmt.Errorf("cannot load the Kubernetes configuration: %w", err))
	}
	ns, err := g.resolveNamespace(cc)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "leadership/" + rest.DefaultKubernetesUserAgent()
	// Election traffic is a handful of requests per renew interval; the
	// client-side limiter must never delay a renewal.
	cfg.QPS, cfg.Burst = 50, 100
	if wrap != nil {
		if err := wrap(ns, cfg); err != nil {
			return nil, err
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, withCode(exitFailure, fmt.Errorf("cannot build a Kubernetes client: %w", err))
	}
	return &kube{config: cfg, client: cs, namespace: ns, where: cfg.Host}, nil
}

// resolveNamespace: --namespace; else an explicit --kubeconfig's context
// namespace; else the pod's namespace in a cluster; else the kubeconfig's
// context namespace; else "default".
func (g *globalFlags) resolveNamespace(cc clientcmd.ClientConfig) (string, error) {
	ns := g.namespace
	if ns == "" {
		fromKubeconfig := ""
		if raw, err := cc.RawConfig(); err == nil {
			name := raw.CurrentContext
			if g.context != "" {
				name = g.context
			}
			if c := raw.Contexts[name]; c != nil {
				fromKubeconfig = c.Namespace
			}
		}
		// In a cluster: POD_NAMESPACE (from the downward API), else the
		// ServiceAccount's namespace file, as client-go reads them.
		inCluster := os.Getenv("POD_NAMESPACE")
		if b, err := os.ReadFile(inClusterNamespaceFile); err == nil && inCluster == "" {
			inCluster = strings.TrimSpace(string(b))
		}
		switch {
		case g.kubeconfig != "" && fromKubeconfig != "":
			ns = fromKubeconfig
		case inCluster != "":
			ns = inCluster
		case fromKubeconfig != "":
			ns = fromKubeconfig
		default:
			ns = metav1.NamespaceDefault
		}
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", usageErrorf("invalid namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return ns, nil
}

func checkLeaseName(name string) error {
	if name == "" {
		return usageErrorf("--lease is required: name the Lease the replicas share, e.g. --lease credential-renewer")
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return usageErrorf("invalid --lease %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// apiError turns an API error of a one-shot command into a message that
// says what to do, with the exit code.
func (k *kube) apiError(verb, what string, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		resource, group := "leases", "coordination.k8s.io"
		if strings.Contains(what, "namespace") {
			resource, group = "namespaces", "core"
		}
		return withCode(exitForbidden, fmt.Errorf("permission denied: may not %s %s: grant the verb %q on resource %s (API group %s) in namespace %q to your user or ServiceAccount: %v",
			verb, what, verb, resource, group, k.namespace, err))
	case apierrors.IsUnauthorized(err):
		return withCode(exitFailure, fmt.Errorf("the API server at %s rejected the credentials (check the kubeconfig or ServiceAccount token): %v", k.where, err))
	case errors.Is(err, context.DeadlineExceeded):
		return withCode(exitFailure, fmt.Errorf("the API server at %s did not answer in time (is it reachable?): %v", k.where, err))
	}
	return withCode(exitFailure, fmt.Errorf("cannot %s %s at %s: %v", verb, what, k.where, err))
}

// leaseNotFound explains a missing Lease: the Lease or its namespace.
func (k *kube) leaseNotFound(ctx context.Context, name string) error {
	_, err := k.client.CoreV1().Namespaces().Get(ctx, k.namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return withCode(exitNotFound, fmt.Errorf("namespace %q does not exist: pass the Lease's namespace with --namespace", k.namespace))
	}
	return withCode(exitNotFound, fmt.Errorf("no Lease %q in namespace %q: check --lease and --namespace ('leadership status --all -n %s' lists the Leases there)", name, k.namespace, k.namespace))
}

// requestTimeout bounds each request of a one-shot command.
const requestTimeout = 15 * time.Second
