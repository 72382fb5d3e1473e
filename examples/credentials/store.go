package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The store's tables. They belong to this workload alone: one workload
// (one fleet of replicas) per database.
const (
	// FenceTable holds the highest fencing token seen, in the row FenceName.
	FenceTable = "leadership_fence"
	// FenceName is this workload's row in FenceTable.
	FenceName = "leadership-credentials"
	// RefusalsSequence counts changes refused for a stale token. A
	// sequence, because its increments survive the rollback of the
	// transaction that made them: the refused change itself commits
	// nothing.
	RefusalsSequence = "leadership_fence_refusals"
	// CredentialsTable has one row per issued, not yet revoked credential.
	CredentialsTable = "leadership_credentials"
	// LogTable records every committed change (claim, issue, rotate, renew,
	// revoke) with the token of the term that made it and, as actor, the
	// connection's application_name, which the command sets to the
	// replica's identity. Its ids follow commit order, because every change
	// holds the fence row's lock until it commits.
	LogTable = "leadership_credentials_log"
)

const schema = `
CREATE TABLE IF NOT EXISTS leadership_fence (
	name  text PRIMARY KEY,
	token bigint NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS leadership_fence_refusals;
CREATE TABLE IF NOT EXISTS leadership_credentials (
	role            text PRIMARY KEY,
	namespace       text NOT NULL,
	pod             text NOT NULL,
	pod_uid         text NOT NULL UNIQUE,
	base_role       text NOT NULL,
	password_sha256 text NOT NULL,
	valid_until     timestamptz NOT NULL,
	issued_at       timestamptz NOT NULL,
	issued_token    bigint NOT NULL,
	renewed_token   bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS leadership_credentials_log (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT clock_timestamp(),
	token       bigint NOT NULL,
	op          text NOT NULL,
	actor       text NOT NULL DEFAULT current_setting('application_name'),
	role        text,
	namespace   text,
	pod         text,
	pod_uid     text,
	valid_until timestamptz
);
INSERT INTO leadership_fence (name, token) VALUES ('leadership-credentials', 0) ON CONFLICT DO NOTHING;

-- The fence: every change calls it first, in the same statement. It locks
-- the fence row until the change commits, refuses a token lower than the
-- highest seen (counting the refusal in a sequence, which the rollback does
-- not undo) and raises the fence to a higher one.
CREATE OR REPLACE FUNCTION leadership_fence_check(tok bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	highest bigint;
BEGIN
	SELECT token INTO highest FROM leadership_fence WHERE name = 'leadership-credentials' FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the fence row leadership-credentials is missing from leadership_fence'
			USING ERRCODE = 'LF002', HINT = 'run Setup (the command does at start)';
	END IF;
	IF tok < highest THEN
		PERFORM nextval('leadership_fence_refusals');
		RAISE EXCEPTION 'fencing token % refused: the highest seen is %', tok, highest
			USING ERRCODE = 'LF001', DETAIL = highest::text;
	ELSIF tok > highest THEN
		UPDATE leadership_fence SET token = tok WHERE name = 'leadership-credentials';
	END IF;
END $$;

CREATE OR REPLACE FUNCTION leadership_claim(tok bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM leadership_fence_check(tok);
	INSERT INTO leadership_credentials_log (token, op) VALUES (tok, 'claim');
END $$;

-- Issues the credential of a pod, or gives it a new password when its
-- Secret does not hold the current one (p_current_sha256 is the hash of
-- the Secret's password, '' if none). Returns issued, rotated or unchanged.
CREATE OR REPLACE FUNCTION leadership_issue(tok bigint, p_role text, p_namespace text, p_pod text, p_uid text,
	p_base text, p_current_sha256 text, p_password text, p_ttl double precision) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	c leadership_credentials%ROWTYPE;
	until timestamptz := now() + make_interval(secs => p_ttl);
	h text := encode(sha256(convert_to(p_password, 'UTF8')), 'hex');
BEGIN
	PERFORM leadership_fence_check(tok);
	SELECT * INTO c FROM leadership_credentials WHERE role = p_role FOR UPDATE;
	IF FOUND THEN
		IF p_current_sha256 <> '' AND c.password_sha256 = p_current_sha256 THEN
			RETURN 'unchanged';
		END IF;
		EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L VALID UNTIL %L', p_role, p_password, until);
		UPDATE leadership_credentials SET password_sha256 = h, valid_until = until, renewed_token = tok WHERE role = p_role;
		INSERT INTO leadership_credentials_log (token, op, role, namespace, pod, pod_uid, valid_until)
			VALUES (tok, 'rotate', p_role, c.namespace, c.pod, c.pod_uid, until);
		RETURN 'rotated';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role) THEN
		-- A role of ours with no record, left by hand: it is this pod's
		-- by its name, so take it over.
		EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L VALID UNTIL %L', p_role, p_password, until);
		EXECUTE format('GRANT %I TO %I', p_base, p_role);
	ELSE
		EXECUTE format('CREATE ROLE %I WITH LOGIN PASSWORD %L VALID UNTIL %L IN ROLE %I', p_role, p_password, until, p_base);
	END IF;
	INSERT INTO leadership_credentials (role, namespace, pod, pod_uid, base_role, password_sha256, valid_until, issued_at, issued_token, renewed_token)
		VALUES (p_role, p_namespace, p_pod, p_uid, p_base, h, until, now(), tok, tok);
	INSERT INTO leadership_credentials_log (token, op, role, namespace, pod, pod_uid, valid_until)
		VALUES (tok, 'issue', p_role, p_namespace, p_pod, p_uid, until);
	RETURN 'issued';
END $$;

-- Extends the validity of a credential; false if it has none.
CREATE OR REPLACE FUNCTION leadership_renew(tok bigint, p_role text, p_ttl double precision) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	c leadership_credentials%ROWTYPE;
	until timestamptz := now() + make_interval(secs => p_ttl);
BEGIN
	PERFORM leadership_fence_check(tok);
	SELECT * INTO c FROM leadership_credentials WHERE role = p_role FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	EXECUTE format('ALTER ROLE %I VALID UNTIL %L', p_role, until);
	UPDATE leadership_credentials SET valid_until = until, renewed_token = tok WHERE role = p_role;
	INSERT INTO leadership_credentials_log (token, op, role, namespace, pod, pod_uid, valid_until)
		VALUES (tok, 'renew', p_role, c.namespace, c.pod, c.pod_uid, until);
	RETURN true;
END $$;

-- Revokes a credential: NOLOGIN, sessions terminated, owned objects handed
-- to the base role, role dropped, record deleted, revocation logged.
-- Returns the role's oid (0 if the role itself was already gone), or NULL
-- when there is no credential: revoking twice changes nothing.
CREATE OR REPLACE FUNCTION leadership_revoke(tok bigint, p_role text) RETURNS oid LANGUAGE plpgsql AS $$
DECLARE
	c leadership_credentials%ROWTYPE;
	r oid;
BEGIN
	PERFORM leadership_fence_check(tok);
	SELECT * INTO c FROM leadership_credentials WHERE role = p_role FOR UPDATE;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	SELECT oid INTO r FROM pg_roles WHERE rolname = p_role;
	IF FOUND THEN
		EXECUTE format('ALTER ROLE %I WITH NOLOGIN', p_role);
		PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE usesysid = r;
		EXECUTE format('REASSIGN OWNED BY %I TO %I', p_role, c.base_role);
		EXECUTE format('DROP OWNED BY %I', p_role);
		EXECUTE format('DROP ROLE %I', p_role);
	END IF;
	DELETE FROM leadership_credentials WHERE role = p_role;
	INSERT INTO leadership_credentials_log (token, op, role, namespace, pod, pod_uid, valid_until)
		VALUES (tok, 'revoke', p_role, c.namespace, c.pod, c.pod_uid, c.valid_until);
	RETURN coalesce(r, 0);
END $$;
`

