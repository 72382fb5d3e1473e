package credentials

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDirEnv names the directory of initdb and postgres, if not found in
// the usual places; scripts/postgres.sh prints it.
const pgBinDirEnv = "LEADERSHIP_PG_BINDIR"

const pgMissing = "PostgreSQL's server programs (initdb, postgres) were not found. Run ./scripts/postgres.sh, which installs Debian's package 'postgresql' if it is missing and prints their directory (set " + pgBinDirEnv + " to it if they live elsewhere)."

// findPGBinDir looks where Debian installs PostgreSQL (the newest major
// version), then on PATH.
func findPGBinDir() (string, error) {
	ok := func(d string) bool {
		for _, p := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(d, p)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(pgBinDirEnv); d != "" {
		if ok(d) {
			return d, nil
		}
		return "", fmt.Errorf("%s=%s holds no initdb and postgres. %s", pgBinDirEnv, d, pgMissing)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return vi > vj
	})
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(r)) {
			return filepath.Dir(r), nil
		}
	}
	return "", errors.New(pgMissing)
}

// pgServer is a PostgreSQL server of the test's own: a fresh data
// directory, a free port on 127.0.0.1, no Unix socket, password logins.
type pgServer struct {
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// startPG runs initdb and starts postgres as a child of the test process.
// When the tests run as root, both run as the user "postgres": the server
// refuses to run as root.
func startPG(ctx context.Context, bindir string) (*pgServer, error) {
	dir, err := os.MkdirTemp("", "leadership-e2e-pg-")
	if err != nil {
		return nil, err
	}
	s := &pgServer{dir: dir, exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as the user \"postgres\", which does not exist: %w. Run ./scripts/postgres.sh", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	s.password = hex.EncodeToString(b[:])
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "--pwfile="+pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		err := s.launch(ctx, bindir, data, cred)
		if err == nil {
			break
		}
		// Another process may have taken the free port we picked.
		if attempt == 2 || ctx.Err() != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func (s *pgServer) launch(ctx context.Context, bindir, data string, cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bindir, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port), "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir
	// The server dies with the test process, however that ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.port, s.cmd, s.exited = port, cmd, exited
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err == nil {
			_ = c.Close(ctx)
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited at start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("postgres did not accept connections: %w\n%s", err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *pgServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// dsn connects to database db as the superuser.
func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", s.password, s.port, db)
}

// dsnVia connects to database db as the superuser through a proxy on port.
func (s *pgServer) dsnVia(port int, db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", s.password, port, db)
}

// userDSN connects as role with password.
func (s *pgServer) userDSN(role, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=10", role, password, s.port, db)
}

// createDB makes a fresh database for one test and returns its name.
func (s *pgServer) createDB(ctx context.Context, name string) error {
	c, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// stop shuts the server down (fast shutdown, then kill) and removes its
// files.
func (s *pgServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	_ = os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dbName turns a test name into a database name, unique to this run of
// the test (-count=N runs it again on the same server).
func dbName(testName string) string {
	n := strings.ToLower(testName)
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, n)
	if len(n) > 40 {
		n = n[:40]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "t_" + n + "_" + hex.EncodeToString(b[:])
}
