// Package e2etest holds the small helpers every e2e test package needs:
// unique Lease names, clients, polling for a condition, and a log buffer
// that goroutines can share.
package e2etest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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

// Eventually polls cond until it holds, or fails the test once the
// (generous) timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
