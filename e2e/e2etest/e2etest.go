// Package e2etest holds the small helpers every e2e test package needs:
// unique Lease names, clients, polling for a condition, a log buffer that
// goroutines can share, and the judgement of an in-process ledger (see
// packages ledger and checker below it).
package e2etest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership/e2e/e2etest/checker"
	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// LeaseName returns a Lease name unique to the test, so that tests sharing
// one control plane stay out of each other's way.
func LeaseName(t testing.TB) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := strings.ToLower(unsafeChars.ReplaceAllString(t.Name(), "-"))
	if len(n) > 40 {
		n = n[:40]
	}
	return strings.Trim(n, "-") + "-" + hex.EncodeToString(b[:])
}

// Client returns a clientset for cfg with rate limits high enough that the
// client never throttles a test.
func Client(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Condition is what Eventually polls: a func() bool that holds, or a
// func() error that returns nil, once the awaited state is reached; an
// error says what is still missing.
type Condition interface {
	func() bool | func() error
}

// Eventually polls cond until it holds, or fails the test once the
// (generous) timeout has passed, saying what it waited for and, for a
// func() error, cond's last error.
func Eventually[C Condition](t testing.TB, timeout time.Duration, what string, cond C) {
	t.Helper()
	var check func() error
	switch c := any(cond).(type) {
	case func() bool:
		check = func() error {
			if c() {
				return nil
			}
			return errNotYet
		}
	case func() error:
		check = c
	}
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errNotYet {
				t.Fatalf("timed out after %v waiting for: %s", timeout, what)
			}
			t.Fatalf("timed out after %v waiting for: %s: last error: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errNotYet is a func() bool condition that does not hold yet.
var errNotYet = errors.New("not yet")

// CheckLedger judges what the in-process candidates recorded in l by the
// checker's definitions (the chaos suite's), fails the test on every
// problem it finds (overlapping lead intervals, writes refused outside a
// frozen process, overlapping accepted work, stale writes accepted, tokens
// that did not increase, misreported intervals) and if nothing was
// recorded, and returns the report.
func CheckLedger(t testing.TB, l *ledger.Local) checker.Report {
	t.Helper()
	r := checker.Check(l.History())
	for _, p := range r.Problems() {
		t.Error(p)
	}
	if len(r.Intervals) == 0 {
		t.Error("no leader work was recorded")
	}
	return r
}

// HolderOf returns the Lease's holder identity, "" if none.
func HolderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// SyncBuffer is a bytes.Buffer that several goroutines may write.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
