package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/kubelease"
)

// TestKubectlPlugin runs `kubectl leadership ...` through a real kubectl,
// built from k8s.io/kubernetes/cmd/kubectl at the version the e2e module
// requires (not whatever kubectl the machine may have), with the
// leadership binary on PATH as kubectl-leadership, as krew installs it. It
// checks kubectl's habits: -n, --context, --kubeconfig, -o json|yaml|wide,
// and completion through kubectl.
func TestKubectlPlugin(t *testing.T) {
	plugins := t.TempDir()
	kubectl := filepath.Join(plugins, "kubectl")
	began := time.Now()
	build := exec.Command(goTool(), "build", "-o", kubectl, "k8s.io/kubernetes/cmd/kubectl")
	build.Dir = filepath.Join(root, "e2e")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl from the e2e module: %v\n%s", err, out)
	}
	t.Logf("built kubectl in %v", time.Since(began).Round(time.Second))
	for _, name := range []string{"kubectl-leadership", "kubectl_complete-leadership"} {
		if err := os.Symlink(bin, filepath.Join(plugins, name)); err != nil {
			t.Fatal(err)
		}
	}

	nsName := namespace(t)
	lease := e2etest.LeaseName(t)
	for _, id := range []string{"a", "b"} {
		start(t, id, "serve", "-n", nsName, "--lease", lease, "--identity", id, "--lease-duration", "3s", "--http-addr", "127.0.0.1:0")
	}

	// A kubeconfig whose current context is a dead cluster, so that only
	// --context reaches the real one; and a context with the namespace.
	kc, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cur := kc.Contexts[kc.CurrentContext]
	kc.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	kc.Contexts["dead"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: cur.AuthInfo}
	kc.Contexts["real"] = &clientcmdapi.Context{Cluster: cur.Cluster, AuthInfo: cur.AuthInfo}
	kc.Contexts["real-ns"] = &clientcmdapi.Context{Cluster: cur.Cluster, AuthInfo: cur.AuthInfo, Namespace: nsName}
	kc.CurrentContext = "dead"
	kubeconfig := filepath.Join(t.TempDir(), "contexts.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	env := []string{
		"PATH=" + plugins + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		// Only --kubeconfig may lead to a cluster.
		"KUBECONFIG=" + filepath.Join(t.TempDir(), "absent"),
	}
	k := func(args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout.String(), stderr.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), stdout.String(), stderr.String()
		}
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		return 0, "", ""
	}

	code, out, errOut := k("plugin", "list")
	if code != 0 || !strings.Contains(out, filepath.Join(plugins, "kubectl-leadership")) {
		t.Fatalf("kubectl plugin list: exit %d\n%s%s", code, out, errOut)
	}

	// A leader, not just a holder: a created Lease is held a lease duration
	// before it is led, and a handover asked meanwhile is voided by the
	// acquisition that follows. The token appears with the first renewal
	// of a term.
	e2etest.Eventually(t, time.Minute, "a leader", func() bool {
		l, err := admin(t).CoordinationV1().Leases(nsName).Get(context.Background(), lease, metav1.GetOptions{})
		return err == nil && e2etest.HolderOf(l) != "" && l.Annotations[kubelease.AnnotationToken] != ""
	})

	// -n and --context, -o json.
	code, out, errOut = k("leadership", "status", "--kubeconfig", kubeconfig, "--context", "real", "-n", nsName, "--lease", lease, "-o", "json")
	var st struct {
		Namespace, Name, Holder string
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Namespace != nsName || st.Name != lease || (st.Holder != "a" && st.Holder != "b") {
		t.Fatalf("kubectl leadership status --context real -n %s -o json: exit %d, %v\n%s%s", nsName, code, err, out, errOut)
	}
	// The namespace of the context when -n is not given.
	code, out, errOut = k("leadership", "status", "--kubeconfig", kubeconfig, "--context", "real-ns", "--lease", lease, "-o", "yaml")
	var sy struct{ Namespace, Holder string }
	if err := yaml.Unmarshal([]byte(out), &sy); code != 0 || err != nil || sy.Namespace != nsName || sy.Holder != st.Holder {
		t.Fatalf("kubectl leadership status --context real-ns -o yaml: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	// Without -n, the context "real" means namespace default: no such Lease.
	code, _, errOut = k("leadership", "status", "--kubeconfig", kubeconfig, "--context", "real", "--lease", lease)
	if code != 3 || !strings.Contains(errOut, `no Lease "`+lease+`" in namespace "default"`) {
		t.Errorf("status in the wrong namespace: exit %d, %q", code, errOut)
	}
	// The current context is the dead cluster: --context was what mattered.
	code, _, errOut = k("leadership", "status", "--kubeconfig", kubeconfig, "-n", nsName, "--lease", lease)
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("status against the current (dead) context: exit %d, %q", code, errOut)
	}
	// -o wide, --all.
	code, out, errOut = k("leadership", "status", "--kubeconfig", kubeconfig, "--context", "real", "-n", nsName, "--all", "-o", "wide")
	if code != 0 || !strings.Contains(out, "DURATION") || !strings.Contains(out, "ACQUIRED") || !strings.Contains(out, lease) || !strings.Contains(out, "3s") {
		t.Errorf("status --all -o wide: exit %d\n%s%s", code, out, errOut)
	}

	// handover -o json: the other replica takes over.
	code, out, errOut = k("leadership", "handover", "--kubeconfig", kubeconfig, "--context", "real-ns", "--lease", lease, "-o", "json")
	var hr struct {
		Namespace, Lease, From, To string
		Token                      uint64
	}
	if err := json.Unmarshal([]byte(out), &hr); code != 0 || err != nil || hr.Namespace != nsName || hr.From != st.Holder || hr.To == st.Holder || hr.To == "" || hr.Token == 0 {
		t.Fatalf("kubectl leadership handover -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if l, err := admin(t).CoordinationV1().Leases(nsName).Get(context.Background(), lease, metav1.GetOptions{}); err != nil || e2etest.HolderOf(l) != hr.To {
		t.Errorf("Lease after handover to %s: %v, %v", hr.To, l, err)
	}

	// Help and errors speak of "kubectl leadership".
	code, out, _ = k("leadership", "status", "--help")
	if code != 0 || !strings.Contains(out, "kubectl leadership status [") {
		t.Errorf("kubectl leadership status --help: exit %d\n%s", code, out)
	}
	code, _, errOut = k("leadership", "status", "-o", "xml", "--lease", lease)
	if code != 2 || !strings.HasPrefix(errOut, "kubectl leadership: invalid -o") {
		t.Errorf("kubectl leadership status -o xml: exit %d, %q", code, errOut)
	}

	// Completion: kubectl asks kubectl_complete-leadership.
	code, out, errOut = k("__complete", "leadership", "st")
	if code != 0 || !strings.Contains(out, "status") {
		t.Errorf("kubectl __complete leadership st: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = k("leadership", "version")
	if code != 0 || !strings.Contains(out, "Version:") {
		t.Errorf("kubectl leadership version: exit %d\n%s", code, out)
	}
}
