// Package credentials is the reference workload for leader election: it
// issues, renews and revokes PostgreSQL login credentials for Kubernetes
// pods, from whichever replica leads.
//
// A pod annotated leadership.dev/db-role: <base-role> gets a login role
// (RoleName, from its UID), member of the base role, with a random password
// and VALID UNTIL now + TTL, stored in a Secret (SecretName) owned by the
// pod. Every TTL/3 the leader extends VALID UNTIL for the role of every live
// pod. When the pod is deleted, the leader sets the role NOLOGIN, terminates
// its sessions, drops it and deletes the Secret; a sweep at every
// acquisition and every SweepInterval revokes orphans that no event
// reported.
//
// Every change to the database runs in one transaction that first locks the
// fence row, compares the term's fencing token with the highest seen and
// raises it, and is refused when the token is lower; Secrets carry the token
// that wrote them and are only replaced with a compare-and-swap by a term at
// least as recent. See docs/CREDENTIALS.md.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/task"
)

// DefaultAnnotation marks a pod that wants a credential; its value names the
// base role the pod's login role is a member of.
const DefaultAnnotation = "leadership.dev/db-role"

// Defaults for Config fields left at their zero value.
const (
	DefaultTTL           = time.Hour
	DefaultSweepInterval = 5 * time.Minute
	DefaultRolePrefix    = "pod_"
)

// Config sets up a Workload. The zero value of every field but Namespace
// selects a default.
type Config struct {
	// Namespace whose pods get credentials, and where their Secrets live.
	Namespace string
	// Annotation that marks a pod; DefaultAnnotation if empty.
	Annotation string
	// TTL is how long a credential stays valid without renewal; renewal runs
	// every TTL/3, so a credential survives two missed renewals. It must
	// be well above the time a failover takes (the lease duration plus a
	// renew interval or so). Default 1h; at least 3s.
	TTL time.Duration
	// SweepInterval adds a sweep for orphans this often, besides the one at
	// every acquisition. Default 5m.
	SweepInterval time.Duration
	// RolePrefix begins every role name (RoleName): lower-case letters,
	// digits and '_', at most 31 characters. Default "pod_".
	RolePrefix string
	// Logger receives the workload's logs. nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Annotation == "" {
		c.Annotation = DefaultAnnotation
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.RolePrefix == "" {
		c.RolePrefix = DefaultRolePrefix
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Namespace == "":
		return errors.New("credentials: Config.Namespace is required: the namespace whose pods get credentials")
	case len(validation.IsDNS1123Label(c.Namespace)) > 0:
		return fmt.Errorf("credentials: Config.Namespace %q is not a namespace name: %v", c.Namespace, validation.IsDNS1123Label(c.Namespace))
	case len(validation.IsQualifiedName(c.Annotation)) > 0:
		return fmt.Errorf("credentials: Config.Annotation %q is not an annotation name: %v", c.Annotation, validation.IsQualifiedName(c.Annotation))
	case c.TTL < 3*time.Second:
		return fmt.Errorf("credentials: Config.TTL %v must be at least 3s: renewal runs every TTL/3", c.TTL)
	case c.SweepInterval < 0:
		return fmt.Errorf("credentials: Config.SweepInterval %v must not be negative", c.SweepInterval)
	case !rolePrefixPattern.MatchString(c.RolePrefix):
		return fmt.Errorf("credentials: Config.RolePrefix %q must be lower-case letters, digits and '_', not starting with a digit, at most 31 characters", c.RolePrefix)
	}
	return nil
}

// Workload issues, renews and revokes credentials while its replica leads.
type Workload struct {
	cfg   Config
	kube  kubernetes.Interface
	store *Store
	log   *slog.Logger
}

// New returns a Workload for the pods of cfg.Namespace, with kube to read
// pods and write Secrets and db to manage roles. db's user needs CREATEROLE,
// membership with ADMIN OPTION in the base roles, and pg_signal_backend to
// terminate sessions (or is a superuser).
func New(kube kubernetes.Interface, db *pgxpool.Pool, cfg Config) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kube == nil || db == nil {
		return nil, errors.New("credentials: New needs a Kubernetes client and a database pool")
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("namespace", cfg.Namespace)
	return &Workload{cfg: cfg, kube: kube, store: NewStore(db, log), log: log}, nil
}

