package cli

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/kubelease"
)

var answeredRE = regexp.MustCompile(`msg="the successor answered the probe" .*after=(\S+)`)

// term is what identifies the holder's term on the Lease.
type term struct {
	holder      string
	acquired    time.Time
	transitions int32
}

func termOf(l *coordinationv1.Lease) term {
	tm := term{holder: e2etest.HolderOf(l)}
	if l.Spec.AcquireTime != nil {
		tm.acquired = l.Spec.AcquireTime.Time
	}
	if l.Spec.LeaseTransitions != nil {
		tm.transitions = *l.Spec.LeaseTransitions
	}
	return tm
}

// sameTermRenewed waits for a renewal after now and checks that the term is
// still before's, with the same token: the leader kept leading.
func sameTermRenewed(t *testing.T, lease string, before term, token string, leader *proc) {
	t.Helper()
	after := time.Now()
	e2etest.Eventually(t, time.Minute, "a renewal after the probe", func() bool {
		l := getLease(t, lease)
		return l.Spec.RenewTime != nil && l.Spec.RenewTime.After(after)
	})
	l := getLease(t, lease)
	if got := termOf(l); got != before || l.Annotations[kubelease.AnnotationToken] != token {
		t.Fatalf("the term changed: before %+v token %s, after %+v token %s", before, token, got, l.Annotations[kubelease.AnnotationToken])
	}
	if s := leader.stderr.String(); strings.Count(s, "became leader") != 1 || strings.Contains(s, "term ended") {
		t.Fatalf("the leader's term was interrupted:\n%s", s)
	}
	for _, a := range []string{kubelease.AnnotationPing, kubelease.AnnotationPong, kubelease.AnnotationPreferredHolder} {
		if v, ok := l.Annotations[a]; ok {
			t.Errorf("annotation %s=%q left on the Lease", a, v)
		}
	}
}

// TestHandoverRefusedToAbsentReplica: a handover to a replica that is not a
// live candidate — a name no replica has, and a replica that was kill -9'd
// — is refused at once, and the leader keeps leading: same term, same
// token, no step-down. Before the probe, the leader stepped down for a
// successor that never came.
func TestHandoverRefusedToAbsentReplica(t *testing.T) {
	lease := e2etest.LeaseName(t)
	procs, _ := serveReplicas(t, lease, "a", "b", "c")
	holder := e2etest.HolderOf(getLease(t, lease))
	e2etest.Eventually(t, time.Minute, "the token published", func() bool {
		return getLease(t, lease).Annotations[kubelease.AnnotationToken] != ""
	})
	l := getLease(t, lease)
	before, token := termOf(l), l.Annotations[kubelease.AnnotationToken]

	// A name no replica has (the default --ping-timeout).
	began := time.Now()
	code, _, errOut := run(t, "handover", "--lease", lease, "--to", "nobody")
	t.Logf("refused in %v (the command's whole run, --ping-timeout 5s)", time.Since(began).Round(time.Millisecond))
	if code != 1 || !strings.Contains(errOut, "replica nobody is not a live candidate of Lease default/"+lease) || !strings.Contains(errOut, "keeps leading") {
		t.Fatalf("handover to a name nobody has: exit %d, stderr %q", code, errOut)
	}
	sameTermRenewed(t, lease, before, token, procs[holder])

	// A replica that was killed with SIGKILL: it cannot answer.
	var victim string
	for _, id := range []string{"a", "b", "c"} {
		if id != holder {
			victim = id
			break
		}
	}
	procs[victim].signal(t, syscall.SIGKILL)
	procs[victim].wait(t, time.Minute)
	code, _, errOut = run(t, "handover", "--lease", lease, "--to", victim)
	if code != 1 || !strings.Contains(errOut, "replica "+victim+" is not a live candidate") {
		t.Fatalf("handover to a killed replica: exit %d, stderr %q", code, errOut)
	}
	sameTermRenewed(t, lease, before, token, procs[holder])

	// --force skips the probe, at the price the docs state: the holder steps
	// down, the named replica never comes, the request is withdrawn.
	code, _, errOut = run(t, "handover", "--lease", lease, "--to", victim, "--force", "--timeout", "20s")
	if code != 1 || !strings.Contains(errOut, victim+" did not take it") || !strings.Contains(errOut, "withdrawn") {
		t.Fatalf("forced handover to a killed replica: exit %d, stderr %q", code, errOut)
	}
	e2etest.Eventually(t, time.Minute, "a holder without a pending request", func() bool {
		l := getLease(t, lease)
		return e2etest.HolderOf(l) != "" && l.Annotations[kubelease.AnnotationPreferredHolder] == ""
	})
	if got := termOf(getLease(t, lease)); got == before {
		t.Fatalf("the forced handover left the term as it was: %+v", got)
	}
}

