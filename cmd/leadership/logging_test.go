package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// apiWithWarning is an API server that answers a Lease GET with a Warning
// header, which client-go's default warning handler logs through klog.
func apiWithWarning(t *testing.T, warning string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/leases/x") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Warning", `299 - "`+warning+`"`)
		_, _ = w.Write([]byte(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"x","namespace":"default"},"spec":{"holderIdentity":"pod-a","leaseDurationSeconds":15}}`))
	}))
	t.Cleanup(srv.Close)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: srv.URL}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "default"}
	kc.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestClientGoLogsJoinTheStream: a line that client-go itself logs (the
// API server's Warning header, through klog) comes out in the command's
// --log-format, so a JSON log stream holds only JSON lines.
func TestClientGoLogsJoinTheStream(t *testing.T) {
	const warning = "leases of this kind are deprecated, test warning"
	kc := apiWithWarning(t, warning)
	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := execute(context.Background(), []string{"status", "--kubeconfig", kc, "--lease", "x", "--log-format", "json"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		found := false
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			if line == "" {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("not a JSON line on stderr: %q", line)
				continue
			}
			if rec["msg"] == "Warning: "+warning {
				found = true
			}
		}
		if !found {
			t.Errorf("client-go's warning is not in the JSON log stream:\n%s", stderr.String())
		}
	})
	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := execute(context.Background(), []string{"status", "--kubeconfig", kc, "--lease", "x"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if want := `level=INFO msg="Warning: ` + warning + `"`; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	})
}

// --label-pod without a Pod to label says what to set.
func TestLabelPodUsage(t *testing.T) {
	kc := apiWithWarning(t, "unused")
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"serve", "--lease", "x", "--label-pod"}, "--label-pod needs this replica's Pod name: set POD_NAME"},
		{[]string{"serve", "--lease", "x", "--pod-name", "p"}, "--pod-name and --pod-namespace only go with --label-pod"},
		{[]string{"serve", "--lease", "x", "--label-pod", "--pod-name", "p", "--pod-namespace", "default"}, `no Pod "p" in namespace "default" to label`},
		{[]string{"serve", "--lease", strings.Repeat("x", 57), "--label-pod", "--pod-name", "p", "--pod-namespace", "default"}, "Lease names of at most 56 characters can label Pods"},
	} {
		var stdout, stderr bytes.Buffer
		args := append(c.args, "--kubeconfig", kc, "--http-addr", "127.0.0.1:0")
		code := execute(context.Background(), args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("leadership %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(c.args, " "), code, stderr.String(), exitUsage, c.says)
		}
	}
}

// copy-to leaves an executable copy of the binary, runnable by any user.
func TestCopyTo(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := execute(context.Background(), []string{"copy-to", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	dst := filepath.Join(dir, "leadership")
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	want, _ := os.ReadFile(exe)
	got, _ := os.ReadFile(dst)
	if fi.Mode().Perm() != 0o755 || !bytes.Equal(got, want) {
		t.Errorf("copy: mode %v, %d bytes (want 0755, %d bytes, identical)", fi.Mode().Perm(), len(got), len(want))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if code := execute(context.Background(), []string{"copy-to", filepath.Join(dir, "no", "such")}, &stdout, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "is it a writable volume") {
		t.Errorf("copy-to a missing directory: exit %d, %q", code, stderr.String())
	}
}
