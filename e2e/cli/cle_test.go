package cli

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	coordinationv1beta1 "k8s.io/api/coordination/v1beta1"
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

// TestInTreeCoordinatorAndOurElectors: Kubernetes' own coordinator
// (OldestEmulationVersion, run by the API server under the feature gate)
// with LeaseCandidates named after our replicas — what a user would get by
// announcing them. It prefers the candidate with the older emulation
// version; the leader is the other one. The coordinator writes
// spec.preferredHolder, our leader hands over, and the preferred replica
// ends up leading — through our own acquisition, or, when the coordinator
// writes the holder itself after the release, by taking that record over
// once its lease has run out. Then the two agree: the coordinator's
// requeues (every 5s) change nothing for two of them.
func TestInTreeCoordinatorAndOurElectors(t *testing.T) {
	nsName := namespace(t)
	lease := "renewer"
	strategy := coordinationv1.OldestEmulationVersion
	_, err := admin(t).CoordinationV1().Leases(nsName).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: lease, Namespace: nsName},
		Spec:       coordinationv1.LeaseSpec{Strategy: &strategy},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leases := admin(t).CoordinationV1().Leases(nsName)
	get := func() *coordinationv1.Lease {
		l, err := leases.Get(context.Background(), lease, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		procs[id] = start(t, id, "serve", "-n", nsName, "--lease", lease, "--identity", id, "--lease-duration", "3s", "--http-addr", "127.0.0.1:0")
	}
	var first string
	e2etest.Eventually(t, time.Minute, "a leader", func() bool {
		first = e2etest.HolderOf(get())
		return first != "" && strings.Contains(procs[first].stderr.String(), "became leader")
	})
	other := map[string]string{"a": "b", "b": "a"}[first]

	// The candidates, and their answers to the coordinator's pings, as
	// client-go's LeaseCandidate would give them.
	lcs := admin(t).CoordinationV1beta1().LeaseCandidates(nsName)
	now := metav1.NewMicroTime(time.Now())
	for id, ev := range map[string]string{first: "1.37.0", other: "1.36.0"} {
		_, err := lcs.Create(context.Background(), &coordinationv1beta1.LeaseCandidate{
			ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: nsName},
			Spec: coordinationv1beta1.LeaseCandidateSpec{LeaseName: lease, RenewTime: &now,
				BinaryVersion: "1.37.0", EmulationVersion: ev, Strategy: strategy},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create LeaseCandidate %s: %v", id, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			list, err := lcs.List(ctx, metav1.ListOptions{})
			if err == nil {
				for _, c := range list.Items {
					if c.Spec.PingTime != nil && (c.Spec.RenewTime == nil || c.Spec.RenewTime.Before(c.Spec.PingTime)) {
						n := metav1.NewMicroTime(time.Now())
						c.Spec.RenewTime = &n
						_, _ = lcs.Update(ctx, &c, metav1.UpdateOptions{})
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	e2etest.Eventually(t, 2*time.Minute, other+", the coordinator's choice, leading", func() bool {
		l := get()
		return e2etest.HolderOf(l) == other && l.Annotations[kubelease.AnnotationToken] != "" &&
			strings.Contains(procs[other].stderr.String(), "became leader")
	})
	if !strings.Contains(procs[first].stderr.String(), "successor="+other) {
		t.Errorf("%s did not hand over on the coordinator's request:\n%s", first, procs[first].stderr.String())
	}
	settled := get()
	token := settled.Annotations[kubelease.AnnotationToken]
	deadline := time.Now().Add(11 * time.Second) // two requeues of the coordinator
	for time.Now().Before(deadline) {
		l := get()
		if e2etest.HolderOf(l) != other || l.Annotations[kubelease.AnnotationToken] != token || l.Spec.PreferredHolder != nil {
			t.Fatalf("the coordinator and our replicas disagree: holder %q token %s preferredHolder %s (settled on %s, token %s)",
				e2etest.HolderOf(l), l.Annotations[kubelease.AnnotationToken], ptrString(l.Spec.PreferredHolder), other, token)
		}
		if strategyOf(l) != string(strategy) {
			t.Fatalf("strategy %q", strategyOf(l))
		}
		time.Sleep(100 * time.Millisecond) // sampling the Lease, not waiting for a condition
	}
	t.Logf("%s (was leader):\n%s\n%s (the coordinator's choice):\n%s", first, procs[first].stderr.String(), other, procs[other].stderr.String())
}
