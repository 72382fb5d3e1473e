package badinput

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/e2e/e2etest"
	"github.com/leadership-dev/leadership/kubelease"
)

// outcome is what candidates do with a Lease they find.
type outcome int

const (
	// refused: the API server does not store such a Lease at all.
	refused outcome = iota
	// takenAtOnce: it reads as released; a candidate takes it without
	// waiting.
	takenAtOnce
	// takenAfterLease: it reads as held; candidates wait out the holder's
	// lease (minWait) from their own observation, then one takes it.
	takenAfterLease
	// neverTaken: the holder's lease outlasts the test; nobody takes it.
	neverTaken
)

const ghost = "ghost"

func held(seconds int32) coordinationv1.LeaseSpec {
	now := metav1.NewMicroTime(time.Now())
	return coordinationv1.LeaseSpec{HolderIdentity: ptr(ghost), LeaseDurationSeconds: ptr(seconds), AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr[int32](3)}
}

// TestGarbageLeases creates a Lease edited into garbage, then starts two
// candidates on it. Whatever the garbage, the outcome is the documented
// one, the candidates never both lead, and no term works past its
// validity.
func TestGarbageLeases(t *testing.T) {
	far := metav1.NewMicroTime(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	past := metav1.NewMicroTime(time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC))
	type tc struct {
		name        string
		spec        coordinationv1.LeaseSpec
		annotations map[string]string
		outcome     outcome
		// refused: what the API server's error must name.
		refusal string
		// takenAfterLease: the least time from writing the Lease to the
		// first term.
		minWait time.Duration
		// check runs once the outcome is reached.
		check func(t *testing.T, name string, rec *record, log *e2etest.SyncBuffer, cs []*candidate)
	}
	mod := func(seconds int32, f func(*coordinationv1.LeaseSpec)) coordinationv1.LeaseSpec {
		s := held(seconds)
		f(&s)
		return s
	}
	cases := []tc{
		{name: "zero duration", spec: mod(0, func(*coordinationv1.LeaseSpec) {}), outcome: refused, refusal: "leaseDurationSeconds"},
		{name: "negative duration", spec: mod(-5, func(*coordinationv1.LeaseSpec) {}), outcome: refused, refusal: "leaseDurationSeconds"},
		{name: "negative transitions", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.LeaseTransitions = ptr[int32](-1) }), outcome: refused, refusal: "leaseTransitions"},
		{name: "preferred holder without strategy", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.PreferredHolder = ptr("cand-1") }),
			// With the CoordinatedLeaderElection feature gate off (the
			// default), the API server drops spec.preferredHolder; with it
			// on, it refuses it without a strategy. Either way no
			// candidate acts on it.
			outcome: takenAfterLease, minWait: 4 * time.Second,
			check: func(t *testing.T, name string, rec *record, log *e2etest.SyncBuffer, cs []*candidate) {
				if p := getLease(t, name).Spec.PreferredHolder; p != nil && *p != "" {
					t.Errorf("the API server kept spec.preferredHolder %q without a strategy", *p)
				}
			}},

		{name: "huge duration", spec: held(math.MaxInt32), outcome: neverTaken,
			check: func(t *testing.T, name string, rec *record, log *e2etest.SyncBuffer, cs []*candidate) {
				for _, c := range cs {
					if l := c.e.Leader(); l.Identity != ghost || l.Self {
						t.Errorf("%s sees leader %+v, want the ghost holder", c.id, l)
					}
				}
			}},
		{name: "missing duration", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.LeaseDurationSeconds = nil }),
			// Read as the candidates' own lease duration.
			outcome: takenAfterLease, minWait: testLease},
		// An empty holder is a release only when its holder marked it so,
		// after its work returned; anything else is waited out.
		{name: "missing holder", spec: mod(15, func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = nil }), outcome: takenAfterLease, minWait: 15 * time.Second},
		{name: "empty holder", spec: mod(15, func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = ptr("") }), outcome: takenAfterLease, minWait: 15 * time.Second},
		{name: "empty holder marked released", spec: mod(15, func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = ptr("") }),
			annotations: map[string]string{kubelease.AnnotationReleased: "5"}, outcome: takenAtOnce},
		{name: "renewTime far in the future", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.RenewTime, s.AcquireTime = &far, &far }),
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "renewTime far in the past", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.RenewTime, s.AcquireTime = &past, &past }),
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "no times", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.RenewTime, s.AcquireTime = nil, nil }),
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "transitions at the int32 limit", spec: mod(1, func(s *coordinationv1.LeaseSpec) { s.LeaseTransitions = ptr[int32](math.MaxInt32) }),
			outcome: takenAfterLease, minWait: time.Second,
			check: func(t *testing.T, name string, rec *record, log *e2etest.SyncBuffer, cs []*candidate) {
				if got := getLease(t, name).Spec.LeaseTransitions; got == nil || *got != math.MaxInt32 {
					t.Errorf("leaseTransitions after the takeover = %v, want it kept at the int32 limit", got)
				}
			}},
		{name: "client-go style holder", spec: mod(4, func(s *coordinationv1.LeaseSpec) {
			s.HolderIdentity = ptr("node-1_7f3c2a1e-5b9d-4c8e-a1f0-2d6b8e9c0a47")
		}),
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "holder with control characters and unicode", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = ptr(" gh\u00f6st \t\u2603\x00") }),
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "64 KiB holder", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = ptr(strings.Repeat("g", 64<<10)) }),
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "holder is a candidate's identity written by another process", spec: mod(4, func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = ptr("cand-0") }),
			annotations: map[string]string{kubelease.AnnotationInstance: "elsewhere"},
			// Not taken at once by cand-0: the record is not its own.
			outcome: takenAfterLease, minWait: 4 * time.Second,
			check: func(t *testing.T, name string, rec *record, log *e2etest.SyncBuffer, cs []*candidate) {
				if !strings.Contains(log.String(), "identities must be unique") {
					t.Error("cand-0 did not log the identity clash")
				}
			}},
		{name: "garbage token annotation", spec: held(4), annotations: map[string]string{kubelease.AnnotationToken: "not-a-number", kubelease.AnnotationInstance: "\x00\x01"},
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "forged maximal token annotation", spec: held(4), annotations: map[string]string{kubelease.AnnotationToken: strconv.FormatUint(math.MaxUint64, 10)},
			outcome: takenAfterLease, minWait: 4 * time.Second,
			check: func(t *testing.T, name string, rec *record, log *e2etest.SyncBuffer, cs []*candidate) {
				// The token is the resourceVersion of the acquiring
				// write, whatever an annotation claims.
				w, _ := rec.first()
				rv, err := strconv.ParseUint(getLease(t, name).ResourceVersion, 10, 64)
				if err != nil || w.token == math.MaxUint64 || w.token > rv {
					t.Errorf("term token %d with the Lease at resourceVersion %d: the forged annotation leaked into the token", w.token, rv)
				}
			}},
		{name: "token annotation overflowing uint64", spec: held(4), annotations: map[string]string{kubelease.AnnotationToken: "99999999999999999999999"},
			outcome: takenAfterLease, minWait: 4 * time.Second},
		{name: "preferred-holder annotation naming nobody", spec: held(4), annotations: map[string]string{kubelease.AnnotationPreferredHolder: "nobody"},
			outcome: takenAfterLease, minWait: 4 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			name := e2etest.LeaseName(t)
			created, err := createLease(ctx, t, name, c.spec, c.annotations)
			if c.outcome == refused {
				if err == nil {
					t.Fatalf("the API server stored %s; the elector must now be tested against it", describe(created))
				}
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.refusal) {
					t.Fatalf("want an Invalid error naming %s, got %v", c.refusal, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			written := time.Now()
			log, buf := newLog(t)
			rec := &record{}
			cs := []*candidate{
				startCandidate(t, cp.Config, name, "cand-0", rec, log),
				startCandidate(t, cp.Config, name, "cand-1", rec, log),
			}
			started := time.Now()
			switch c.outcome {
			case takenAtOnce:
				e2etest.Eventually(t, time.Minute, "a leader", func() bool { return rec.terms() > 0 })
				if w, _ := rec.first(); w.start.Sub(started) >= testLease {
					t.Errorf("first term began %v after the candidates started: they waited as for a held Lease", w.start.Sub(started))
				}
			case takenAfterLease:
				e2etest.Eventually(t, time.Minute, "a leader", func() bool { return rec.terms() > 0 })
				if w, _ := rec.first(); w.start.Sub(written) < c.minWait {
					t.Errorf("first term began %v after the Lease was written, before the holder's lease of %v ran out", w.start.Sub(written), c.minWait)
				}
			case neverTaken:
				e2etest.Eventually(t, time.Minute, "both candidates see the holder", func() bool {
					return cs[0].e.Leader().Identity == ghost && cs[1].e.Leader().Identity == ghost
				})
				// The holder's lease is 68 years, which a candidate caps
				// at 4× its own (16s): nobody may take the Lease during
				// the test. Absence needs a window; two of the
				// candidates' lease durations is it.
				time.Sleep(2 * testLease)
				if n := rec.terms(); n != 0 {
					t.Errorf("%d terms began on a Lease whose holder's lease has 68 years to run", n)
				}
			}
			if c.check != nil {
				c.check(t, name, rec, buf, cs)
			}
			rec.check(t)
		})
	}
}

