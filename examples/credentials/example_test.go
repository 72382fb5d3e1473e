package credentials_test

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/leadership-dev/leadership/kubelease"
)

// The whole workload, as cmd/leadership-credentials runs it.
func ExampleWorkload_Run() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		return
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return
	}
	lock, err := kubelease.New(cs.CoordinationV1(), "apps", "leadership-credentials")
	if err != nil {
		return
	}
	id := leadership.DefaultIdentity()
	e, err := leadership.New(lock, leadership.Config{Identity: id})
	if err != nil {
		return
	}
	// The database URL comes from the PG* environment variables here.
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return
	}
	pc.ConnConfig.RuntimeParams["application_name"] = id // logged as the actor of each change
	db, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return
	}
	defer db.Close()
	w, err := credentials.New(cs, db, credentials.Config{Namespace: "apps", TTL: time.Hour})
	if err != nil {
		slog.Error("config", "error", err)
		return
	}
	if err := w.Setup(ctx); err != nil {
		slog.Error("database", "error", err)
		return
	}
	_ = w.Run(ctx, e)
}

func ExampleNew() {
	_, err := credentials.New(nil, nil, credentials.Config{})
	fmt.Println(err)
	// Output: credentials: Config.Namespace is required: the namespace whose pods get credentials
}

func ExampleConfig_Validate() {
	err := credentials.Config{Namespace: "apps", TTL: time.Second}.Validate()
	fmt.Println(err)
	// Output: credentials: Config.TTL 1s must be at least 3s: renewal runs every TTL/3
}

func ExampleRoleName() {
	fmt.Println(credentials.RoleName("pod_", "0b5e8d52-6c1f-4f38-9a53-1c2f0e4d7a10"))
	// Output: pod_0b5e8d526c1f4f389a531c2f0e4d7a10
}

func ExampleSecretName() {
	fmt.Println(credentials.SecretName("billing-7d9f-x2x4z"))
	// Output: billing-7d9f-x2x4z-db-credentials
}

// Stats gives the figures of a running fleet, from the database alone.
func ExampleStore_Stats() {
	db, err := pgxpool.New(context.Background(), "")
	if err != nil {
		return
	}
	defer db.Close()
	st, err := credentials.NewStore(db, nil).Stats(context.Background())
	if err != nil {
		return
	}
	fmt.Printf("renewals %d, revocations %d, stale transactions refused %d, smallest remaining validity %v\n",
		st.Renewed, st.Revoked, st.Refused, st.MinValidity)
}

// Claim raises the fence; a term whose token is lower than one the
// database has seen is refused and must step down.
func ExampleStore_Claim() {
	db, err := pgxpool.New(context.Background(), "")
	if err != nil {
		return
	}
	defer db.Close()
	s := credentials.NewStore(db, nil)
	if err := s.Setup(context.Background()); err != nil {
		return
	}
	err = s.Claim(context.Background(), 4711)
	if errors.Is(err, credentials.ErrStaleToken) {
		fmt.Println("a later term has begun:", err)
	}
}

func ExampleStaleTokenError() {
	var err error = &credentials.StaleTokenError{Op: "renew", Token: 41, Highest: 42}
	fmt.Println(errors.Is(err, credentials.ErrStaleToken))
	fmt.Println(err)
	// Output:
	// true
	// credentials: fencing token lower than the highest the database has seen: renew with token 41 refused, the highest seen is 42: a later term has begun
}

func ExampleNewStore() {
	db, err := pgxpool.New(context.Background(), "postgres://creds@127.0.0.1:5432/postgres")
	if err != nil {
		return
	}
	defer db.Close()
	s := credentials.NewStore(db, slog.Default())
	fmt.Println(s != nil)
	// Output: true
}

func ExampleWorkload_Setup() {
	var w *credentials.Workload // from credentials.New
	if w == nil {
		return
	}
	if err := w.Setup(context.Background()); err != nil {
		fmt.Println("database:", err)
	}
	fmt.Println(w.Store() != nil)
}
