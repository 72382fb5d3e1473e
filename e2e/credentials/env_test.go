package credentials

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/examples/credentials"
)

const (
	leaseName = "leadership-credentials"
	baseRole  = "app"
)

// settings of one test's fleet.
type settings struct {
	replicas      int
	leaseDuration time.Duration
	ttl           time.Duration
	sweepInterval time.Duration
}

// env is one test's world: a namespace, a database, a fleet of workload
// processes, and the pods the test created.
type env struct {
	t     *testing.T
	s     settings
	ns    string
	db    string
	pool  *pgxpool.Pool
	kube  kubernetes.Interface
	fleet *fleet
	reg   *registry
}

func newEnv(t *testing.T, s settings) *env {
	t.Helper()
	ctx := context.Background()
	var b [3]byte
	_, _ = rand.Read(b[:])
	e := &env{t: t, s: s, ns: "creds-" + hex.EncodeToString(b[:]), db: dbName(t.Name()), reg: &registry{byRole: map[string]*podState{}}}
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 200, 400
	e.kube = kubernetes.NewForConfigOrDie(cfg)
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pg.createDB(ctx, e.db); err != nil {
		t.Fatalf("creating database %s: %v", e.db, err)
	}
	pool, err := pgxpool.New(ctx, pg.dsn(e.db))
	if err != nil {
		t.Fatal(err)
	}
	e.pool = pool
	t.Cleanup(pool.Close)
	// Roles are global to the server; the base role is shared by tests.
	if _, err := pool.Exec(ctx, `DO $$ BEGIN CREATE ROLE `+baseRole+` NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	e.fleet = newFleet(t, e, s)
	t.Cleanup(func() {
		if t.Failed() {
			e.fleet.dumpLogs()
		}
	})
	return e
}

// podState is a pod the test created, as the test knows it.
type podState struct {
	name     string
	uid      types.UID
	role     string
	deleting bool // set before the delete is sent: from then on it is not live
	issued   bool // its role has been seen in PostgreSQL
}

type registry struct {
	mu     sync.Mutex
	byRole map[string]*podState
	all    []*podState
}

func (r *registry) live() []*podState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*podState
	for _, p := range r.all {
		if !p.deleting {
			out = append(out, p)
		}
	}
	return out
}

func (r *registry) deleted() []*podState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*podState
	for _, p := range r.all {
		if p.deleting {
			out = append(out, p)
		}
	}
	return out
}

// issued returns n live pods whose credential has been seen, oldest first.
func (e *env) issued(n int) []*podState {
	e.t.Helper()
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	var out []*podState
	for _, p := range e.reg.all {
		if !p.deleting && p.issued && len(out) < n {
			out = append(out, p)
		}
	}
	if len(out) < n {
		e.t.Fatalf("only %d live pods with credentials, want %d", len(out), n)
	}
	return out
}

var podCounter struct {
	sync.Mutex
	n int
}

func (e *env) createPods(n int) []*podState {
	e.t.Helper()
	var out []*podState
	for range n {
		podCounter.Lock()
		podCounter.n++
		name := fmt.Sprintf("app-%d", podCounter.n)
		podCounter.Unlock()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: map[string]string{credentials.DefaultAnnotation: baseRole}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
		got, err := e.kube.CoreV1().Pods(e.ns).Create(context.Background(), pod, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatalf("creating pod %s: %v", name, err)
		}
		p := &podState{name: name, uid: got.UID, role: credentials.RoleName(credentials.DefaultRolePrefix, got.UID)}
		e.reg.mu.Lock()
		e.reg.byRole[p.role] = p
		e.reg.all = append(e.reg.all, p)
		e.reg.mu.Unlock()
		out = append(out, p)
	}
	return out
}

// deletePods deletes pods; they count as gone from the moment before the
// request is sent. A pod bound to no node is removed at once.
func (e *env) deletePods(ps []*podState) {
	e.t.Helper()
	e.reg.mu.Lock()
	for _, p := range ps {
		p.deleting = true
	}
	e.reg.mu.Unlock()
	for _, p := range ps {
		if err := e.kube.CoreV1().Pods(e.ns).Delete(context.Background(), p.name, metav1.DeleteOptions{}); err != nil {
			e.t.Fatalf("deleting pod %s: %v", p.name, err)
		}
	}
}

// eventually is e2etest.Eventually, for this package's conditions, which
// say what is still missing.
var eventually = e2etest.Eventually[func() error]

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// steady reports what still differs from the goal: every live pod has a
// role, a record and a Secret holding the record's password; every deleted
// pod has none of them.
func (e *env) steady() error {
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT c.role, c.password_sha256, r.rolname IS NOT NULL FROM leadership_credentials c LEFT JOIN pg_roles r ON r.rolname = c.role`)
	if err != nil {
		return err
	}
	type rec struct {
		hash string
		role bool
	}
	recs := map[string]rec{}
	for rows.Next() {
		var name string
		var r rec
		if err := rows.Scan(&name, &r.hash, &r.role); err != nil {
			return err
		}
		recs[name] = r
	}
	if err := rows.Err(); err != nil {
		return err
	}
	roles := map[string]bool{}
	rows, err = e.pool.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE 'pod\_%'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		roles[n] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range e.reg.live() {
		r, ok := recs[p.role]
		if !ok || !r.role {
			return fmt.Errorf("live pod %s has no credential yet", p.name)
		}
		s, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, credentials.SecretName(p.name), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("live pod %s: %w", p.name, err)
		}
		if string(s.Data[credentials.UsernameKey]) != p.role || sha(string(s.Data[credentials.PasswordKey])) != r.hash {
			return fmt.Errorf("live pod %s: its Secret does not hold its credential", p.name)
		}
		e.reg.mu.Lock()
		p.issued = true
		e.reg.mu.Unlock()
	}
	for _, p := range e.reg.deleted() {
		if _, ok := recs[p.role]; ok || roles[p.role] {
			return fmt.Errorf("deleted pod %s: role %s not revoked yet", p.name, p.role)
		}
		_, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, credentials.SecretName(p.name), metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleted pod %s: Secret still there (%v)", p.name, err)
		}
	}
	return nil
}

