// Command leadership-credentials issues, renews and revokes PostgreSQL login
// credentials for Kubernetes pods, from whichever of its replicas leads: the
// reference workload of the leadership library (package credentials; see
// docs/CREDENTIALS.md).
//
//	leadership-credentials --namespace apps --db 'postgres://creds@db:5432/postgres'
//	leadership-credentials --stats --db ...   # print the store's figures as JSON
//	leadership-credentials version [-o json]  # which build this is (also --version)
//
// Run several replicas with the same --lease; each needs a unique
// --identity (the default, host name plus a random suffix, is). The
// database URL may also come from the usual PG* environment variables.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/examples/credentials"
	"github.com/leadership-dev/leadership/internal/restartflags"
	"github.com/leadership-dev/leadership/internal/version"
	"github.com/leadership-dev/leadership/kubelease"
)

type options struct {
	kubeconfig, namespace, lease, identity string
	leaseDuration, renewInterval           time.Duration
	db                                     string
	ttl, sweepInterval                     time.Duration
	annotation, rolePrefix                 string
	logFormat, logLevel                    string
	stats, version                         bool
	restart                                restartflags.Flags
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		return printVersion(args[1:], stdout, stderr)
	}
	var o options
	fs := flag.NewFlagSet("leadership-credentials", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&o.namespace, "namespace", "", "namespace of the pods, their Secrets and the Lease (default: the kubeconfig's, or $POD_NAMESPACE)")
	fs.StringVar(&o.lease, "lease", "leadership-credentials", "name of the Lease the replicas compete for")
	fs.StringVar(&o.identity, "identity", "", "this replica's identity, unique among replicas (default: host name + random suffix)")
	fs.DurationVar(&o.leaseDuration, "lease-duration", leadership.DefaultLeaseDuration, "how long a crashed leader goes unreplaced (whole seconds)")
	fs.DurationVar(&o.renewInterval, "renew-interval", 0, "how often the leader renews the Lease (default lease-duration/3)")
	o.restart.Register(fs)
	fs.StringVar(&o.db, "db", "", "PostgreSQL connection URL or DSN (default: the PG* environment variables)")
	fs.DurationVar(&o.ttl, "ttl", credentials.DefaultTTL, "validity of a credential; renewed every ttl/3; at least 3×lease-duration")
	fs.DurationVar(&o.sweepInterval, "sweep-interval", credentials.DefaultSweepInterval, "how often to sweep for orphaned credentials, besides at every acquisition")
	fs.StringVar(&o.annotation, "annotation", credentials.DefaultAnnotation, "pod annotation that asks for a credential; its value is the base role")
	fs.StringVar(&o.rolePrefix, "role-prefix", credentials.DefaultRolePrefix, "prefix of the login roles' names")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.stats, "stats", false, "print the store's figures (renewals, revocations, refusals, smallest remaining validity) as JSON and exit")
	fs.BoolVar(&o.version, "version", false, "print the version, commit, commit date and Go version, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "leadership-credentials %s\n", version.Get())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "leadership-credentials: unexpected argument %q (all settings are flags; see -h)\n", fs.Arg(0))
		return 2
	}
	log, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "leadership-credentials: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.stats {
		return printStats(ctx, o, stdout, stderr)
	}
	if err := serve(ctx, o, log); err != nil {
		log.Error("stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func openDB(ctx context.Context, o options, identity string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(o.db)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	// The log of changes names each change's replica by it.
	cfg.ConnConfig.RuntimeParams["application_name"] = identity
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return pool, nil
}

func serve(ctx context.Context, o options, log *slog.Logger) error {
	if o.ttl < 3*o.leaseDuration {
		return fmt.Errorf("--ttl %v must be at least 3×--lease-duration (%v): credentials are renewed every ttl/3, and a failover may take a lease duration and more", o.ttl, 3*o.leaseDuration)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	kc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil)
	rc, err := kc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	ns := o.namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if ns, _, err = kc.Namespace(); err != nil {
			return fmt.Errorf("kubeconfig namespace: %w (or pass --namespace)", err)
		}
	}
	id := o.identity
	if id == "" {
		if o.restart.Dir != "" {
			return errors.New("--restart-proof-dir needs a stable --identity, the same after a restart of the container: the pod name ($(POD_NAME) in a pod spec); the default adds a random suffix per process")
		}
		id = leadership.DefaultIdentity()
	}
	log = log.With("identity", id)
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	lock, err := kubelease.New(cs.CoordinationV1(), ns, o.lease)
	if err != nil {
		return err
	}
	e, err := leadership.New(lock, leadership.Config{
		Identity:      id,
		LeaseDuration: o.leaseDuration,
		RenewInterval: o.renewInterval,
		Restart:       o.restart.Config(),
		Logger:        log,
	})
	var ce *leadership.ConfigError
	if errors.As(err, &ce) {
		if name := restartflags.FlagOf(ce.Field); name != "" {
			return fmt.Errorf("invalid --%s %v: %s", name, ce.Value, ce.Rule)
		}
	}
	if err != nil {
		return err
	}
	db, err := openDB(ctx, o, id)
	if err != nil {
		return err
	}
	defer db.Close()
	w, err := credentials.New(cs, db, credentials.Config{
		Namespace:     ns,
		Annotation:    o.annotation,
		TTL:           o.ttl,
		SweepInterval: o.sweepInterval,
		RolePrefix:    o.rolePrefix,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	if err := setup(ctx, w, log); err != nil {
		return err
	}
	log.Info("started", "namespace", ns, "lease", o.lease, "ttl", o.ttl)
	return w.Run(ctx, e)
}

// setup retries until the database answers: a replica may start before it.
func setup(ctx context.Context, w *credentials.Workload, log *slog.Logger) error {
	for {
		err := w.Setup(ctx)
		if err == nil {
			return nil
		}
		log.Warn("database setup failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func printStats(ctx context.Context, o options, stdout, stderr io.Writer) int {
	db, err := openDB(ctx, o, "leadership-credentials-stats")
	if err != nil {
		fmt.Fprintf(stderr, "leadership-credentials: %v\n", err)
		return 1
	}
	defer db.Close()
	st, err := credentials.NewStore(db, nil).Stats(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "leadership-credentials: %v\n", err)
		return 1
	}
	out := map[string]any{
		"claims": st.Claims, "issued": st.Issued, "rotated": st.Rotated, "renewed": st.Renewed, "revoked": st.Revoked,
		"refused": st.Refused, "highestToken": st.HighestToken, "live": st.Live, "minValidity": st.MinValidity.String(),
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return 1
	}
	return 0
}

// printVersion is the version subcommand: text, or JSON with -o json.
func printVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("leadership-credentials version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("o", "text", "output format: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	v := version.Get()
	switch *output {
	case "text":
		fmt.Fprintf(stdout, "Version:    %s\nCommit:     %s\nDate:       %s\nGo version: %s\nPlatform:   %s\n", v.Version, v.Commit, v.Date, v.GoVersion, v.Platform)
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return 1
		}
	default:
		fmt.Fprintf(stderr, "leadership-credentials: invalid -o %q: use text or json\n", *output)
		return 2
	}
	return 0
}
