package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/examples/credentials"
)

// The fault test's timing: short leases and TTLs so that it takes a couple
// of minutes. Renewal runs every ttl/3 = 5s; a failover takes about a lease
// duration.
var faultSettings = settings{replicas: 3, leaseDuration: 3 * time.Second, ttl: 15 * time.Second, sweepInterval: 20 * time.Second}

// TestCredentialsUnderFaults runs three replicas of the workload and kills
// (SIGKILL) and freezes (SIGSTOP, then SIGCONT after a successor took over)
// the leader in the middle of a renewal run and in the middle of
// revocations; delays a leader's requests to PostgreSQL while cutting it
// off from the API server, so that they arrive after a successor claimed;
// and stops every replica while pods change. Throughout, it samples every
// live pod's VALID UNTIL from PostgreSQL. It shows that no live pod's
// credential ever expires, that every deleted pod's role is revoked exactly
// once, and that no transaction with a stale token commits: the log of
// committed changes never goes back to a lower token, and the deposed
// leader's late requests are refused and counted.
func TestCredentialsUnderFaults(t *testing.T) {
	e := newEnv(t, faultSettings)
	smp := e.startSampler()
	e.fleet.startAll()
	e.createPods(12)
	eventually(t, time.Minute, "credentials for the first pods", e.steady)
	t.Logf("12 pods have credentials")

	interrupted := map[string]string{}

	// 1. kill -9 the leader during a renewal run.
	{
		run := e.waitOp("renew", e.lastID(), time.Minute)
		victim := e.fleet.byIdentity(run.actor)
		victim.kill9(t)
		next := e.waitOpAbove("renew", run.token, time.Minute)
		interrupted["kill -9 during renewal"] = e.runReport(run, next)
		e.fleet.start(victim.slot)
		eventually(t, time.Minute, "steady after kill -9 during renewal", e.steady)
	}

	// 2. kill -9 the leader during revocations (and issues).
	{
		before := e.lastID()
		e.createPods(4)
		e.deletePods(e.issued(5))
		rev := e.waitOp("revoke", before, time.Minute)
		victim := e.fleet.byIdentity(rev.actor)
		victim.kill9(t)
		done := len(e.logRows(`WHERE op = 'revoke' AND token = $1`, rev.token))
		interrupted["kill -9 during revocation"] = fmt.Sprintf("the leader had revoked %d of 5 when killed", done)
		e.fleet.start(victim.slot)
		eventually(t, time.Minute, "steady after kill -9 during revocation", e.steady)
	}

	// 3. SIGSTOP the leader during a renewal run; resume it once a
	// successor has claimed and renewed.
	{
		run := e.waitOp("renew", e.lastID(), time.Minute)
		victim := e.fleet.byIdentity(run.actor)
		victim.signal(t, syscall.SIGSTOP)
		next := e.waitOpAbove("renew", run.token, time.Minute)
		interrupted["SIGSTOP during renewal"] = e.runReport(run, next)
		refused := e.refused()
		victim.signal(t, syscall.SIGCONT)
		e.waitStepDown(victim, run.token)
		interrupted["SIGSTOP during renewal"] += fmt.Sprintf("; refused after resuming: %d", e.refused()-refused)
		eventually(t, time.Minute, "steady after SIGSTOP during renewal", e.steady)
	}

	// 4. SIGSTOP the leader during revocations.
	{
		before := e.lastID()
		e.createPods(4)
		e.deletePods(e.issued(5))
		rev := e.waitOp("revoke", before, time.Minute)
		victim := e.fleet.byIdentity(rev.actor)
		victim.signal(t, syscall.SIGSTOP)
		e.waitOpAbove("claim", rev.token, time.Minute)
		eventually(t, time.Minute, "the successor finishing the revocations", e.steady)
		done := len(e.logRows(`WHERE op = 'revoke' AND token = $1`, rev.token))
		refused := e.refused()
		victim.signal(t, syscall.SIGCONT)
		e.waitStepDown(victim, rev.token)
		interrupted["SIGSTOP during revocation"] = fmt.Sprintf("the leader had revoked %d of 5 when stopped; refused after resuming: %d", done, e.refused()-refused)
		eventually(t, time.Minute, "steady after SIGSTOP during revocation", e.steady)
	}

	// 5. A stale request: in the middle of a renewal run the leader's
	// traffic to PostgreSQL starts taking 12s, and it is cut off from the
	// API server, so a request it sends within its term reaches the
	// database after a successor has claimed. The database must refuse it.
	{
		before := e.refused()
		for attempt := 1; ; attempt++ {
			run := e.waitOp("renew", e.lastID(), time.Minute)
			victim := e.fleet.byIdentity(run.actor)
			db, api := e.fleet.db[victim.slot], e.fleet.api[victim.slot]
			db.setLatency(12 * time.Second)
			api.Blackhole()
			claim := e.waitOpAbove("claim", run.token, time.Minute)
			db.setLatency(0)
			eventually(t, time.Minute, "the delayed requests delivered", func() error {
				if n := db.pending.Load(); n > 0 {
					return fmt.Errorf("%d chunks still on their way", n)
				}
				return nil
			})
			api.Restore()
			e.waitStepDown(victim, run.token)
			deadline := time.Now().Add(15 * time.Second)
			for e.refused() == before && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n := e.refused() - before; n > 0 {
				interrupted["stale request delayed in the network"] = fmt.Sprintf("the leader (token %d) sent requests that arrived after the successor's claim (token %d): %d refused (attempt %d)", run.token, claim.token, n, attempt)
				break
			}
			if attempt == 3 {
				t.Errorf("in 3 attempts, no delayed request of a deposed leader was refused (%d chunks delivered late)", db.delayed.Load())
				break
			}
			t.Logf("attempt %d: no request was in flight when the delay began; again", attempt)
		}
		eventually(t, time.Minute, "steady after the delayed requests", e.steady)
	}

	// 6. Nobody leads while pods come and go: the sweep at the next
	// acquisition catches up.
	{
		e.fleet.stopAll()
		before := e.lastID()
		e.deletePods(e.issued(3))
		e.createPods(3)
		e.fleet.startAll()
		eventually(t, time.Minute, "steady after a period with no leader", e.steady)
		if n := len(e.logRows(`WHERE op = 'revoke' AND id > $1`, before)); n != 3 {
			t.Errorf("after the leaderless period: %d revocations, want 3", n)
		}
	}

	// One more renewal by the last fleet, sampled too.
	e.waitOp("renew", e.lastID(), time.Minute)
	smp.halt()

	e.checkFinal(t)
	samples, minValid, minRole, violations := smp.result()
	for _, v := range violations {
		t.Error(v)
	}
	if samples < 100 {
		t.Errorf("only %d samples of VALID UNTIL", samples)
	}
	e.fleet.stopAll() // so the figures hold still
	st, err := credentials.NewStore(e.pool, nil).Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The command's --stats reads the same figures.
	out, err := exec.Command(workloadBin, "--stats", "--db", pg.dsn(e.db)).Output()
	if err != nil {
		t.Fatalf("--stats: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("--stats printed %q: %v", out, err)
	}
	if got["renewed"] != float64(st.Renewed) || got["revoked"] != float64(st.Revoked) || got["refused"] != float64(st.Refused) {
		t.Errorf("--stats printed %s, the store says %+v", out, st)
	}
	t.Logf("leadership-credentials --stats:\n%s", out)
	for _, k := range []string{"kill -9 during renewal", "kill -9 during revocation", "SIGSTOP during renewal", "SIGSTOP during revocation", "stale request delayed in the network"} {
		t.Logf("%s: %s", k, interrupted[k])
	}
	t.Logf("FIGURES: terms=%d issued=%d rotated=%d renewals=%d revocations=%d (deleted pods %d, each revoked exactly once) stale-refused=%d; smallest remaining validity of a live credential over %d samples: %v (%s); TTL %v",
		st.Claims, st.Issued, st.Rotated, st.Renewed, st.Revoked, len(e.reg.deleted()), st.Refused, samples, minValid.Round(time.Millisecond), minRole, e.s.ttl)
	if minValid <= 0 {
		t.Errorf("a live credential expired (smallest remaining validity %v)", minValid)
	}
}

// runReport says how far the interrupted run got, and that the successor
// renewed.
func (e *env) runReport(run, next logRow) string {
	n := len(e.logRows(`WHERE op = 'renew' AND token = $1 AND id >= $2`, run.token, run.id))
	return fmt.Sprintf("the leader (token %d) had renewed %d of %d credentials in its run; the successor (token %d) renewed next", run.token, n, len(e.reg.live()), next.token)
}

// waitStepDown waits until the resumed replica has seen that its term is
// over and has returned from its work.
func (e *env) waitStepDown(r *replica, token int64) {
	e.t.Helper()
	eventually(e.t, time.Minute, r.id+" stepping down after SIGCONT", func() error {
		if r.logHas("term ended; lead has returned", "token="+strconv.FormatInt(token, 10)) {
			return nil
		}
		return errors.New("its term has not ended yet")
	})
}

// checkFinal checks the whole history in the database.
func (e *env) checkFinal(t *testing.T) {
	t.Helper()
	eventually(t, time.Minute, "final steady state", e.steady)
	rows := e.logRows("")
	var prev int64
	var claims []int64
	for _, r := range rows {
		if r.token < prev {
			t.Errorf("change %d (%s %s by %s) committed with token %d after a change with token %d: a stale transaction committed", r.id, r.op, r.role, r.actor, r.token, prev)
		}
		prev = max(prev, r.token)
		if r.op == "claim" {
			if len(claims) > 0 && r.token <= claims[len(claims)-1] {
				t.Errorf("claim with token %d after claim %d", r.token, claims[len(claims)-1])
			}
			claims = append(claims, r.token)
		}
	}
	revokes := map[string]int{}
	renews := map[string]int{}
	for _, r := range rows {
		switch r.op {
		case "revoke":
			revokes[r.role]++
		case "renew":
			renews[r.role]++
		}
	}
	for _, p := range e.reg.deleted() {
		if n := revokes[p.role]; n != 1 {
			t.Errorf("deleted pod %s: role revoked %d times, want exactly once", p.name, n)
		}
	}
	for _, p := range e.reg.live() {
		if revokes[p.role] != 0 {
			t.Errorf("live pod %s: role was revoked", p.name)
		}
	}
	// The Secret of every live pod logs in.
	ctx := context.Background()
	for _, p := range e.reg.live() {
		s, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, credentials.SecretName(p.name), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := login(ctx, string(s.Data[credentials.UsernameKey]), string(s.Data[credentials.PasswordKey]), e.db); err != nil {
			t.Errorf("live pod %s cannot log in with its Secret: %v", p.name, err)
		}
	}
	t.Logf("%d changes committed, %d terms claimed, %d roles renewed at least once", len(rows), len(claims), len(renews))
}

func login(ctx context.Context, user, password, db string) error {
	c, err := pgx.Connect(ctx, pg.userDSN(user, password, db))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var who string
	if err := c.QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil {
		return err
	}
	if who != user {
		return fmt.Errorf("logged in as %q, want %q", who, user)
	}
	return nil
}

// TestRevocationEndsSessions: a pod's credential works while the pod lives;
// deleting the pod ends the sessions open with it and refuses new logins.
func TestRevocationEndsSessions(t *testing.T) {
	e := newEnv(t, settings{replicas: 1, leaseDuration: 3 * time.Second, ttl: 15 * time.Second, sweepInterval: time.Minute})
	e.fleet.startAll()
	p := e.createPods(1)[0]
	eventually(t, time.Minute, "the pod's credential", e.steady)
	ctx := context.Background()
	s, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, credentials.SecretName(p.name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := s.OwnerReferences; len(o) != 1 || o[0].UID != p.uid || o[0].Kind != "Pod" {
		t.Fatalf("Secret owner references %+v, want the pod %s", o, p.uid)
	}
	user, password := string(s.Data[credentials.UsernameKey]), string(s.Data[credentials.PasswordKey])
	session, err := pgx.Connect(ctx, pg.userDSN(user, password, e.db))
	if err != nil {
		t.Fatalf("logging in with the pod's Secret: %v", err)
	}
	defer session.Close(ctx)
	var validUntil time.Time
	if err := e.pool.QueryRow(ctx, `SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1`, user).Scan(&validUntil); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(validUntil); d <= 0 || d > e.s.ttl+time.Second {
		t.Errorf("VALID UNTIL in %v, want within the TTL %v", d, e.s.ttl)
	}

	e.deletePods([]*podState{p})
	eventually(t, time.Minute, "the revocation", e.steady)
	if err := session.Ping(ctx); err == nil {
		t.Error("the session opened with the revoked credential still works")
	}
	if err := login(ctx, user, password, e.db); err == nil {
		t.Error("logging in with the revoked credential still works")
	}
	if n := len(e.logRows(`WHERE op = 'revoke' AND role = $1`, user)); n != 1 {
		t.Errorf("%d revocations logged, want 1", n)
	}
}

// TestStaleTokenRefused: the store refuses a change with a token lower than
// the highest it has seen, commits nothing of it, and counts it.
func TestStaleTokenRefused(t *testing.T) {
	ctx := context.Background()
	db := dbName(t.Name())
	if err := pg.createDB(ctx, db); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pg.dsn(db))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := credentials.NewStore(pool, nil)
	for range 2 { // Setup is idempotent
		if err := s.Setup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Claim(ctx, 100); err != nil {
		t.Fatal(err)
	}
	err = s.Claim(ctx, 99)
	var stale *credentials.StaleTokenError
	if !errors.As(err, &stale) || !errors.Is(err, credentials.ErrStaleToken) || stale.Token != 99 || stale.Highest != 100 {
		t.Fatalf("claim with a lower token: %v, want a StaleTokenError 99 < 100", err)
	}
	if err := s.Claim(ctx, 100); err != nil {
		t.Fatalf("the same term again: %v", err)
	}
	if err := s.Claim(ctx, 101); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Refused != 1 || st.Claims != 3 || st.HighestToken != 101 {
		t.Fatalf("stats %+v, want 1 refused, 3 claims committed, highest 101", st)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM leadership_credentials_log WHERE token = 99`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d changes with the stale token committed (%v)", n, err)
	}
}