// logRow is a row of the workload's change log.
type logRow struct {
	id    int64
	token int64
	op    string
	actor string
	role  string
}

func (e *env) logRows(where string, args ...any) []logRow {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id, token, op, actor, coalesce(role, '') FROM leadership_credentials_log `+where+` ORDER BY id`, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (logRow, error) {
		var l logRow
		err := r.Scan(&l.id, &l.token, &l.op, &l.actor, &l.role)
		return l, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) lastID() int64 {
	e.t.Helper()
	var id int64
	if err := e.pool.QueryRow(context.Background(), `SELECT coalesce(max(id), 0) FROM leadership_credentials_log`).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// waitOp polls quickly for the first row of op after id, so that a fault
// can be injected while the run it belongs to is still going.
func (e *env) waitOp(op string, after int64, timeout time.Duration) logRow {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var l logRow
		err := e.pool.QueryRow(context.Background(), `SELECT id, token, op, actor, coalesce(role, '') FROM leadership_credentials_log WHERE op = $1 AND id > $2 ORDER BY id LIMIT 1`, op, after).
			Scan(&l.id, &l.token, &l.op, &l.actor, &l.role)
		if err == nil {
			return l
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			e.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no %s within %v", op, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitOpAbove waits for a row of op from a term later than token.
func (e *env) waitOpAbove(op string, token int64, timeout time.Duration) logRow {
	e.t.Helper()
	var l logRow
	eventually(e.t, timeout, fmt.Sprintf("a %s with a token above %d", op, token), func() error {
		rows := e.logRows(`WHERE op = $1 AND token > $2`, op, token)
		if len(rows) == 0 {
			return errors.New("none yet")
		}
		l = rows[0]
		return nil
	})
	return l
}

func (e *env) refused() int64 {
	e.t.Helper()
	st, err := credentials.NewStore(e.pool, nil).Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Refused
}

// fleet is the workload's replicas: OS processes of the built command, each
// with its own kubeconfig through its own proxy to the API server.
type fleet struct {
	t    *testing.T
	e    *env
	s    settings
	dir  string
	mu   sync.Mutex
	reps []*replica // every process ever started
	gen  int
	kcs  []string
	// Per slot: the replica's proxy to the API server and to PostgreSQL.
	api []*controlplane.Proxy
	db  []*dbProxy
}

type replica struct {
	slot   int
	id     string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func newFleet(t *testing.T, e *env, s settings) *fleet {
	f := &fleet{t: t, e: e, s: s, dir: t.TempDir()}
	for i := range s.replicas {
		p, err := cp.NewProxy()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		kc := filepath.Join(f.dir, fmt.Sprintf("kubeconfig-%d", i))
		if err := p.WriteKubeconfig(kc); err != nil {
			t.Fatal(err)
		}
		f.kcs = append(f.kcs, kc)
		f.api = append(f.api, p)
		d, err := newDBProxy(fmt.Sprintf("127.0.0.1:%d", pg.port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.close)
		f.db = append(f.db, d)
	}
	t.Cleanup(f.shutdown)
	return f
}

// start runs a new process in slot, with a fresh identity.
func (f *fleet) start(slot int) *replica {
	f.t.Helper()
	f.mu.Lock()
	f.gen++
	id := fmt.Sprintf("replica-%d-gen%d", slot, f.gen)
	f.mu.Unlock()
	r := &replica{slot: slot, id: id, log: filepath.Join(f.dir, id+".log"), exited: make(chan struct{})}
	logf, err := os.Create(r.log)
	if err != nil {
		f.t.Fatal(err)
	}
	r.cmd = exec.Command(workloadBin,
		"--kubeconfig", f.kcs[slot], "--namespace", f.e.ns, "--lease", leaseName, "--identity", id,
		"--lease-duration", f.s.leaseDuration.String(), "--ttl", f.s.ttl.String(),
		"--sweep-interval", f.s.sweepInterval.String(), "--db", pg.dsnVia(f.db[slot].port(), f.e.db), "--log-level", "debug")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	// The replicas die with the test process, however that ends.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		logf.Close()
		close(r.exited)
	}()
	f.mu.Lock()
	f.reps = append(f.reps, r)
	f.mu.Unlock()
	return r
}

func (f *fleet) startAll() {
	for i := range f.s.replicas {
		f.start(i)
	}
}

// byIdentity returns the running process with identity id.
func (f *fleet) byIdentity(id string) *replica {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reps {
		if r.id == id {
			return r
		}
	}
	f.t.Fatalf("no replica %q", id)
	return nil
}

func (r *replica) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *replica) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, r.id, err)
	}
}

// kill9 kills r and waits until it is gone.
func (r *replica) kill9(t *testing.T) {
	t.Helper()
	r.signal(t, syscall.SIGKILL)
	<-r.exited
}

// logHas reports whether r's log holds a line with every one of parts.
func (r *replica) logHas(parts ...string) bool {
	b, _ := os.ReadFile(r.log)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		all := true
		for _, p := range parts {
			if !bytes.Contains(line, []byte(p)) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// stopAll ends every running replica gracefully (SIGTERM) and waits.
func (f *fleet) stopAll() {
	f.t.Helper()
	f.mu.Lock()
	reps := append([]*replica(nil), f.reps...)
	f.mu.Unlock()
	for _, r := range reps {
		if r.running() {
			_ = r.cmd.Process.Signal(syscall.SIGCONT)
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, r := range reps {
		select {
		case <-r.exited:
		case <-time.After(time.Minute):
			f.t.Errorf("%s did not stop within a minute of SIGTERM", r.id)
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
}

func (f *fleet) shutdown() {
	f.mu.Lock()
	reps := append([]*replica(nil), f.reps...)
	f.mu.Unlock()
	for _, r := range reps {
		if r.running() {
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
}

func (f *fleet) dumpLogs() {
	f.mu.Lock()
	reps := append([]*replica(nil), f.reps...)
	f.mu.Unlock()
	for _, r := range reps {
		b, _ := os.ReadFile(r.log)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 150 {
			lines = lines[len(lines)-150:]
		}
		f.t.Logf("--- last lines of %s:\n%s", r.id, strings.Join(lines, "\n"))
	}
	f.t.Logf("--- postgres log:\n%s", pg.logTail())
}

// sampler reads every live pod's VALID UNTIL from PostgreSQL continuously.
type sampler struct {
	e    *env
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	samples    int
	min        time.Duration
	minRole    string
	violations []string
}

func (e *env) startSampler() *sampler {
	s := &sampler{e: e, stop: make(chan struct{}), done: make(chan struct{}), min: time.Duration(1<<63 - 1)}
	go s.loop()
	e.t.Cleanup(s.halt)
	return s
}

func (s *sampler) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *sampler) loop() {
	defer close(s.done)
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(25 * time.Millisecond):
		}
		type role struct {
			remaining time.Duration
			login     bool
		}
		roles := map[string]role{}
		rows, err := s.e.pool.Query(ctx, `SELECT rolname, rolvaliduntil - now(), rolcanlogin FROM pg_roles WHERE rolname LIKE 'pod\_%'`)
		if err != nil {
			continue
		}
		for rows.Next() {
			var n string
			var r role
			if rows.Scan(&n, &r.remaining, &r.login) == nil {
				roles[n] = r
			}
		}
		if rows.Err() != nil {
			continue
		}
		// Judged by who was live after the query: such a pod was live
		// throughout it.
		reg := s.e.reg
		reg.mu.Lock()
		s.mu.Lock()
		s.samples++
		for _, p := range reg.all {
			if p.deleting {
				continue
			}
			r, ok := roles[p.role]
			switch {
			case ok:
				p.issued = true
				if r.remaining < s.min {
					s.min, s.minRole = r.remaining, p.role
				}
				if r.remaining <= 0 {
					s.violations = append(s.violations, fmt.Sprintf("live pod %s: credential expired %v ago", p.name, -r.remaining))
				}
				if !r.login {
					s.violations = append(s.violations, fmt.Sprintf("live pod %s: role cannot log in", p.name))
				}
			case p.issued:
				s.violations = append(s.violations, fmt.Sprintf("live pod %s: its role vanished", p.name))
			}
		}
		s.mu.Unlock()
		reg.mu.Unlock()
	}
}

func (s *sampler) result() (samples int, min time.Duration, minRole string, violations []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.min, s.minRole, append([]string(nil), s.violations...)
}