// setupLock serializes Setup among replicas that start together: CREATE
// TABLE IF NOT EXISTS is not safe against itself run concurrently.
const setupLock = 7_415_293_001

// ErrStaleToken is the error, wrapped in a *StaleTokenError, of a change
// refused because the database has seen a higher fencing token: a later
// term has begun, so this leader's term is over, whatever it believes.
var ErrStaleToken = errors.New("credentials: fencing token lower than the highest the database has seen")

// StaleTokenError says which change was refused, with which token, and the
// highest token the database had seen.
type StaleTokenError struct {
	Op      string
	Token   uint64
	Highest uint64
}

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("%v: %s with token %d refused, the highest seen is %d: a later term has begun", ErrStaleToken, e.Op, e.Token, e.Highest)
}

func (e *StaleTokenError) Unwrap() error { return ErrStaleToken }

// Store is the workload's PostgreSQL side: login roles, and the tables
// that record them and fence every change.
type Store struct {
	db  *pgxpool.Pool
	log *slog.Logger
}

// NewStore returns a Store on db. logger nil means slog.Default().
func NewStore(db *pgxpool.Pool, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{db: db, log: logger}
}

// Setup creates the store's tables if they are missing. It is idempotent
// and safe to run from every replica at once.
func (s *Store) Setup(ctx context.Context) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("credentials: setup: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(setupLock)); err != nil {
		return fmt.Errorf("credentials: setup: %w", err)
	}
	if _, err := tx.Exec(ctx, schema); err != nil {
		return fmt.Errorf("credentials: setup: creating the tables: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("credentials: setup: %w", err)
	}
	return nil
}

