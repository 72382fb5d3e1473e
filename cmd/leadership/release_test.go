package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func run(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := execute(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("leadership %s: exit %d, stderr %q", strings.Join(args, " "), code, errb.String())
	}
	return out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	text, _ := run(t, "version")
	for _, want := range []string{"Version:", "Commit:", "Date:", "Go version: " + runtime.Version(), "Platform:   " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(text, want) {
			t.Errorf("version prints %q, lacking %q", text, want)
		}
	}
	// A test binary carries no release stamp: it must not claim one.
	if !strings.Contains(text, "(devel)") {
		t.Errorf("an unstamped build should say (devel): %q", text)
	}

	js, _ := run(t, "version", "-o", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, js)
	}
	for _, k := range []string{"version", "commit", "date", "goVersion", "platform"} {
		if s, _ := v[k].(string); s == "" {
			t.Errorf("version -o json: %q missing or empty in %s", k, js)
		}
	}
	ys, _ := run(t, "version", "-o", "yaml")
	var vy map[string]any
	if err := yaml.Unmarshal([]byte(ys), &vy); err != nil || vy["goVersion"] != runtime.Version() {
		t.Errorf("version -o yaml: %v, %q", err, ys)
	}

	flag, _ := run(t, "--version")
	if !strings.HasPrefix(flag, "leadership (devel) (commit ") || !strings.Contains(flag, runtime.Version()) {
		t.Errorf("--version prints %q", flag)
	}

	var out, errb bytes.Buffer
	if code := execute(context.Background(), []string{"version", "-o", "wide"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), `invalid -o "wide": use text, json or yaml`) {
		t.Errorf("version -o wide: exit %d, %q", code, errb.String())
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "__start_leadership",
		"zsh":        "#compdef leadership",
		"fish":       "complete -c leadership",
		"powershell": "Register-ArgumentCompleter",
	} {
		out, _ := run(t, "completion", shell)
		if !strings.Contains(out, want) {
			t.Errorf("completion %s lacks %q; starts %q", shell, want, out[:min(len(out), 200)])
		}
	}
	// Visible in help.
	help, _ := run(t, "--help")
	if !strings.Contains(help, "completion") || !strings.Contains(help, "version") {
		t.Errorf("--help does not list completion and version:\n%s", help)
	}
	// What the bash script asks for: the subcommands of the tree.
	out, _ := run(t, "__complete", "st")
	if !strings.Contains(out, "status") {
		t.Errorf("__complete st: %q", out)
	}
}

// One man page per command that --help shows, each naming its command.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	run(t, "man", "--dir", dir)
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	root.InitDefaultCompletionCmd()
	var want []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		want = append(want, c.CommandPath())
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				walk(sub)
			}
		}
	}
	walk(root)
	for _, must := range []string{"leadership run", "leadership status", "leadership handover", "leadership version", "leadership completion bash"} {
		found := false
		for _, w := range want {
			found = found || w == must
		}
		if !found {
			t.Errorf("command tree lacks %q (has %v)", must, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("%d man pages for %d commands", len(entries), len(want))
	}
	for _, path := range want {
		file := filepath.Join(dir, strings.ReplaceAll(path, " ", "-")+".1")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("no man page for %q: %v", path, err)
			continue
		}
		page := string(b)
		dashed := strings.ReplaceAll(path, " ", "-")
		if !strings.Contains(page, `.TH "`+strings.ToUpper(dashed)+`" "1"`) || !strings.Contains(page, ".SH NAME\n"+dashed+" - ") {
			t.Errorf("%s is not the page of %q:\n%s", file, path, page[:min(len(page), 300)])
		}
	}
	var out, errb bytes.Buffer
	if code := execute(context.Background(), []string{"man"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--dir is required") {
		t.Errorf("man without --dir: exit %d, %q", code, errb.String())
	}
}

func TestPluginInvocation(t *testing.T) {
	for _, c := range []struct {
		argv0    string
		args     []string
		wantName string
		wantArgs []string
	}{
		{"/usr/local/bin/leadership", []string{"status"}, "leadership", []string{"status"}},
		{"/home/u/.krew/bin/kubectl-leadership", []string{"status", "-n", "x"}, "kubectl leadership", []string{"status", "-n", "x"}},
		{"kubectl-leadership.exe", nil, "kubectl leadership", nil},
		{"kubectl_complete-leadership", []string{"st"}, "kubectl leadership", []string{"__complete", "st"}},
	} {
		name, args := invocation(c.argv0, c.args)
		if name != c.wantName || strings.Join(args, " ") != strings.Join(c.wantArgs, " ") {
			t.Errorf("invocation(%q, %q) = %q, %q; want %q, %q", c.argv0, c.args, name, args, c.wantName, c.wantArgs)
		}
	}
	// Help and errors speak of "kubectl leadership".
	var out, errb bytes.Buffer
	if code := executeAs(context.Background(), "kubectl leadership", []string{"status", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "kubectl leadership status [") {
		t.Errorf("status --help as a plugin: exit %d, %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	if code := executeAs(context.Background(), "kubectl leadership", []string{"status"}, &out, &errb); code != exitUsage || !strings.HasPrefix(errb.String(), "kubectl leadership: ") || !strings.Contains(errb.String(), "Run 'kubectl leadership status --help'") {
		t.Errorf("status as a plugin without --lease: exit %d, %q", code, errb.String())
	}
}
