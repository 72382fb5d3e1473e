package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// helm runs the helm pinned in tools/go.mod.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(goTool(), append([]string{"-C", filepath.Join(root, "tools"), "tool", "helm"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// renderRBAC renders the chart's ServiceAccount, Role and RoleBinding for
// release in namespace with the Lease lease.
// Each of sets is a --set for the chart.
func renderRBAC(t *testing.T, release, namespace, lease string, sets ...string) (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding) {
	t.Helper()
	args := []string{"template", release, filepath.Join(root, "deploy", "helm", "leadership"),
		"--namespace", namespace, "--values", chartValues("run"), "--set", "lease.name=" + lease,
		"--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out := helm(t, args...)
	var (
		sa *corev1.ServiceAccount
		rl *rbacv1.Role
		rb *rbacv1.RoleBinding
	)
	dec := utilyaml.NewYAMLReader(bufioReader(out))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || !bytes.Contains(doc, []byte("kind:")) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decode rendered manifest: %v\n%s", err, doc)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			sa = o
		case *rbacv1.Role:
			rl = o
		case *rbacv1.RoleBinding:
			rb = o
		}
	}
	if sa == nil || rl == nil || rb == nil {
		t.Fatalf("the chart rendered no ServiceAccount, Role and RoleBinding:\n%s", out)
	}
	return sa, rl, rb
}

// apply creates the objects as the admin and returns a kubeconfig that
// authenticates as the ServiceAccount, with a token from TokenRequest.
func apply(t *testing.T, sa *corev1.ServiceAccount, rl *rbacv1.Role, rb *rbacv1.RoleBinding) string {
	t.Helper()
	ctx := context.Background()
	cs := admin(t)
	if _, err := cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().Roles(rl.Namespace).Create(ctx, rl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(rb.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s: %v", sa.Name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cp"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "cp", AuthInfo: "sa", Namespace: sa.Namespace}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), sa.Name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func namespace(t *testing.T) string {
	t.Helper()
	name := e2etest.LeaseName(t)
	_, err := admin(t).CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// TestChartRBACSuffices renders the chart's RBAC, applies it to the API
// server (authorization mode RBAC), and runs `leadership run` as the
// chart's ServiceAccount: it leads, renews, records Events, and releases.
func TestChartRBACSuffices(t *testing.T) {
	nsName := namespace(t)
	lease := "renewer"
	sa, rl, rb := renderRBAC(t, "rbac-ok", nsName, lease)
	kc := apply(t, sa, rl, rb)
	out := filepath.Join(t.TempDir(), "out")
	p := start(t, "sa", "run", "--kubeconfig", kc, "--lease", lease, "--lease-duration", "3s", "--grace", "300ms", "--",
		"sh", "-c", `echo "$LEADERSHIP_NAMESPACE $LEADERSHIP_TOKEN" >> `+out+`; exec sleep 600`)
	e2etest.Eventually(t, time.Minute, "the ServiceAccount's replica to lead", func() bool {
		b, _ := os.ReadFile(out)
		return strings.HasPrefix(string(b), nsName+" ")
	})
	// Several renewals (and the watch) go through.
	l0, _ := admin(t).CoordinationV1().Leases(nsName).Get(context.Background(), lease, metav1.GetOptions{})
	e2etest.Eventually(t, time.Minute, "renewals", func() bool {
		l, err := admin(t).CoordinationV1().Leases(nsName).Get(context.Background(), lease, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(l0.Spec.RenewTime.Time) && l.Annotations["leadership.dev/token"] != ""
	})
	e2etest.Eventually(t, time.Minute, "an Acquired event written as the ServiceAccount", func() bool {
		evs, err := admin(t).EventsV1().Events(nsName).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Reason == "Acquired" && e.Regarding.Name == lease {
				return true
			}
		}
		return false
	})
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	l, err := admin(t).CoordinationV1().Leases(nsName).Get(context.Background(), lease, metav1.GetOptions{})
	if err != nil || e2etest.HolderOf(l) != "" {
		t.Fatalf("Lease not released: %v %q", err, e2etest.HolderOf(l))
	}
	for _, bad := range []string{"forbidden", "may not", "permission denied", "cannot record"} {
		if strings.Contains(p.stderr.String(), bad) {
			t.Errorf("the replica complained (%q) although the chart's RBAC should suffice:\n%s", bad, p.stderr.String())
		}
	}
}

// TestRoleMissingVerb: with a verb taken out of the chart's Role, the
// replica says which verb on which resource to grant.
func TestRoleMissingVerb(t *testing.T) {
	for _, verb := range []string{"update", "create", "get"} {
		t.Run(verb, func(t *testing.T) {
			nsName := namespace(t)
			lease := "renewer"
			sa, rl, rb := renderRBAC(t, "rbac-no-"+verb, nsName, lease)
			var rules []rbacv1.PolicyRule
			for _, r := range rl.Rules {
				var keep []string
				for _, v := range r.Verbs {
					if v != verb {
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
			if verb == "update" {
				// The Lease exists (released), so acquiring it is an update.
				h, d := "", int32(1)
				_, err := admin(t).CoordinationV1().Leases(nsName).Create(context.Background(), leaseObject(nsName, lease, h, d), metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
			}
			p := start(t, "sa", "run", "--kubeconfig", kc, "--lease", lease, "--lease-duration", "3s", "--grace", "300ms", "--", "sleep", "600")
			want := `may not ` + verb + ` Lease ` + nsName + `/` + lease + `: grant the verb \"` + verb + `\" on resource leases (API group coordination.k8s.io)`
			e2etest.Eventually(t, time.Minute, "the error naming the verb and the resource", func() bool {
				return strings.Contains(p.stderr.String(), want)
			})
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t, time.Minute); code != 0 {
				t.Errorf("exit %d after SIGTERM", code)
			}
			// What the user sees, for the record.
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.Contains(l, "may not") {
					t.Logf("the user sees: %s", l)
					break
				}
			}
		})
	}
	// A one-shot command as that kind of user: exit code 4 with the verb.
	nsName := namespace(t)
	sa, rl, rb := renderRBAC(t, "rbac-status", nsName, "renewer")
	rl.Rules = rl.Rules[1:] // no get/list/watch/update at all
	kc := apply(t, sa, rl, rb)
	code, _, stderr := run(t, "status", "--kubeconfig", kc, "--lease", "renewer")
	if code != 4 || !strings.Contains(stderr, `grant the verb "get" on resource leases`) {
		t.Errorf("status without get: exit %d, stderr %q; want 4 naming the verb", code, stderr)
	}
}

// TestManifestsUpToDate: deploy/manifests is what deploy/render.sh makes
// of the chart now.
func TestManifestsUpToDate(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join(root, "deploy", "manifests", "leadership.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rendered := helm(t, "template", "leadership", filepath.Join(root, "deploy", "helm", "leadership"), "--namespace", "default",
		"--values", chartValues("run")) // as render.sh
	// render.sh adds a two-line header.
	body := committed
	for range 2 {
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			body = body[i+1:]
		}
	}
	if !bytes.Equal(body, rendered) {
		t.Fatal("deploy/manifests/leadership.yaml is stale: run deploy/render.sh")
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// leaseObject is a Lease as a released elector leaves it.
func leaseObject(namespace, name, holder string, seconds int32) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds},
	}
}
