package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"

	"k8s.io/apiserver/pkg/storage/storagebackend"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// apiServer is one run of kube-apiserver; RestartAPIServer replaces it.
type apiServer struct {
	ts     kubeapiservertesting.TestServer
	tb     *serverTB
	cancel context.CancelFunc
	// addr is where this run listens (host:port); it changes on every run.
	addr string
	// servingCA verifies the serving certificate. StartTestServer loads it
	// from a fixture, so it is the same for every run.
	servingCA []byte
}

type startResult struct {
	ts  kubeapiservertesting.TestServer
	err error
}

// startAPIServer starts kube-apiserver on etcdURL. If ctx ends first it
// returns at once and leaves the half-started server to shut itself down in
// the background, registered in bg, because StartTestServer cannot be
// interrupted. Callers must wait for bg before closing etcd.
func startAPIServer(ctx context.Context, bg *sync.WaitGroup, etcdURL, prefix string, flags []string, logf func(string, ...any)) (*apiServer, error) {
	// Do not leave a server starting in the background for nothing.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	tb := &serverTB{logf: logf}
	// The server's lifetime is the control plane's, not the caller's ctx.
	sctx, cancel := context.WithCancel(context.Background())
	tctx := ktesting.InitCtx(sctx, tb)

	storage := storagebackend.NewDefaultConfig(prefix, nil)
	storage.Transport.ServerList = []string{etcdURL}
	instance := &kubeapiservertesting.TestServerInstanceOptions{
		// The invariant checks scrape metrics on teardown and report to a
		// test; there is no test to report to here.
		DisableInvariantChecks: true,
	}

	done := make(chan startResult, 1)
	go func() {
		var res startResult
		returned := false
		defer func() {
			// Reached without returned when tb.FailNow ended this goroutine.
			if !returned {
				res.err = errors.New("kube-apiserver start aborted")
			}
			done <- res
		}()
		ts, err := kubeapiservertesting.StartTestServer(tctx, instance, flags, storage)
		res, returned = startResult{ts: ts, err: err}, true
	}()

	finish := func(res startResult) (*apiServer, error) {
		s := &apiServer{ts: res.ts, tb: tb, cancel: cancel}
		if res.err != nil {
			// StartTestServer has torn down what it started.
			s.ts.TearDownFn = nil
			s.stop()
			return nil, withTBErrors(fmt.Errorf("start kube-apiserver: %w", res.err), tb)
		}
		var err error
		if s.addr, err = hostPort(res.ts.ClientConfig.Host); err == nil {
			s.servingCA, err = servingCA(res.ts)
		}
		if err != nil {
			s.stop()
			return nil, err
		}
		return s, nil
	}

	select {
	case res := <-done:
		return finish(res)
	case <-ctx.Done():
		bg.Add(1)
		go func() {
			defer bg.Done()
			if s, err := finish(<-done); err == nil {
				s.stop()
			}
		}()
		return nil, fmt.Errorf("start kube-apiserver: %w", ctx.Err())
	}
}

// stop tears the server down and waits for it. Teardown runs on its own
// goroutine because a failing serverTB ends the calling goroutine.
func (s *apiServer) stop() {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if s.ts.TearDownFn != nil {
			s.ts.TearDownFn()
		}
	}()
	<-finished
	s.tb.runCleanups()
	s.cancel()
	if errs := s.tb.takeErrors(); len(errs) > 0 && s.tb.logf != nil {
		s.tb.logf("kube-apiserver teardown: %s", strings.Join(errs, "; "))
	}
}

func hostPort(host string) (string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Errorf("kube-apiserver address %q: %w", host, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("kube-apiserver address %q has no host", host)
	}
	return u.Host, nil
}

// servingCA reads the serving certificate chain the server actually uses, so
// that our clients verify it by name (127.0.0.1) instead of using the
// loopback client's private SNI name and in-memory CA, which change per run.
func servingCA(ts kubeapiservertesting.TestServer) ([]byte, error) {
	if ts.ServerOpts == nil || ts.ServerOpts.SecureServing == nil {
		return nil, errors.New("kube-apiserver: no secure serving options")
	}
	file := ts.ServerOpts.SecureServing.ServerCert.CertKey.CertFile
	if file == "" {
		return nil, errors.New("kube-apiserver: serving certificate is not on disk")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver serving certificate: %w", err)
	}
	return data, nil
}

func withTBErrors(err error, tb *serverTB) error {
	if errs := tb.takeErrors(); len(errs) > 0 {
		return fmt.Errorf("%w (%s)", err, strings.Join(errs, "; "))
	}
	return err
}

// serverTB stands in for *testing.T: StartTestServer wants a test handle, but
// the control plane is started from TestMain and outlives every test. Errors
// are collected for the caller instead of failing a test; FailNow ends the
// calling goroutine as testing.T does, which startAPIServer expects.
type serverTB struct {
	logf func(string, ...any)

	mu       sync.Mutex
	failed   bool
	skipped  bool
	errs     []string
	cleanups []func()
}

var _ ktesting.TB = (*serverTB)(nil)

func (t *serverTB) Attr(key, value string) {}

func (t *serverTB) Chdir(dir string) {
	// Changing the process's working directory would affect every test.
	t.Fatalf("controlplane: Chdir(%q) is not supported", dir)
}

func (t *serverTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *serverTB) runCleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()

		finished := make(chan struct{})
		go func() { defer close(finished); f() }()
		<-finished
	}
}

func (t *serverTB) Error(args ...any) { t.record(strings.TrimSpace(fmt.Sprintln(args...))) }

func (t *serverTB) Errorf(format string, args ...any) { t.record(fmt.Sprintf(format, args...)) }

func (t *serverTB) record(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
	t.errs = append(t.errs, msg)
}

func (t *serverTB) takeErrors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	errs := t.errs
	t.errs = nil
	return errs
}

func (t *serverTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *serverTB) FailNow() {
	t.Fail()
	runtime.Goexit()
}

func (t *serverTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *serverTB) Fatal(args ...any) {
	t.Error(args...)
	t.FailNow()
}

func (t *serverTB) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	t.FailNow()
}

func (t *serverTB) Helper() {}

func (t *serverTB) Log(args ...any) {
	if t.logf != nil {
		t.logf("%s", strings.TrimSpace(fmt.Sprintln(args...)))
	}
}

func (t *serverTB) Logf(format string, args ...any) {
	if t.logf != nil {
		t.logf(format, args...)
	}
}

func (t *serverTB) Name() string { return "controlplane" }

func (t *serverTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		t.Fatalf("controlplane: Setenv(%q): %v", key, err)
	}
	t.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}

func (t *serverTB) Skip(args ...any) {
	t.Log(args...)
	t.SkipNow()
}

func (t *serverTB) Skipf(format string, args ...any) {
	t.Logf(format, args...)
	t.SkipNow()
}

func (t *serverTB) SkipNow() {
	t.mu.Lock()
	t.skipped = true
	t.errs = append(t.errs, "skipped")
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *serverTB) Skipped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped
}

func (t *serverTB) TempDir() string {
	dir, err := os.MkdirTemp("", "leadership-e2e-apiserver-")
	if err != nil {
		t.Fatalf("controlplane: TempDir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
