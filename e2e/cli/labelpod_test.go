package cli

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// createPods creates Pods as a Deployment's would be; without a kubelet
// they stay Pending, which is all a label needs.
func createPods(t *testing.T, namespace string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: n, Labels: map[string]string{"app": "renewer"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
		}
		if _, err := admin(t).CoreV1().Pods(namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// labelled lists the Pods of namespace that carry key=true, by name.
func labelled(t *testing.T, namespace, key string) []string {
	t.Helper()
	pods, err := admin(t).CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: key + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names
}

// TestLabelPodMovesWithLeadership: the leader's Pod carries
// leadership.dev/leader-<lease>=true; the label moves with a graceful
// handover (the old leader takes its own off), and after a kill -9 of the
// leader's `run` (which cannot) the next leader takes the stale label off.
// The replicas run as the chart's ServiceAccount with labelPod enabled, so
// the chart's RBAC is shown to suffice.
func TestLabelPodMovesWithLeadership(t *testing.T) {
	nsName := namespace(t)
	lease := "renewer"
	key := "leadership.dev/leader-" + lease
	sa, rl, rb := renderRBAC(t, "label-pod", nsName, lease, "labelPod.enabled=true")
	kc := apply(t, sa, rl, rb)
	createPods(t, nsName, "pod-a", "pod-b", "pod-c")
	startReplica := func(pod string) *proc {
		return start(t, pod, "run", "--kubeconfig", kc, "--lease", lease, "--identity", pod, "--lease-duration", "2s", "--grace", "300ms",
			"--label-pod", "--pod-name", pod, "--pod-namespace", nsName, "--", "sleep", "600")
	}
	only := func(want string) func() bool {
		return func() bool {
			got := labelled(t, nsName, key)
			return len(got) == 1 && got[0] == want
		}
	}

	a := startReplica("pod-a")
	e2etest.Eventually(t, time.Minute, "pod-a to lead and carry the label alone", func() bool {
		return holderIn(t, nsName, lease) == "pod-a" && only("pod-a")()
	})
	b := startReplica("pod-b")
	// pod-b campaigns as a follower: no label on it while pod-a leads.
	e2etest.Eventually(t, time.Minute, "pod-b to follow", func() bool {
		return strings.Contains(b.stderr.String(), "campaigning")
	})
	if got := labelled(t, nsName, key); len(got) != 1 || got[0] != "pod-a" {
		t.Fatalf("labelled Pods while pod-a leads: %v", got)
	}

	// Graceful: pod-a releases and takes its own label off; pod-b leads.
	a.signal(t, syscall.SIGTERM)
	if code := a.wait(t, time.Minute); code != 0 {
		t.Fatalf("pod-a: exit %d after SIGTERM", code)
	}
	e2etest.Eventually(t, time.Minute, "the label to move to pod-b", func() bool {
		return holderIn(t, nsName, lease) == "pod-b" && only("pod-b")()
	})
	// Usually pod-a takes its label off itself, as its term ends before it
	// releases; pod-b's clean-up may come first. (The last step below checks
	// the self-removal alone.)
	if !strings.Contains(a.stderr.String(), "removed the leader label from this Pod") && !strings.Contains(b.stderr.String(), "from=pod-a") {
		t.Errorf("nobody said they removed pod-a's label:\n%s", a.stderr.String())
	}

	// Crash: kill -9 pod-b's run; its label stays until the next leader
	// takes it off.
	c := startReplica("pod-c")
	e2etest.Eventually(t, time.Minute, "pod-c to follow", func() bool {
		return strings.Contains(c.stderr.String(), "campaigning")
	})
	b.signal(t, syscall.SIGKILL)
	b.wait(t, time.Minute)
	if got := labelled(t, nsName, key); holderIn(t, nsName, lease) == "pod-b" && !contains(got, "pod-b") {
		t.Fatalf("pod-b's label vanished although nobody took over yet: %v", got)
	}
	e2etest.Eventually(t, time.Minute, "pod-c to lead and carry the label alone", func() bool {
		return holderIn(t, nsName, lease) == "pod-c" && only("pod-c")()
	})
	// The log line follows the API call that the label check above saw.
	e2etest.Eventually(t, time.Minute, "pod-c to say it removed pod-b's stale label", func() bool {
		return strings.Contains(c.stderr.String(), "removed the leader label from another Pod") && strings.Contains(c.stderr.String(), "from=pod-b")
	})
	for _, bad := range []string{"forbidden", "cannot label", "cannot update the leader label"} {
		if strings.Contains(c.stderr.String(), bad) {
			t.Errorf("pod-c complained (%q):\n%s", bad, c.stderr.String())
		}
	}
	c.signal(t, syscall.SIGTERM)
	if code := c.wait(t, time.Minute); code != 0 {
		t.Fatalf("pod-c: exit %d after SIGTERM", code)
	}
	// No other replica is left: pod-c took its own label off.
	if got := labelled(t, nsName, key); len(got) != 0 {
		t.Errorf("labelled Pods after the last leader stopped: %v", got)
	}
}

// holderIn is the holder of Lease namespace/name, "" if none.
func holderIn(t *testing.T, namespace, name string) string {
	t.Helper()
	l, err := admin(t).CoordinationV1().Leases(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return e2etest.HolderOf(l)
}

// TestServeLabelPod: `serve --label-pod` (the chart's sidecar mode) labels
// its Pod while it leads and takes the label off when it stops.
func TestServeLabelPod(t *testing.T) {
	nsName := namespace(t)
	lease := "api-writer"
	key := "leadership.dev/leader-" + lease
	sa, rl, rb := renderRBAC(t, "serve-label", nsName, lease, "labelPod.enabled=true")
	kc := apply(t, sa, rl, rb)
	createPods(t, nsName, "api-0")
	t.Setenv("POD_NAME", "api-0") // as the Downward API sets it
	t.Setenv("POD_NAMESPACE", nsName)
	p := start(t, "api-0", "serve", "--kubeconfig", kc, "--lease", lease, "--lease-duration", "2s", "--http-addr", "127.0.0.1:0", "--label-pod")
	e2etest.Eventually(t, time.Minute, "api-0 to lead and carry the label", func() bool {
		got := labelled(t, nsName, key)
		return len(got) == 1 && got[0] == "api-0"
	})
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if got := labelled(t, nsName, key); len(got) != 0 {
		t.Errorf("labelled Pods after serve stopped: %v", got)
	}
}
