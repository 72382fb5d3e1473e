package kubelease

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 123456000, time.UTC)
	r := leadership.Record{HolderIdentity: "pod-1-ab12", LeaseDuration: 15 * time.Second, AcquireTime: now,
		RenewTime: now.Add(time.Second), LeaseTransitions: 4, PreferredHolder: "pod-2", Token: 99, Instance: "deadbeef",
		PodUID: "0f6b2c1e-uid", Proof: "v1:boot:2049:1234:nonce",
		Values: map[string]string{"last-run": "2026-11-28T12:00:00Z", "sweep.cursor": "42"}}
	base := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "n", ResourceVersion: "42",
		Labels: map[string]string{"app": "x"}, Annotations: map[string]string{"other": "kept"}}}
	lease := Encode(base, r)
	if lease.Labels["app"] != "x" || lease.Annotations["other"] != "kept" {
		t.Fatalf("foreign metadata lost: %+v", lease.ObjectMeta)
	}
	if base.Annotations[AnnotationToken] != "" {
		t.Fatal("Encode modified its base")
	}
	got, err := Decode(lease)
	if err != nil {
		t.Fatal(err)
	}
	r.Version = 42
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	// Same field meaning as client-go's LeaderElectionRecord.
	if *lease.Spec.HolderIdentity != "pod-1-ab12" || *lease.Spec.LeaseDurationSeconds != 15 || *lease.Spec.LeaseTransitions != 4 ||
		!lease.Spec.RenewTime.Time.Equal(now.Add(time.Second)) {
		t.Fatalf("spec %+v", lease.Spec)
	}
	if lease.Annotations[AnnotationPodUID] != "0f6b2c1e-uid" || lease.Annotations[AnnotationProof] != "v1:boot:2049:1234:nonce" {
		t.Fatalf("restart proof annotations: %v", lease.Annotations)
	}
	// Clearing token, successor, proof and values removes the annotations.
	r.Token, r.PreferredHolder, r.Values = 0, "", map[string]string{"sweep.cursor": "43"}
	r.PodUID, r.Proof = "", ""
	lease = Encode(lease, r)
	if _, ok := lease.Annotations[ValuesPrefix+"last-run"]; ok || lease.Annotations[ValuesPrefix+"sweep.cursor"] != "43" {
		t.Fatalf("values not replaced: %v", lease.Annotations)
	}
	if _, ok := lease.Annotations[AnnotationToken]; ok {
		t.Fatal("token annotation kept")
	}
	if _, ok := lease.Annotations[AnnotationPreferredHolder]; ok {
		t.Fatal("successor annotation kept")
	}
	if _, ok := lease.Annotations[AnnotationProof]; ok {
		t.Fatal("proof annotation kept")
	}
	// A fractional duration is rounded up, never down.
	r.LeaseDuration = 1500 * time.Millisecond
	if s := *Encode(base, r).Spec.LeaseDurationSeconds; s != 2 {
		t.Fatalf("1.5s encoded as %ds", s)
	}
}

func TestDecodeOddLeases(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	str := func(s string) *string { return &s }
	cases := []struct {
		name  string
		lease coordinationv1.Lease
		check func(leadership.Record) bool
		err   bool
	}{
		{"empty spec", coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "5"}},
			func(r leadership.Record) bool {
				return r.HolderIdentity == "" && r.LeaseDuration == 0 && r.Version == 5
			}, false},
		{"negative duration", coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "5"}, Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: i32(-3)}},
			func(r leadership.Record) bool { return r.LeaseDuration == -3*time.Second }, false},
		{"transitions at int32 limit", coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "5"}, Spec: coordinationv1.LeaseSpec{LeaseTransitions: i32(1<<31 - 1)}},
			func(r leadership.Record) bool { return r.LeaseTransitions == 1<<31-1 }, false},
		{"garbage token", coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "5", Annotations: map[string]string{AnnotationToken: "-1x"}}},
			func(r leadership.Record) bool { return r.Token == 0 }, false},
		{"spec preferred holder wins", coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "5", Annotations: map[string]string{AnnotationPreferredHolder: "b"}},
			Spec: coordinationv1.LeaseSpec{PreferredHolder: str("a")}},
			func(r leadership.Record) bool { return r.PreferredHolder == "a" }, false},
		{"non-numeric resourceVersion", coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "abc"}}, nil, true},
		{"missing resourceVersion", coordinationv1.Lease{}, nil, true},
	}
	for _, c := range cases {
		r, err := Decode(&c.lease)
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if err == nil && !c.check(r) {
			t.Errorf("%s: decoded %+v", c.name, r)
		}
	}
	if _, err := Decode(nil); err == nil {
		t.Error("nil Lease decoded")
	}
}

