package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/kubelease"
)

type leaderJSON struct {
	Name     string  `json:"name"`
	Self     string  `json:"self"`
	Leader   bool    `json:"leader"`
	Token    uint64  `json:"token"`
	ValidFor float64 `json:"validForSeconds"`
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serveReplicas starts n `leadership serve` sidecars on one Lease and
// returns them with their HTTP addresses, once one leads.
func serveReplicas(t *testing.T, lease string, ids ...string) (map[string]*proc, map[string]string) {
	procs, addrs := map[string]*proc{}, map[string]string{}
	for _, id := range ids {
		procs[id] = start(t, id, "serve", "--lease", lease, "--identity", id, "--lease-duration", "3s", "--http-addr", "127.0.0.1:0")
	}
	for _, id := range ids {
		addrs[id] = procs[id].httpAddr(t)
	}
	// Not just a holder on the Lease: a created Lease is held a lease
	// duration before its creator, or another replica, leads on it.
	e2etest.Eventually(t, time.Minute, "a leader", func() bool {
		h := holderNow(t, lease)
		if addr, ok := addrs[h]; ok {
			var l leaderJSON
			getJSON(t, "http://"+addr+"/leader", &l)
			return l.Leader && l.Name == h
		}
		return false
	})
	return procs, addrs
}

func TestServeEndpoints(t *testing.T) {
	lease := e2etest.LeaseName(t)
	_, addrs := serveReplicas(t, lease, "a", "b")
	holder := e2etest.HolderOf(getLease(t, lease))
	// The holder publishes its token with its first renewal.
	e2etest.Eventually(t, time.Minute, "the token published on the Lease", func() bool {
		return getLease(t, lease).Annotations[kubelease.AnnotationToken] != ""
	})
	var l leaderJSON
	e2etest.Eventually(t, time.Minute, "the holder's token on /leader", func() bool {
		getJSON(t, "http://"+addrs["a"]+"/leader", &l)
		return l.Token != 0
	})
	if l.Name != holder || l.Self != "a" || l.Leader != (holder == "a") {
		t.Errorf("/leader on a = %+v; holder is %s", l, holder)
	}
	if want := getLease(t, lease).Annotations[kubelease.AnnotationToken]; strconv.FormatUint(l.Token, 10) != want {
		t.Errorf("/leader token %d, the Lease's token annotation %s", l.Token, want)
	}
	var hl leaderJSON
	getJSON(t, "http://"+addrs[holder]+"/leader", &hl)
	if !hl.Leader || hl.ValidFor <= 0 || hl.ValidFor > 3 {
		t.Errorf("/leader on the holder = %+v: want the remaining validity, in (0, 3] seconds", hl)
	}
	for _, id := range []string{"a", "b"} {
		if code, body := getText(t, "http://"+addrs[id]+"/healthz"); code != 200 {
			t.Errorf("%s /healthz = %d %s", id, code, body)
		}
		if code, body := getText(t, "http://"+addrs[id]+"/readyz"); code != 200 {
			t.Errorf("%s /readyz = %d %s", id, code, body)
		}
	}
	_, metrics := getText(t, "http://"+addrs[holder]+"/metrics")
	for _, want := range []string{
		`leadership_is_leader{lease="` + lease + `",namespace="default"} 1`,
		`leadership_acquire_attempts_total{lease="` + lease + `",namespace="default",result="success"} 1`,
		`leadership_api_requests_total{code="200",lease="` + lease + `",namespace="default",verb="update"}`,
		`leadership_renew_duration_seconds_count{lease="` + lease + `",namespace="default"}`,
		`leadership_validity_remaining_seconds{lease="` + lease + `",namespace="default"}`,
		`leadership_takeover_duration_seconds_count{lease="` + lease + `",namespace="default"} 1`,
		`leadership_token{lease="` + lease + `",namespace="default"} ` + strconv.FormatUint(l.Token, 10),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics of the leader lacks %s", want)
		}
	}
}