// fenced runs one change: a single statement calling one of the schema's
// functions, each of which first calls leadership_fence_check in the same
// transaction. The check is the server's, in the same round trip as the
// change, so a request that reaches the server after a later term claimed
// is refused however long it was on its way.
func (s *Store) fenced(ctx context.Context, token uint64, op string, sql string, args []any, dest ...any) error {
	if token == 0 || token > math.MaxInt64 {
		return fmt.Errorf("credentials: %s: fencing token %d out of range (1 to %d)", op, token, int64(math.MaxInt64))
	}
	args = append([]any{int64(token)}, args...)
	var err error
	if len(dest) == 0 {
		_, err = s.db.Exec(ctx, sql, args...)
	} else {
		err = s.db.QueryRow(ctx, sql, args...).Scan(dest...)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == codeStale {
		highest, _ := strconv.ParseUint(pe.Detail, 10, 64)
		s.log.Warn("refused a change from a stale term", "op", op, "token", token, "highest", highest)
		return &StaleTokenError{Op: op, Token: token, Highest: highest}
	}
	if err != nil {
		return fmt.Errorf("credentials: %s: %w", op, err)
	}
	return nil
}

// codeStale is the SQLSTATE leadership_fence_check raises on a stale token.
const codeStale = "LF001"

// Claim raises the fence to token, so that every change of an earlier term
// is refused from now on. A new leader claims before anything else. It
// fails with a *StaleTokenError if a later term has already claimed.
func (s *Store) Claim(ctx context.Context, token uint64) error {
	return s.fenced(ctx, token, "claim", `SELECT leadership_claim($1)`, nil)
}

// Stats are the store's figures.
type Stats struct {
	// Changes committed, by kind, counted from the log.
	Claims, Issued, Rotated, Renewed, Revoked int64
	// Refused counts transactions refused for a stale fencing token.
	Refused int64
	// HighestToken is the fence: the highest token seen.
	HighestToken uint64
	// Live is the number of credentials issued and not revoked;
	// MinValidity the smallest time left until one of them expires
	// (negative if one has), by the database's clock.
	Live        int64
	MinValidity time.Duration
}

// Stats reads the store's figures.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var highest int64
	var minValid *time.Duration
	err := s.db.QueryRow(ctx, `
		SELECT
			count(*) FILTER (WHERE op = 'claim'),
			count(*) FILTER (WHERE op = 'issue'),
			count(*) FILTER (WHERE op = 'rotate'),
			count(*) FILTER (WHERE op = 'renew'),
			count(*) FILTER (WHERE op = 'revoke'),
			(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM leadership_fence_refusals),
			(SELECT token FROM leadership_fence WHERE name = $1),
			(SELECT count(*) FROM leadership_credentials),
			(SELECT min(r.rolvaliduntil - now()) FROM leadership_credentials c JOIN pg_roles r ON r.rolname = c.role)
		FROM leadership_credentials_log`, FenceName).Scan(
		&st.Claims, &st.Issued, &st.Rotated, &st.Renewed, &st.Revoked, &st.Refused, &highest, &st.Live, &minValid)
	if err != nil {
		return Stats{}, fmt.Errorf("credentials: stats: %w", err)
	}
	st.HighestToken = uint64(highest)
	if minValid != nil {
		st.MinValidity = *minValid
	}
	return st, nil
}

