package cli

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/kubelease"
)

// updateLease applies change to the Lease with a compare-and-swap, again on
// a conflict (the holder renews meanwhile), as an external writer would.
func updateLease(t *testing.T, name string, change func(*coordinationv1.Lease)) {
	t.Helper()
	leases := admin(t).CoordinationV1().Leases(ns)
	for range 50 {
		l := getLease(t, name)
		change(l)
		_, err := leases.Update(context.Background(), l, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("update Lease %s: %v", name, err)
		}
	}
	t.Fatalf("update Lease %s: conflicts all along", name)
}

func strategyOf(l *coordinationv1.Lease) string {
	if l.Spec.Strategy == nil {
		return ""
	}
	return string(*l.Spec.Strategy)
}

// TestCoordinatedLeaderElectionFields: on a Lease that Coordinated Leader
// Election manages (spec.strategy set; the API server runs with the feature
// gate and the beta API, see TestMain), our replicas acquire, renew, hand
// over and release without dropping spec.strategy or anything else they do
// not own; a spec.preferredHolder written as a coordinator writes it is
// honoured like a handover request, and cleared by the successor's
// acquisition, after which a handover through the annotation works again.
// The in-tree coordinator's own strategy (it does nothing without
// LeaseCandidates) and a third-party one.
func TestCoordinatedLeaderElectionFields(t *testing.T) {
	for _, strategy := range []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion, "example.com/external-coordinator"} {
		t.Run(strings.ReplaceAll(string(strategy), "/", "_"), func(t *testing.T) {
			lease := e2etest.LeaseName(t)
			_, err := admin(t).CoordinationV1().Leases(ns).Create(context.Background(), &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: lease, Namespace: ns,
					Labels: map[string]string{"team": "payments"}, Annotations: map[string]string{"example.com/owner": "coordinator"}},
				Spec: coordinationv1.LeaseSpec{Strategy: &strategy},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create a Lease with strategy %s (is the CoordinatedLeaderElection gate on?): %v", strategy, err)
			}
			if s := strategyOf(getLease(t, lease)); s != string(strategy) {
				t.Fatalf("the API server dropped spec.strategy (%q): the feature gate is off", s)
			}
			kept := func(what string) {
				t.Helper()
				l := getLease(t, lease)
				if strategyOf(l) != string(strategy) || l.Labels["team"] != "payments" || l.Annotations["example.com/owner"] != "coordinator" {
					t.Fatalf("%s: fields we do not own changed: strategy %q, labels %v, annotations %v", what, strategyOf(l), l.Labels, l.Annotations)
				}
			}

			procs, _ := serveReplicas(t, lease, "a", "b")
			first := e2etest.HolderOf(getLease(t, lease))
			other := map[string]string{"a": "b", "b": "a"}[first]
			kept("acquired")
			code, out, _ := run(t, "status", "--lease", lease, "-o", "json")
			if code != 0 || !strings.Contains(out, `"strategy": "`+string(strategy)+`"`) {
				t.Errorf("status -o json does not show the strategy: exit %d\n%s", code, out)
			}
			code, out, _ = run(t, "status", "--lease", lease, "-o", "wide")
			if code != 0 || !strings.Contains(out, "STRATEGY") || !strings.Contains(out, string(strategy)) {
				t.Errorf("status -o wide does not show the strategy: exit %d\n%s", code, out)
			}

			// A renewal: same holder and acquire time, later renew time.
			l0 := getLease(t, lease)
			e2etest.Eventually(t, time.Minute, "a renewal", func() bool {
				l := getLease(t, lease)
				return e2etest.HolderOf(l) == first && l.Spec.AcquireTime.Equal(l0.Spec.AcquireTime) && l.Spec.RenewTime.After(l0.Spec.RenewTime.Time)
			})
			kept("renewed")

			// The coordinator asks for the other replica.
			updateLease(t, lease, func(l *coordinationv1.Lease) { l.Spec.PreferredHolder = &other })
			e2etest.Eventually(t, time.Minute, other+" holding the Lease", func() bool {
				return e2etest.HolderOf(getLease(t, lease)) == other
			})
			kept("handed over on spec.preferredHolder")
			// The request is fulfilled: the successor's acquisition (or, in
			// any case, its first renewal) clears it.
			e2etest.Eventually(t, time.Minute, "a renewal by "+other, func() bool {
				l := getLease(t, lease)
				return e2etest.HolderOf(l) == other && l.Annotations[kubelease.AnnotationToken] != ""
			})
			if l := getLease(t, lease); l.Spec.PreferredHolder != nil || l.Annotations[kubelease.AnnotationPreferredHolder] != "" {
				t.Fatalf("the fulfilled request is still on the Lease: spec.preferredHolder %v, annotation %q", ptrString(l.Spec.PreferredHolder), l.Annotations[kubelease.AnnotationPreferredHolder])
			}
			if !strings.Contains(procs[first].stderr.String(), "handover requested") {
				t.Errorf("%s did not log the handover request", first)
			}

			// A handover through the annotation, back to the first.
			code, out, errOut := run(t, "handover", "--lease", lease, "--to", first)
			if code != 0 || !strings.Contains(out, "handed over from "+other+" to "+first) {
				t.Fatalf("handover --to %s: exit %d, stdout %q, stderr %q", first, code, out, errOut)
			}
			kept("handed over by the command")

			// Release: the follower stops first, so that nobody takes the
			// released Lease before it is read.
			procs[other].signal(t, syscall.SIGTERM)
			procs[other].wait(t, time.Minute)
			procs[first].signal(t, syscall.SIGTERM)
			if code := procs[first].wait(t, time.Minute); code != 0 {
				t.Fatalf("%s exited %d", first, code)
			}
			l := getLease(t, lease)
			if e2etest.HolderOf(l) != "" || l.Annotations[kubelease.AnnotationReleased] == "" {
				t.Fatalf("not released: holder %q, annotations %v", e2etest.HolderOf(l), l.Annotations)
			}
			kept("released")
		})
	}
}

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