// TestLeaseEditedWhileHeld edits the Lease by hand while a candidate
// leads.
func TestLeaseEditedWhileHeld(t *testing.T) {
	edit := func(t *testing.T, name string, f func(*coordinationv1.Lease)) {
		t.Helper()
		cs := admin(t).CoordinationV1().Leases(ns)
		e2etest.Eventually(t, time.Minute, "the edit", func() bool {
			l, err := cs.Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			f(l)
			_, err = cs.Update(context.Background(), l, metav1.UpdateOptions{})
			return err == nil
		})
	}
	t.Run("duration raised to the int32 limit", func(t *testing.T) {
		t.Parallel()
		name := e2etest.LeaseName(t)
		log, _ := newLog(t)
		rec := &record{}
		a := startCandidate(t, cp.Config, name, "cand-0", rec, log)
		e2etest.Eventually(t, time.Minute, "cand-0 leads", func() bool { return a.e.Leader().Self })
		b := startCandidate(t, cp.Config, name, "cand-1", rec, log)
		e2etest.Eventually(t, time.Minute, "cand-1 follows", func() bool { return b.e.Leader().Identity == "cand-0" })
		edited := time.Now()
		edit(t, name, func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptr[int32](math.MaxInt32) })
		// The edit keeps the leader's instance annotation, but it is not
		// the leader's write: its term ends. Nobody honours 68 years: a
		// candidate waits at most 4× its own lease duration, then one
		// leads again.
		e2etest.Eventually(t, time.Minute, "cand-0's term ends", func() bool { return !rec.all()[0].open })
		e2etest.Eventually(t, time.Minute, "a leader again", func() bool { return rec.terms() >= 2 })
		if w := rec.all()[1]; w.start.Sub(edited) < testLease {
			t.Errorf("the next term began %v after the edit, before a lease duration", w.start.Sub(edited))
		}
		rec.check(t)
	})
	t.Run("holder emptied", func(t *testing.T) {
		t.Parallel()
		name := e2etest.LeaseName(t)
		log, _ := newLog(t)
		rec := &record{}
		a := startCandidate(t, cp.Config, name, "cand-0", rec, log)
		e2etest.Eventually(t, time.Minute, "cand-0 leads", func() bool { return a.e.Leader().Self })
		b := startCandidate(t, cp.Config, name, "cand-1", rec, log)
		e2etest.Eventually(t, time.Minute, "cand-1 follows", func() bool { return b.e.Leader().Identity == "cand-0" })
		edit(t, name, func(l *coordinationv1.Lease) { l.Spec.HolderIdentity = ptr("") })
		// An empty holder nobody marked as released is waited out; the
		// leader, seeing a write that is not its own, stops.
		e2etest.Eventually(t, time.Minute, "a new term", func() bool { return rec.terms() >= 2 })
		e2etest.Eventually(t, time.Minute, "cand-0's first term ends", func() bool { return !rec.all()[0].open })
		rec.check(t)
	})
}
