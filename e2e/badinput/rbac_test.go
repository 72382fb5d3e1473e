package badinput

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

var allVerbs = []string{"get", "watch", "create", "update"}

// grant gives user the verbs on leases in ns, through a Role and a
// RoleBinding named after the user, creating or replacing the Role.
func grant(t *testing.T, user string, verbs []string) {
	t.Helper()
	ctx := context.Background()
	roles := admin(t).RbacV1().Roles(ns)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: verbs}},
	}
	if old, err := roles.Get(ctx, user, metav1.GetOptions{}); err == nil {
		role.ResourceVersion = old.ResourceVersion
		if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := admin(t).RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// as is the admin config impersonating user, so that RBAC judges user's
// rights.
func as(user string) *rest.Config {
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

func without(verb string) []string {
	return slices.DeleteFunc(slices.Clone(allVerbs), func(v string) bool { return v == verb })
}

// TestRoleMissingVerb runs two candidates as a user whose Role lacks one
// verb. Each case gets the log line that names the verb to grant, never two
// leaders and no work past a term's validity; once the verb is granted the
// candidates recover by themselves, without a restart.
func TestRoleMissingVerb(t *testing.T) {
	cases := []struct {
		name  string
		verbs []string // nil: no Role at all
		// want is a log line naming what to grant.
		want string
		// leads: a leader is elected even without the verb.
		leads bool
		// grantLater: the verb to grant, after which a leader must be
		// elected.
		grantLater []string
	}{
		{name: "all verbs", verbs: allVerbs, leads: true},
		{name: "no watch", verbs: without("watch"), want: `Grant the verb \"watch\"`, leads: true},
		{name: "no get", verbs: without("get"), want: `grant the verb \"get\"`, grantLater: allVerbs},
		{name: "no create", verbs: without("create"), want: `grant the verb \"create\"`, grantLater: allVerbs},
		{name: "no update", verbs: without("update"), want: `grant the verb \"update\"`, grantLater: allVerbs},
		{name: "no role", want: `grant the verb \"get\"`, grantLater: allVerbs},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			name := e2etest.LeaseName(t)
			user := "user-" + name
			if c.verbs != nil {
				grant(t, user, c.verbs)
			}
			log, buf := newLog(t)
			rec := &record{}
			a := startCandidate(t, as(user), name, "cand-0", rec, log)
			startCandidate(t, as(user), name, "cand-1", rec, log)
			if c.want != "" {
				e2etest.Eventually(t, time.Minute, "the log names the missing verb: "+c.want, func() bool { return strings.Contains(buf.String(), c.want) })
			}
			if c.leads {
				e2etest.Eventually(t, time.Minute, "a leader", func() bool { return rec.terms() > 0 })
			}
			if !c.leads && rec.terms() != 0 {
				// Without update, the Lease is created but never led: a
				// create is held a lease duration, then taken by an update.
				t.Errorf("%d terms began without the verb", rec.terms())
			}
			if c.grantLater != nil {
				n := rec.terms()
				grant(t, user, c.grantLater)
				e2etest.Eventually(t, time.Minute, "a leader once the verb is granted", func() bool { return rec.terms() > n })
			}
			if err := a.e.Healthy(); err != nil && !a.e.Leader().Self {
				t.Errorf("a follower reports itself unhealthy: %v", err)
			}
			rec.check(t)
		})
	}
}
