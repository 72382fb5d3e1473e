package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/leadership-dev/leadership"
)

// Bad input is refused before any connection, with exit code 2 and a
// message that says what to do.
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"run", "--lease", "x"}, "no command to run: give it after --"},
		{[]string{"run", "--lease", "x", "sleep", "1"}, "put the command after --"},
		{[]string{"run", "--", "true"}, "--lease is required"},
		{[]string{"run", "--lease", "Not_A_Name", "--", "true"}, `invalid --lease "Not_A_Name"`},
		{[]string{"run", "--lease", "x", "--lease-duration", "abc", "--", "true"}, "durations take a unit"},
		{[]string{"run", "--lease", "x", "--lease-duration", "1500ms", "--", "true"}, "invalid --lease-duration 1.5s: must be a whole number of seconds"},
		{[]string{"run", "--lease", "x", "--renew-interval", "10s", "--", "true"}, "invalid --renew-interval 10s"},
		{[]string{"run", "--lease", "x", "--grace", "10s", "--", "true"}, "--grace 10s is too long for --lease-duration 15s"},
		{[]string{"run", "--lease", "x", "--grace", "-1s", "--", "true"}, "must not be negative"},
		{[]string{"run", "--lease", "x", "--lease-duration", "1s", "--grace", "1s", "--", "true"}, "--grace 1s is too long for --lease-duration 1s"},
		{[]string{"run", "--lease", "x", "--every", "100ms", "--", "true"}, "invalid --every"},
		{[]string{"run", "--lease", "x", "--every", "1m", "--exit-with-child", "--", "true"}, "--exit-with-child does not go with --every"},
		{[]string{"run", "--lease", "x", "--", "no-such-command-here"}, `cannot run "no-such-command-here"`},
		{[]string{"run", "--lease", "x", "--containment", "box", "--", "true"}, `invalid --containment "box": use auto, cgroup or tree`},
		{[]string{"run", "--lease", "x", "--identity", " padded", "--", "true"}, "invalid --identity"},
		{[]string{"run", "--lease", "x", "--restart-proof-dir", "/", "--pod-uid", "u", "--", "true"}, "--restart-proof-dir needs a stable --identity"},
		{[]string{"run", "--lease", "x", "--identity", "p", "--restart-proof-dir", "relative", "--pod-uid", "u", "--", "true"}, `invalid --restart-proof-dir "relative": must be an absolute path`},
		{[]string{"run", "--lease", "x", "--identity", "p", "--restart-proof-dir", "/", "--pod-uid", "", "--", "true"}, "invalid --pod-uid"},
		{[]string{"run", "--lease", "x", "--identity", "p", "--restart-proof-dir", "/no-such-dir-for-leadership", "--pod-uid", "u", "--", "true"}, "invalid --restart-proof-dir \"/no-such-dir-for-leadership\": must be an existing directory"},
		{[]string{"serve", "--lease", "x", "--identity", "p", "--restart-proof-dir", "/", "--pod-uid", "u", "--restart-delay", "20s"}, "invalid --restart-delay 20s"},
		{[]string{"serve", "--lease", "x", "--restart-min-term", "-5s"}, "invalid --restart-min-term -5s"},
		{[]string{"status"}, "--lease NAME or --all is required"},
		{[]string{"status", "--lease", "x", "--all"}, "either --lease NAME or --all"},
		{[]string{"status", "-A", "--all"}, "either --all (one namespace) or -A/--all-namespaces"},
		{[]string{"status", "-A", "--lease", "x"}, "either --lease NAME or -A/--all-namespaces"},
		{[]string{"status", "--lease", "x", "-o", "xml"}, `invalid -o "xml": use table, wide, json or yaml`},
		{[]string{"handover"}, "--lease is required"},
		{[]string{"handover", "--lease", "x", "--timeout", "0s"}, "invalid --timeout"},
		{[]string{"handover", "--lease", "x", "-o", "xml"}, `invalid -o "xml": use text, json or yaml`},
		{[]string{"handover", "--lease", "x", "--to", "b", "--ping-timeout", "0s"}, "invalid --ping-timeout"},
		{[]string{"handover", "--lease", "x", "--force"}, "without --to there is nothing to check"},
		{[]string{"handover", "--lease", "x", "--to", "b", "--force", "--ping-timeout", "9s"}, "--ping-timeout has no effect"},
		{[]string{"serve", "--lease", "x", "--http-addr", ""}, "serve needs --http-addr"},
		{[]string{"status", "--lease", "x", "--log-format", "xml"}, `invalid --log-format "xml"`},
		{[]string{"status", "--lease", "x", "--kubeconfig", "/nonexistent"}, "cannot read --kubeconfig"},
		{[]string{"status", "--lease", "x", "-n", "Bad_NS", "--kubeconfig", "/dev/null"}, `invalid namespace "Bad_NS"`},
		{[]string{"no-such-command"}, "unknown command"},
		{[]string{"status", "--no-such-flag"}, "unknown flag"},
	} {
		var stdout, stderr bytes.Buffer
		code := execute(context.Background(), c.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("leadership %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(c.args, " "), code, stderr.String(), exitUsage, c.says)
		}
	}
}

func TestHelpHasExamplesAndExitCodes(t *testing.T) {
	for _, sub := range []string{"run", "serve", "status", "handover"} {
		var stdout, stderr bytes.Buffer
		if code := execute(context.Background(), []string{sub, "--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s --help: exit %d", sub, code)
		}
		for _, want := range []string{"Examples:", "Exit codes:", "leadership " + sub} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s --help lacks %q", sub, want)
			}
		}
	}
	var stdout bytes.Buffer
	execute(context.Background(), []string{"run", "--help"}, &stdout, &stdout)
	for _, want := range []string{"SIGKILL", "--grace", "SIGSTOP", "LEADERSHIP_TOKEN"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run --help does not explain %s", want)
		}
	}
}

func TestNextRun(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	every := 10 * time.Minute
	for _, c := range []struct {
		name string
		last time.Time
		r    float64
		want time.Time
	}{
		{"never ran", time.Time{}, 0.5, now},
		{"ran long ago", now.Add(-time.Hour), 0, now.Add(-50 * time.Minute)},
		{"ran recently, no jitter", now.Add(-time.Minute), 0, now.Add(9 * time.Minute)},
		{"ran recently, most jitter", now.Add(-time.Minute), 0.999999, now.Add(10 * time.Minute)},
		{"clock ahead of ours", now.Add(time.Hour), 0, now.Add(10 * time.Minute)},
	} {
		got := nextRun(c.last, every, now, c.r)
		if d := got.Sub(c.want); d < -time.Second || d > time.Second {
			t.Errorf("%s: next run %v, want %v", c.name, got, c.want)
		}
	}
	if last, by := lastRun(map[string]string{keyStarted: "2026-01-01T11:59:00.5Z", keyBy: "a"}); by != "a" || last.IsZero() {
		t.Errorf("lastRun = %v %q", last, by)
	}
	if last, _ := lastRun(map[string]string{keyStarted: "garbage"}); !last.IsZero() {
		t.Errorf("an unreadable record must count as none, got %v", last)
	}
}

func TestMaxGraceDefaults(t *testing.T) {
	for _, ld := range []time.Duration{2 * time.Second, 3 * time.Second, 15 * time.Second, time.Minute} {
		cfg, err := validated(leadership.Config{Identity: "x", LeaseDuration: ld})
		if err != nil {
			t.Fatal(err)
		}
		if g := maxGrace(cfg); g < ld/4 {
			t.Errorf("lease %v: max grace %v leaves the default grace little room", ld, g)
		}
	}
}