func TestBadValueKeyRefused(t *testing.T) {
	l, err := New(fakeGetter{}, "ns", "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "has space", "a/b", strings.Repeat("k", 64)} {
		_, err := l.Update(t.Context(), leadership.Record{Version: 1, Values: map[string]string{k: "v"}})
		if err == nil || !strings.Contains(err.Error(), "cannot be stored as annotation") {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, c := range []struct{ ns, name string }{{"", "x"}, {"Bad_NS", "x"}, {"ns", ""}, {"ns", "UPPER"}, {"ns", "a/b"}} {
		if _, err := New(fakeGetter{}, c.ns, c.name); err == nil {
			t.Errorf("New(%q, %q) accepted", c.ns, c.name)
		}
	}
	if _, err := New(nil, "ns", "x"); err == nil {
		t.Error("nil client accepted")
	}
}

// FuzzDecode feeds arbitrary Lease contents to Decode: it must never panic,
// and whatever decodes must survive Encode unchanged.
func FuzzDecode(f *testing.F) {
	f.Add("17", "holder", int32(15), int32(3), "12", "inst", "succ", int64(1700000000), true)
	f.Add("", "", int32(-1), int32(-5), "x", "", "", int64(-1), false)
	f.Add("18446744073709551615", "h", int32(1<<31-1), int32(1<<31-1), "18446744073709551616", "i", "", int64(1<<40), true)
	f.Fuzz(func(t *testing.T, rv, holder string, dur, trans int32, token, inst, succ string, unix int64, withTimes bool) {
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "n", ResourceVersion: rv,
			Annotations: map[string]string{AnnotationToken: token, AnnotationInstance: inst, AnnotationPreferredHolder: succ}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, LeaseTransitions: &trans}}
		if withTimes {
			m := metav1.NewMicroTime(time.Unix(unix%(1<<33), 0).UTC())
			lease.Spec.AcquireTime, lease.Spec.RenewTime = &m, &m
		}
		r, err := Decode(lease)
		if err != nil {
			if v, perr := strconv.ParseUint(rv, 10, 64); perr == nil && v != 0 {
				t.Fatalf("valid resourceVersion %q refused: %v", rv, err)
			}
			return
		}
		if r.HolderIdentity != holder || r.LeaseTransitions != trans || r.LeaseDuration != time.Duration(dur)*time.Second {
			t.Fatalf("decoded %+v", r)
		}
		again, err := Decode(Encode(lease, r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encode changed the record:\n%+v\n%+v (%v)", r, again, err)
		}
	})
}

// Coordinated Leader Election's fields and the handover probe: Encode keeps
// spec.strategy and the probe annotations as they are, keeps a
// spec.preferredHolder the record still names, and clears one it does not
// (an acquisition ends the request).
func TestEncodeKeepsStrategyAndProbe(t *testing.T) {
	strategy := coordinationv1.CoordinatedLeaseStrategy("example.com/coordinator")
	str := func(s string) *string { return &s }
	base := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "7",
		Annotations: map[string]string{AnnotationPing: "b/1f2e", AnnotationPong: "b/1f2e"}},
		Spec: coordinationv1.LeaseSpec{Strategy: &strategy, PreferredHolder: str("b")}}
	r, err := Decode(base)
	if err != nil {
		t.Fatal(err)
	}
	if r.PreferredHolder != "b" || r.Ping != "b/1f2e" || r.Pong != "b/1f2e" {
		t.Fatalf("decoded %+v", r)
	}

	// A renewal or release carries the request on: it stays in the spec.
	r.HolderIdentity, r.LeaseDuration = "a", 15*time.Second
	l := Encode(base, r)
	if l.Spec.Strategy == nil || *l.Spec.Strategy != strategy || l.Spec.PreferredHolder == nil || *l.Spec.PreferredHolder != "b" {
		t.Fatalf("renewal: spec %+v", l.Spec)
	}
	if _, ok := l.Annotations[AnnotationPreferredHolder]; ok {
		t.Fatal("request duplicated into the annotation")
	}

	// An acquisition clears it, and writes no probe of its own.
	r.PreferredHolder, r.Ping, r.Pong = "", "", ""
	l = Encode(base, r)
	if l.Spec.PreferredHolder != nil || l.Spec.Strategy == nil || *l.Spec.Strategy != strategy {
		t.Fatalf("acquisition: spec %+v", l.Spec)
	}
	if l.Annotations[AnnotationPing] != "b/1f2e" || l.Annotations[AnnotationPong] != "b/1f2e" {
		t.Fatalf("probe annotations not kept as they were: %v", l.Annotations)
	}
	if got, err := Decode(l); err != nil || got.PreferredHolder != "" {
		t.Fatalf("read back %+v, %v", got, err)
	}

	// A request the spec does not carry goes to the annotation, and the
	// record reads back as written.
	r.PreferredHolder = "c"
	l = Encode(base, r)
	if got, err := Decode(l); err != nil || got.PreferredHolder != "c" || l.Spec.PreferredHolder != nil {
		t.Fatalf("read back %+v, %v; spec %+v", got, err, l.Spec)
	}
}
