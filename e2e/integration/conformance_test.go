package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/kubelease"
	"github.com/leadership-dev/leadership/leadershiptest"
)

var conformanceSeq atomic.Int64

// kubelease keeps the Lock contract on a real API server and etcd: the
// same suite the in-memory lock of leadershiptest passes.
func TestKubeleaseConforms(t *testing.T) {
	leadershiptest.TestLock(t, func(t *testing.T) leadershiptest.Subject {
		name := fmt.Sprintf("conformance-%d", conformanceSeq.Add(1))
		cs := admin(t)
		lock, err := kubelease.New(cs.CoordinationV1(), ns, name)
		if err != nil {
			t.Fatal(err)
		}
		return leadershiptest.Subject{Lock: lock, Delete: func(ctx context.Context) error {
			return cs.CoordinationV1().Leases(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}}
	})
}