// Store returns the workload's database side, for Setup and Stats.
func (w *Workload) Store() *Store { return w.store }

// Setup creates the database tables if missing; run it before Run, from
// every replica.
func (w *Workload) Setup(ctx context.Context) error { return w.store.Setup(ctx) }

// Run campaigns with e until ctx is done and, in each term, claims the
// fence and then runs the workload's tasks: renewal every TTL/3 (its last
// run kept with the lock, so a new leader renews at once only if due), and
// the pod-driven issue and revocation with its sweeps. It returns what
// e.Run returns.
func (w *Workload) Run(ctx context.Context, e *leadership.Elector) error {
	g, err := w.group(e)
	if err != nil {
		return err
	}
	return e.Run(ctx, func(ctx context.Context, t leadership.Term) error {
		if err := w.store.Claim(ctx, t.Token); err != nil {
			if errors.Is(err, ErrStaleToken) {
				// The database has seen a later term: this one is
				// over, whatever the lock says. Step down.
				return err
			}
			// Every change claims for itself anyway; go on.
			w.log.Warn("could not claim the fence at the start of the term", "token", t.Token, "error", err)
		} else {
			w.log.Info("claimed the fence", "token", t.Token)
		}
		return g.Lead(ctx, t)
	})
}

// RenewTask and EventsTask name the workload's tasks (the renewal's last run
// is kept with the lock under task.LastRunKey(RenewTask)).
const (
	RenewTask  = "renew-credentials"
	EventsTask = "pod-credentials"
)

func (w *Workload) group(p task.Proclaimer) (*task.Group, error) {
	every := w.cfg.TTL / 3
	return task.NewGroup(task.Config{Proclaimer: p, Logger: w.log},
		task.Periodic{
			Name:     RenewTask,
			Interval: every,
			Retry:    every / 4,
			Persist:  true,
			Run:      w.renewAll,
		},
		task.Events[Key]{
			Name:          EventsTask,
			Watch:         w.watch,
			Sweep:         w.sweep,
			Handle:        w.reconcile,
			SweepInterval: w.cfg.SweepInterval,
			Timeout:       30 * time.Second,
		},
	)
}

// Key identifies one pod's credential: the pod by name, and the UID that
// names its role.
type Key struct {
	Namespace, Name string
	UID             types.UID
}

// renewAll extends the credential of every live annotated pod. A pod whose
// credential could not be renewed fails the run, so that it is retried
// soon and not recorded as done.
func (w *Workload) renewAll(ctx context.Context, t leadership.Term) error {
	live, err := w.livePods(ctx)
	if err != nil {
		return err
	}
	creds, err := w.store.list(ctx, w.cfg.Namespace)
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, c := range creds {
		if _, ok := live[types.UID(c.UID)]; !ok {
			continue // gone: the revocation takes care of it
		}
		found, err := w.store.renew(ctx, t.Token, c.Role, w.cfg.TTL)
		if errors.Is(err, ErrStaleToken) || ctx.Err() != nil {
			return err
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if found {
			n++
		}
	}
	w.log.Info("renewed credentials", "token", t.Token, "renewed", n, "failed", len(errs))
	return errors.Join(errs...)
}

// reconcile makes one pod's credential match the pod: issued (or its
// Secret repaired) while the pod exists and is annotated, revoked
// otherwise.
func (w *Workload) reconcile(ctx context.Context, t leadership.Term, k Key) error {
	pod, err := w.getPod(ctx, k)
	if err != nil {
		return err
	}
	if pod != nil {
		if base, ok := pod.Annotations[w.cfg.Annotation]; ok {
			if err := checkBaseRole(w.cfg.Annotation, base); err != nil {
				// Retrying cannot help; the pod's owner must fix it.
				w.log.Error("pod not given a credential", "pod", k.Name, "error", err)
				return nil
			}
			return w.issue(ctx, t, pod, base)
		}
	}
	return w.revoke(ctx, t, k)
}

func (w *Workload) revoke(ctx context.Context, t leadership.Term, k Key) error {
	role := RoleName(w.cfg.RolePrefix, k.UID)
	revoked, err := w.store.revoke(ctx, t.Token, role)
	if err != nil {
		return err
	}
	if revoked {
		w.log.Info("revoked credential", "pod", k.Name, "uid", k.UID, "role", role, "token", t.Token)
	}
	return w.deleteSecret(ctx, t, k)
}