// credential is a row of CredentialsTable.
type credential struct {
	Role, Namespace, Pod, UID, BaseRole string
	PasswordSHA256                      string
	ValidUntil                          time.Time
}

func (s *Store) list(ctx context.Context, namespace string) ([]credential, error) {
	rows, err := s.db.Query(ctx, `SELECT role, namespace, pod, pod_uid, base_role, password_sha256, valid_until FROM leadership_credentials WHERE namespace = $1 ORDER BY role`, namespace)
	if err != nil {
		return nil, fmt.Errorf("credentials: listing credentials: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (credential, error) {
		var c credential
		err := r.Scan(&c.Role, &c.Namespace, &c.Pod, &c.UID, &c.BaseRole, &c.PasswordSHA256, &c.ValidUntil)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: listing credentials: %w", err)
	}
	return out, nil
}

// lookup returns the record of role, or nil: a read that decides whether a
// change is needed at all.
func (s *Store) lookup(ctx context.Context, role string) (*credential, error) {
	var c credential
	err := s.db.QueryRow(ctx, `SELECT role, namespace, pod, pod_uid, base_role, password_sha256, valid_until FROM leadership_credentials WHERE role = $1`, role).Scan(
		&c.Role, &c.Namespace, &c.Pod, &c.UID, &c.BaseRole, &c.PasswordSHA256, &c.ValidUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: reading the credential of role %s: %w", role, err)
	}
	return &c, nil
}

func newPassword() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func passwordHash(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(sum[:])
}

// ensure makes sure the credential c (Role, Namespace, Pod, UID, BaseRole
// set) exists and that current, the password the pod's Secret holds, is its
// password. It returns the password the Secret must hold, and whether it
// differs from current: a new role gets a new password; an existing role
// whose password the Secret does not hold (the Secret was lost, or written
// by a term that lost) gets a new one too, since only its hash is kept.
func (s *Store) ensure(ctx context.Context, token uint64, c credential, current string, ttl time.Duration) (password string, changed bool, err error) {
	currentHash := ""
	if current != "" {
		currentHash = passwordHash(current)
	}
	pw := newPassword()
	var outcome string
	err = s.fenced(ctx, token, "issue", `SELECT leadership_issue($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		[]any{c.Role, c.Namespace, c.Pod, c.UID, c.BaseRole, currentHash, pw, ttl.Seconds()}, &outcome)
	if err != nil {
		return "", false, err
	}
	if outcome == "unchanged" {
		return current, false, nil
	}
	return pw, true, nil
}

// renew extends the validity of role to now + ttl. It reports false if the
// role has no credential (revoked meanwhile).
func (s *Store) renew(ctx context.Context, token uint64, role string, ttl time.Duration) (bool, error) {
	var found bool
	err := s.fenced(ctx, token, "renew", `SELECT leadership_renew($1, $2, $3)`, []any{role, ttl.Seconds()}, &found)
	return found, err
}

// revoke ends the credential of role: NOLOGIN, its sessions terminated, its
// objects handed to the base role, the role dropped, the record deleted and
// the revocation logged, all in one fenced statement. It reports false,
// and changes nothing, if the role has no credential: revoking twice is a
// no-op, so a revocation is logged exactly once whoever retries it.
func (s *Store) revoke(ctx context.Context, token uint64, role string) (bool, error) {
	var oid *uint32
	if err := s.fenced(ctx, token, "revoke", `SELECT leadership_revoke($1, $2)`, []any{role}, &oid); err != nil {
		return false, err
	}
	if oid == nil {
		return false, nil
	}
	if *oid != 0 {
		// A session that logged in between the terminate and the commit,
		// while the role could still log in, is ended now. Not a change to
		// fence: the role no longer exists.
		if _, err := s.db.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usesysid = $1`, *oid); err != nil {
			s.log.Warn("could not terminate the sessions of a revoked role", "role", role, "error", err)
		}
	}
	return true, nil
}