// TestProbeDuringTermKeepsTerm: a probe and its answer written during a
// term change the Lease's metadata only: the leader keeps its term and
// token whether the probe names a follower or itself, and the renewals keep
// the probe until it is removed. Then a handover to the live follower works
// as before, and leaves no probe behind.
func TestProbeDuringTermKeepsTerm(t *testing.T) {
	lease := e2etest.LeaseName(t)
	procs, _ := serveReplicas(t, lease, "a", "b")
	holder := e2etest.HolderOf(getLease(t, lease))
	follower := map[string]string{"a": "b", "b": "a"}[holder]
	e2etest.Eventually(t, time.Minute, "the token published", func() bool {
		return getLease(t, lease).Annotations[kubelease.AnnotationToken] != ""
	})
	l := getLease(t, lease)
	before, token := termOf(l), l.Annotations[kubelease.AnnotationToken]

	for i, target := range []string{follower, holder} {
		ping := target + "/test" + strconv.Itoa(i)
		updateLease(t, lease, func(l *coordinationv1.Lease) { l.Annotations[kubelease.AnnotationPing] = ping })
		e2etest.Eventually(t, time.Minute, target+"'s answer", func() bool {
			return getLease(t, lease).Annotations[kubelease.AnnotationPong] == ping
		})
		// The answer stays through the holder's renewals until removed.
		after := time.Now()
		e2etest.Eventually(t, time.Minute, "a renewal after the answer", func() bool {
			l := getLease(t, lease)
			return l.Spec.RenewTime.After(after)
		})
		l := getLease(t, lease)
		if l.Annotations[kubelease.AnnotationPong] != ping || l.Annotations[kubelease.AnnotationPing] != ping {
			t.Fatalf("the renewal dropped the probe: %v", l.Annotations)
		}
		updateLease(t, lease, func(l *coordinationv1.Lease) {
			delete(l.Annotations, kubelease.AnnotationPing)
			delete(l.Annotations, kubelease.AnnotationPong)
		})
		sameTermRenewed(t, lease, before, token, procs[holder])
	}
	if s := procs[follower].stderr.String(); strings.Contains(s, "became leader") {
		t.Fatalf("the follower led:\n%s", s)
	}

	code, out, errOut := run(t, "handover", "--lease", lease, "--to", follower, "--log-level", "debug")
	if code != 0 || !strings.Contains(out, "handed over from "+holder+" to "+follower) {
		t.Fatalf("handover --to %s: exit %d, stdout %q, stderr %q", follower, code, out, errOut)
	}
	m := answeredRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no answer to the probe logged:\n%s", errOut)
	}
	t.Logf("probe answered by the watching follower in %s; %s", m[1], strings.TrimSpace(out))
	l = getLease(t, lease)
	for _, a := range []string{kubelease.AnnotationPing, kubelease.AnnotationPong} {
		if v, ok := l.Annotations[a]; ok {
			t.Errorf("annotation %s=%q left after the handover", a, v)
		}
	}
}

// TestProbeAnsweredByPollingFollower: replicas that may not watch the Lease
// (the chart's Role without "watch") poll it every retry period — 2s with
// the default 15s lease — and the named one still answers within the
// default --ping-timeout, through the chart's RBAC: the handover goes
// through.
func TestProbeAnsweredByPollingFollower(t *testing.T) {
	nsName := namespace(t)
	lease := "renewer"
	sa, rl, rb := renderRBAC(t, "no-watch", nsName, lease)
	var rules []rbacv1.PolicyRule
	for _, r := range rl.Rules {
		var keep []string
		for _, v := range r.Verbs {
			if v != "watch" {
				keep = append(keep, v)
			}
		}
		if len(keep) > 0 {
			r.Verbs = keep
			rules = append(rules, r)
		}
	}
	rl.Rules = rules
	kc := apply(t, sa, rl, rb)
	// Released by its holder, so that the first replica leads at once
	// instead of after the default 15s lease.
	released := leaseObject(nsName, lease, "", 1)
	released.Annotations = map[string]string{kubelease.AnnotationReleased: "1"}
	if _, err := admin(t).CoordinationV1().Leases(nsName).Create(context.Background(), released, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		procs[id] = start(t, id, "serve", "--kubeconfig", kc, "--lease", lease, "--identity", id, "--http-addr", "127.0.0.1:0")
	}
	leases := admin(t).CoordinationV1().Leases(nsName)
	holder := ""
	e2etest.Eventually(t, time.Minute, "a leader", func() bool {
		l, err := leases.Get(context.Background(), lease, metav1.GetOptions{})
		if err == nil {
			holder = e2etest.HolderOf(l)
		}
		return holder != ""
	})
	follower := map[string]string{"a": "b", "b": "a"}[holder]
	e2etest.Eventually(t, time.Minute, "the follower polling", func() bool {
		return strings.Contains(procs[follower].stderr.String(), "polling it instead")
	})
	code, out, errOut := run(t, "handover", "-n", nsName, "--lease", lease, "--to", follower, "--log-level", "debug")
	if code != 0 || !strings.Contains(out, "handed over from "+holder+" to "+follower) {
		t.Fatalf("handover --to the polling %s: exit %d, stdout %q, stderr %q", follower, code, out, errOut)
	}
	if m := answeredRE.FindStringSubmatch(errOut); m != nil {
		t.Logf("probe answered by the polling follower in %s; %s", m[1], strings.TrimSpace(out))
	}
}
