package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// chartValues is the example values file of the chart's mode (run or
// sidecar), which the tests lint and render.
func chartValues(mode string) string {
	return filepath.Join(root, "deploy", "helm", "leadership", "ci", mode+"-values.yaml")
}

func chartDir() string { return filepath.Join(root, "deploy", "helm", "leadership") }

// TestChartVersionIsVERSION: the chart's version and appVersion are the
// repository's VERSION, and the image the chart runs by default is the
// project's image of that version.
func TestChartVersionIsVERSION(t *testing.T) {
	v, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(v))
	b, err := os.ReadFile(filepath.Join(chartDir(), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.Version != version || chart.AppVersion != version {
		t.Errorf("Chart.yaml has version %q and appVersion %q; VERSION says %q: set both to it", chart.Version, chart.AppVersion, version)
	}
	for _, mode := range []string{"run", "sidecar"} {
		out := helm(t, "template", "r", chartDir(), "--values", chartValues(mode), "--show-only", "templates/deployment.yaml")
		if want := `image: "ghcr.io/leadership-dev/leadership:` + version + `"`; !bytes.Contains(out, []byte(want)) {
			t.Errorf("mode %s: the rendered Deployment lacks %s:\n%s", mode, want, out)
		}
	}
}

// helmFails runs the pinned helm and returns its error output; the test
// fails if helm succeeds.
func helmFails(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(goTool(), append([]string{"-C", filepath.Join(root, "tools"), "tool", "helm"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helm %s: want a failure, got %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestChartRejectsBadValues: values.schema.json and the templates refuse
// bad values, saying which value and what is expected.
func TestChartRejectsBadValues(t *testing.T) {
	for _, c := range []struct {
		mode string
		set  []string
		says string
	}{
		{"run", []string{"lease.duration=-5s"}, "at '/lease/duration': '-5s' does not match pattern '^(expected a whole number of seconds, at least 1s"},
		{"run", []string{"lease.duration=1500ms"}, "at '/lease/duration': '1500ms' does not match pattern '^(expected a whole number of seconds"},
		{"run", []string{"lease.duration=0s"}, "at '/lease/duration': '0s' does not match"},
		{"run", []string{"lease.name="}, "at '/lease/name': minLength: got 0, want 1"},
		{"run", []string{"lease.name=Bad_Name"}, "at '/lease/name': 'Bad_Name' does not match pattern '^(expected a DNS subdomain"},
		{"run", []string{"mode=leader"}, "at '/mode': value must be one of 'run', 'sidecar'"},
		{"run", []string{"replicas=0"}, "at '/replicas': minimum: got 0, want 1"},
		{"run", []string{"grace=-1s"}, "at '/grace': '-1s' does not match pattern '^(expected a positive duration"},
		{"run", []string{"logFormat=xml"}, "at '/logFormat': value must be one of 'text', 'json'"},
		{"run", []string{"httpPort=70000"}, "at '/httpPort': maximum: got 70,000, want 65,535"},
		{"run", []string{"replica=3"}, "additional properties 'replica' not allowed"},
		{"run", []string{"app.image.repository="}, "at '/app/image/repository': minLength: got 0, want 1"},
		{"run", []string{"app.command={}"}, "at '/app/command/0': minLength: got 0, want 1"},
		{"run", []string{"app.command=null"}, "at '/app': missing property 'command'"},
		{"sidecar", []string{"every=10s"}, "every, grace and exitWithChild belong to mode run"},
		{"sidecar", []string{"labelPod.enabled=false"}, "labelPod.service.enabled needs labelPod.enabled"},
		{"sidecar", []string{"lease.name=" + strings.Repeat("a", 57)}, "labelPod.enabled needs lease.name of at most 56 characters"},
	} {
		args := []string{"template", "r", chartDir(), "--values", chartValues(c.mode)}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		out := helmFails(t, args...)
		if !strings.Contains(out, c.says) {
			t.Errorf("mode %s, --set %s: helm says\n%s\nwant it to say %q", c.mode, strings.Join(c.set, " "), out, c.says)
		}
	}
	// Without the example values: no Lease name, no application.
	out := helmFails(t, "template", "r", chartDir())
	for _, want := range []string{"at '/lease/name': minLength: got 0, want 1", "at '/app/image/repository': minLength: got 0, want 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the chart's own defaults: helm says\n%s\nwant it to say %q", out, want)
		}
	}
	t.Logf("what a user sees for a negative lease duration:\n%s", helmFails(t, "template", "r", chartDir(), "--values", chartValues("run"), "--set", "lease.duration=-5s"))
}

// TestChartPodRBACOnlyWithLabelPod: the Role grants pods only when
// labelPod is on.
func TestChartPodRBACOnlyWithLabelPod(t *testing.T) {
	nsName := "x"
	_, rl, _ := renderRBAC(t, "no-label", nsName, "l")
	for _, r := range rl.Rules {
		for _, res := range r.Resources {
			if res == "pods" {
				t.Errorf("the Role grants %v on pods without labelPod", r.Verbs)
			}
		}
	}
	_, rl, _ = renderRBAC(t, "label", nsName, "l", "labelPod.enabled=true")
	found := false
	for _, r := range rl.Rules {
		if len(r.Resources) == 1 && r.Resources[0] == "pods" && strings.Join(r.Verbs, ",") == "get,list,patch" {
			found = true
		}
	}
	if !found {
		t.Errorf("with labelPod the Role lacks get, list, patch on pods: %+v", rl.Rules)
	}
}

// renderedObjects renders the chart and decodes every object.
func renderedObjects(t *testing.T, release, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out := helm(t, append([]string{"template", release, chartDir(), "--namespace", namespace}, args...)...)
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLReader(bufioReader(out))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("decode rendered manifest: %v\n%s", err, doc)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
	return objs
}

// warnings collects the API server's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// dryRunner creates objects with a server-side dry run.
type dryRunner struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	warn   *warnings
}

func newDryRunner(t *testing.T) *dryRunner {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config)
	w := &warnings{}
	cfg.WarningHandlerWithContext = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &dryRunner{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), warn: w}
}