func TestHandoverAndStatus(t *testing.T) {
	lease := e2etest.LeaseName(t)
	procs, _ := serveReplicas(t, lease, "a", "b", "c")
	from := e2etest.HolderOf(getLease(t, lease))
	to := "a"
	if from == "a" {
		to = "b"
	}

	code, out, errOut := run(t, "handover", "--lease", lease, "--to", to)
	if code != 0 || !strings.Contains(out, "handed over from "+from+" to "+to) {
		t.Fatalf("handover --to %s: exit %d, stdout %q, stderr %q", to, code, out, errOut)
	}
	if h := e2etest.HolderOf(getLease(t, lease)); h != to {
		t.Fatalf("holder %q after handover to %s", h, to)
	}

	// To anyone else.
	code, out, errOut = run(t, "handover", "--lease", lease)
	if code != 0 || strings.Contains(out, "to "+to+" ") {
		t.Fatalf("handover to any: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Forced to a replica that does not exist (without --force the probe
	// refuses it: TestHandoverRefusedToAbsentReplica): fails, says so,
	// withdraws.
	code, _, errOut = run(t, "handover", "--lease", lease, "--to", "nobody", "--force", "--timeout", "20s")
	// Either another replica or the old holder takes the Lease once the
	// head start of the missing one is over.
	if code != 1 || !strings.Contains(errOut, "nobody did not take it") || !strings.Contains(errOut, "withdrawn") {
		t.Fatalf("handover to a missing replica: exit %d, stderr %q", code, errOut)
	}
	e2etest.Eventually(t, time.Minute, "a holder without a pending request", func() bool {
		l := getLease(t, lease)
		return e2etest.HolderOf(l) != "" && l.Annotations[kubelease.AnnotationPreferredHolder] == ""
	})

	// status, table and JSON.
	code, out, _ = run(t, "status", "--lease", lease)
	now := e2etest.HolderOf(getLease(t, lease))
	if code != 0 || !strings.Contains(out, "HOLDER") || !strings.Contains(out, now) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "status", "--lease", lease, "-o", "json")
	var st struct {
		Name        string `json:"name"`
		Holder      string `json:"holder"`
		Token       uint64 `json:"token"`
		Transitions int32  `json:"transitions"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status -o json: exit %d, %v\n%s", code, err, out)
	}
	if st.Name != lease || st.Holder == "" || st.Transitions < 3 {
		t.Errorf("status -o json = %+v; want holder set and at least 3 transitions", st)
	}
	code, out, _ = run(t, "status", "--all", "-o", "json")
	if code != 0 || !strings.Contains(out, `"name": "`+lease+`"`) {
		t.Errorf("status --all -o json: exit %d\n%s", code, out)
	}
	// -A, as in kubectl: every namespace, with a NAMESPACE column.
	code, out, _ = run(t, "status", "-A")
	if code != 0 || !strings.Contains(out, "NAMESPACE") || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(ns)+`\s+`+regexp.QuoteMeta(lease)+`\s`).MatchString(out) {
		t.Errorf("status -A: exit %d; want a NAMESPACE column and a row %q %q\n%s", code, ns, lease, out)
	}

	// Events on the Lease, from the holders' hooks.
	e2etest.Eventually(t, time.Minute, "Acquired, HandedOver and Released events on the Lease", func() bool {
		evs, err := admin(t).EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range evs.Items {
			if e.Regarding.Name == lease && e.Regarding.Kind == "Lease" && e.Regarding.UID != "" {
				seen[e.Reason] = true
			}
		}
		return seen["Acquired"] && seen["HandedOver"] && seen["Released"]
	})

	for _, p := range procs {
		p.signal(t, syscall.SIGTERM)
	}
	for id, p := range procs {
		if code := p.wait(t, time.Minute); code != 0 {
			t.Errorf("serve %s exited %d after SIGTERM", id, code)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"status", "--lease", "no-such-lease"}, 3, `no Lease "no-such-lease" in namespace "default"`},
		{[]string{"status", "--lease", "x", "-n", "no-such-namespace"}, 3, `namespace "no-such-namespace" does not exist`},
		{[]string{"handover", "--lease", "no-such-lease"}, 3, `no Lease "no-such-lease"`},
		{[]string{"status", "--lease", "x", "--kubeconfig", "/nonexistent/kubeconfig"}, 2, `cannot read --kubeconfig`},
		{[]string{"run", "--lease", "x"}, 2, "no command to run"},
		{[]string{"run", "--lease", "x", "--every", "10", "--", "true"}, 2, "durations take a unit"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("leadership %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(c.args, " "), code, stderr, c.code, c.says)
		}
	}
}

// TestEverySurvivesFailover: with --every, runs are at least the period
// apart, also across a failover to a replica that took over sooner than
// the period: the schedule is read from the Lease.
func TestEverySurvivesFailover(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	lease := e2etest.LeaseName(t)
	const every = 4 * time.Second
	// The run's start as recorded on the Lease, which the schedule counts
	// from (the child's own clock reading would add fork-and-exec delays).
	task := `echo "$LEADERSHIP_IDENTITY $LEADERSHIP_EVERY_STARTED" >> ` + runs
	procs := map[string]*proc{}
	for _, id := range []string{"a", "b"} {
		procs[id] = start(t, id, "run", "--lease", lease, "--identity", id, "--lease-duration", "2s", "--every", every.String(), "--", "sh", "-c", task)
	}
	read := func() (who []string, at []time.Time) {
		b, _ := os.ReadFile(runs)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				continue
			}
			ts, err := time.Parse(time.RFC3339Nano, f[1])
			if err != nil {
				t.Fatalf("LEADERSHIP_EVERY_STARTED %q: %v", f[1], err)
			}
			who, at = append(who, f[0]), append(at, ts)
		}
		return who, at
	}
	e2etest.Eventually(t, time.Minute, "the first run", func() bool { w, _ := read(); return len(w) >= 1 })
	who, _ := read()
	leader := who[0]
	// Kill the leader right after its run: the other takes over after the
	// 2s lease, before the 4s period is over, and must wait for it.
	procs[leader].signal(t, syscall.SIGKILL)
	e2etest.Eventually(t, time.Minute, "a run by the other replica", func() bool {
		w, _ := read()
		return len(w) >= 2
	})
	e2etest.Eventually(t, time.Minute, "a second run by the new leader", func() bool {
		w, _ := read()
		return len(w) >= 3
	})
	who, at := read()
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < every {
			t.Errorf("run %d (%s) came %v after run %d (%s); want at least %v", i+1, who[i], gap, i, who[i-1], every)
		}
	}
	if who[1] == leader {
		t.Errorf("the killed leader %s ran again", leader)
	}
	if v := getLease(t, lease).Annotations[kubelease.ValuesPrefix+"every-started"]; v == "" {
		t.Error("no every-started value on the Lease")
	}
}
