package podlabel

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/leadership-dev/leadership"
)

func TestKey(t *testing.T) {
	if k, err := Key("renewer"); err != nil || k != "leadership.dev/leader-renewer" {
		t.Errorf("Key(renewer) = %q, %v", k, err)
	}
	if _, err := Key(strings.Repeat("a", MaxLeaseName)); err != nil {
		t.Errorf("a %d-character Lease name: %v", MaxLeaseName, err)
	}
	_, err := Key(strings.Repeat("a", MaxLeaseName+1))
	if err == nil || !strings.Contains(err.Error(), "at most 56 characters") {
		t.Errorf("a %d-character Lease name: %v; want an error naming the limit", MaxLeaseName+1, err)
	}
}

func pod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: labels}}
}

func labelsOf(t *testing.T, cs *fake.Clientset, name string) map[string]string {
	t.Helper()
	p, err := cs.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Labels
}

// The label follows the terms: on with an acquisition (and off the Pod of a
// previous leader that left it), off at the end of the term; other labels
// and other Leases' labels stay. In a synctest bubble: synctest.Wait returns
// once the labeler has done all it will do until time passes.
func TestLabelFollowsTerms(t *testing.T) { synctest.Test(t, testLabelFollowsTerms) }

func testLabelFollowsTerms(t *testing.T) {
	key := "leadership.dev/leader-renewer"
	other := "leadership.dev/leader-other"
	cs := fake.NewClientset(
		pod("a", map[string]string{"app": "x", key: Value}), // left by a crashed process of this Pod
		pod("b", map[string]string{"app": "x", key: Value, other: Value}),
		pod("c", map[string]string{"app": "x"}),
	)
	l, err := New(Options{Client: cs, Namespace: "ns", Pod: "a", Lease: "renewer", RetryPeriod: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	if v := labelsOf(t, cs, "a")[key]; v != "" {
		t.Fatalf("the label left by a crashed process is still on this Pod before it leads: %q", v)
	}
	h := l.Hooks()
	h.OnAcquire(leadership.Term{}, "b", time.Second)
	synctest.Wait()
	if a, b := labelsOf(t, cs, "a")[key], labelsOf(t, cs, "b")[key]; a != Value || b != "" {
		t.Fatalf("after the acquisition: label on this Pod %q (want %q), on the previous leader's %q (want none)", a, Value, b)
	}
	if labelsOf(t, cs, "b")[other] != Value || labelsOf(t, cs, "b")["app"] != "x" {
		t.Errorf("other labels of b changed: %v", labelsOf(t, cs, "b"))
	}
	h.OnTermEnd(leadership.Term{}, context.Canceled)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.Close(ctx)
	if v, ok := labelsOf(t, cs, "a")[key]; ok {
		t.Errorf("label still on this Pod after the term and Close: %q", v)
	}
}

// The hooks return at once even when the API server hangs: in a synctest
// bubble, the hooks' goroutine must finish while the labeler is blocked on
// the hanging request, at no virtual time.
func TestHooksNeverBlock(t *testing.T) { synctest.Test(t, testHooksNeverBlock) }

func testHooksNeverBlock(t *testing.T) {
	cs := fake.NewClientset(pod("a", nil))
	hang := make(chan struct{})
	cs.PrependReactor("*", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-hang
		return false, nil, nil
	})
	l, err := New(Options{Client: cs, Namespace: "ns", Pod: "a", Lease: "renewer"})
	if err != nil {
		t.Fatal(err)
	}
	h := l.Hooks()
	done := make(chan struct{})
	go func() {
		for range 100 {
			h.OnAcquire(leadership.Term{}, "", 0)
			h.OnTermEnd(leadership.Term{}, nil)
		}
		close(done)
	}()
	synctest.Wait()
	select {
	case <-done:
	default:
		t.Fatal("the hooks blocked on a hanging API server")
	}
	close(hang)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.Close(ctx)
}

func TestNewRejects(t *testing.T) {
	cs := fake.NewClientset()
	for _, o := range []Options{
		{Client: cs, Namespace: "ns", Pod: "a", Lease: strings.Repeat("x", 60)},
		{Client: cs, Namespace: "", Pod: "a", Lease: "l"},
		{Client: cs, Namespace: "ns", Pod: "", Lease: "l"},
		{Client: nil, Namespace: "ns", Pod: "a", Lease: "l"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestCheck(t *testing.T) {
	cs := fake.NewClientset(pod("a", nil))
	l, err := New(Options{Client: cs, Namespace: "ns", Pod: "missing", Lease: "l"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	if err := l.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "POD_NAME") {
		t.Errorf("Check of a missing Pod: %v; want a hint at POD_NAME", err)
	}
}