// create dry-runs the creation of u; the error is the API server's verdict.
func (d *dryRunner) create(u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	_, err = d.dyn.Resource(m.Resource).Namespace(u.GetNamespace()).Create(context.Background(), u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
	return err
}

// TestChartServerSideDryRun renders the chart in each mode and has the
// real API server validate every object (a server-side dry run with strict
// field validation): each is accepted, without a warning.
func TestChartServerSideDryRun(t *testing.T) {
	d := newDryRunner(t)
	for _, c := range []struct {
		name string
		args []string
		want []string // kinds
	}{
		{"run", []string{"--values", chartValues("run")}, []string{"ServiceAccount", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget"}},
		{"run-labelpod-every", []string{"--values", chartValues("run"), "--set", "labelPod.enabled=true,labelPod.service.enabled=true,every=10m,grace=2s,logFormat=text,events=false,lease.renewInterval=4s"},
			[]string{"ServiceAccount", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget", "Service"}},
		{"sidecar", []string{"--values", chartValues("sidecar")}, []string{"ServiceAccount", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget", "Service"}},
		{"sidecar-not-native", []string{"--values", chartValues("sidecar"), "--set", "sidecar.native=false,rbac.create=false,serviceAccount.create=false,podDisruptionBudget.enabled=false"}, []string{"Deployment", "Service"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			nsName := namespace(t)
			objs := renderedObjects(t, "dry", nsName, c.args...)
			var kinds []string
			for _, u := range objs {
				kinds = append(kinds, u.GetKind())
				if err := d.create(u); err != nil {
					t.Errorf("the API server refuses %s %s: %v", u.GetKind(), u.GetName(), err)
				}
				if w := d.warn.take(); len(w) > 0 {
					t.Errorf("the API server warns about %s %s: %q", u.GetKind(), u.GetName(), w)
				}
			}
			sort.Strings(kinds)
			sort.Strings(c.want)
			if strings.Join(kinds, ",") != strings.Join(c.want, ",") {
				t.Errorf("rendered kinds %v, want %v", kinds, c.want)
			}
			// A dry run persists nothing.
			if ds, err := admin(t).AppsV1().Deployments(nsName).List(context.Background(), metav1.ListOptions{}); err != nil || len(ds.Items) != 0 {
				t.Errorf("the dry run left Deployments: %v %v", ds, err)
			}
		})
	}
	// The dry run does judge: a broken object is refused.
	t.Run("broken-is-refused", func(t *testing.T) {
		nsName := namespace(t)
		for _, u := range renderedObjects(t, "dry", nsName, "--values", chartValues("run")) {
			if u.GetKind() != "Deployment" {
				continue
			}
			cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			cs[0].(map[string]any)["image"] = ""
			if err := unstructured.SetNestedSlice(u.Object, cs, "spec", "template", "spec", "containers"); err != nil {
				t.Fatal(err)
			}
			err := d.create(u)
			if err == nil || !strings.Contains(err.Error(), "image") {
				t.Errorf("a Deployment whose container has no image: %v; want a refusal naming the image", err)
			}
		}
	})
}
