package leadershiptest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/leadership-dev/leadership"
)

// Subject is one fresh lock for TestLock: a Lock on a lock that does not
// exist yet, and a way to delete the stored record as an operator would
// (the Lock interface has no delete: the elector never deletes).
type Subject struct {
	Lock   leadership.Lock
	Delete func(ctx context.Context) error
}

// suiteTimeout bounds every wait for a watch event: generous, because a
// real API server on a loaded machine can be slow.
const suiteTimeout = 30 * time.Second

// TestLock checks that a leadership.Lock keeps the contract the elector's
// safety rests on. newSubject is called once per subtest and must return a
// lock that does not exist yet (a fresh name).
//
//   - Get on a missing record wraps leadership.ErrNotFound; Update on one
//     wraps ErrNotFound or ErrConflict and never creates it, not even when
//     its version was read before the record was deleted; Create on an
//     existing one wraps ErrConflict.
//   - A record round-trips: every field the elector writes, times to the
//     microsecond.
//   - Update is a compare-and-swap on Version: a stale version wraps
//     ErrConflict and changes nothing; of many concurrent updates from one
//     version exactly one succeeds.
//   - Versions strictly increase with every write, across deletion and
//     re-creation (they are fencing tokens).
//   - Watch from 0 starts with the current record; Watch from a version
//     sends every later change in order, deletions included, each deletion
//     with a version above the last write before it.
//   - A watch ends (its channel closes) when its context is done.
//   - If the lock is a leadership.PingAnswerer: AnswerPing is a
//     compare-and-swap on Version that writes Pong and nothing else, and
//     Update keeps the stored Pong whatever its record holds.
func TestLock(t *testing.T, newSubject func(t *testing.T) Subject) {
	t.Run("missing", func(t *testing.T) { testMissing(t, newSubject(t)) })
	t.Run("round trip", func(t *testing.T) { testRoundTrip(t, newSubject(t)) })
	t.Run("compare-and-swap", func(t *testing.T) { testCompareAndSwap(t, newSubject(t)) })
	t.Run("concurrent compare-and-swap", func(t *testing.T) { testConcurrentCAS(t, newSubject(t)) })
	t.Run("versions increase across deletion", func(t *testing.T) { testVersionsAcrossDeletion(t, newSubject(t)) })
	t.Run("update after deletion does not re-create", func(t *testing.T) { testUpdateAfterDeletion(t, newSubject(t)) })
	t.Run("watch from zero", func(t *testing.T) { testWatchFromZero(t, newSubject(t)) })
	t.Run("watch from a version", func(t *testing.T) { testWatchFromVersion(t, newSubject(t)) })
	t.Run("watch sees deletion and re-creation", func(t *testing.T) { testWatchDeletion(t, newSubject(t)) })
	t.Run("watch ends with its context", func(t *testing.T) { testWatchEnds(t, newSubject(t)) })
	t.Run("probe answered and kept", func(t *testing.T) { testProbe(t, newSubject(t)) })
}

func suiteCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	t.Cleanup(cancel)
	return ctx
}

// sample is a record with every field the elector writes set.
func sample(holder string) leadership.Record {
	now := time.Now().Round(0).Truncate(time.Microsecond)
	return leadership.Record{
		HolderIdentity:   holder,
		LeaseDuration:    15 * time.Second,
		AcquireTime:      now.Add(-time.Second),
		RenewTime:        now,
		LeaseTransitions: 3,
		PreferredHolder:  "successor",
		Token:            41,
		Instance:         "instance-" + holder,
		PodUID:           "0b5c6a7e-3f0e-4a51-9d7e-2c1f6a1e9b11",
		Proof:            "v1:boot:2049:1234:nonce",
		Values:           map[string]string{"last-run": "2026-12-02T07:00:00Z"},
	}
}

// same compares what a backend must keep (all but Version).
func same(a, b leadership.Record) error {
	var d []string
	add := func(name string, differ bool, x, y any) {
		if differ {
			d = append(d, fmt.Sprintf("%s: wrote %v, read %v", name, x, y))
		}
	}
	add("HolderIdentity", a.HolderIdentity != b.HolderIdentity, a.HolderIdentity, b.HolderIdentity)
	add("LeaseDuration", a.LeaseDuration != b.LeaseDuration, a.LeaseDuration, b.LeaseDuration)
	add("AcquireTime", !a.AcquireTime.Equal(b.AcquireTime), a.AcquireTime, b.AcquireTime)
	add("RenewTime", !a.RenewTime.Equal(b.RenewTime), a.RenewTime, b.RenewTime)
	add("LeaseTransitions", a.LeaseTransitions != b.LeaseTransitions, a.LeaseTransitions, b.LeaseTransitions)
	add("PreferredHolder", a.PreferredHolder != b.PreferredHolder, a.PreferredHolder, b.PreferredHolder)
	add("Token", a.Token != b.Token, a.Token, b.Token)
	add("Instance", a.Instance != b.Instance, a.Instance, b.Instance)
	add("Released", a.Released != b.Released, a.Released, b.Released)
	add("PodUID", a.PodUID != b.PodUID, a.PodUID, b.PodUID)
	add("Proof", a.Proof != b.Proof, a.Proof, b.Proof)
	add("Values", !maps.Equal(a.Values, b.Values), a.Values, b.Values)
	if d != nil {
		return fmt.Errorf("the record did not round-trip: %v", d)
	}
	return nil
}

func testMissing(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	if _, err := s.Lock.Get(ctx); !errors.Is(err, leadership.ErrNotFound) {
		t.Errorf("Get on a missing record: %v; want an error wrapping leadership.ErrNotFound", err)
	}
	r := sample("a")
	r.Version = 1
	if _, err := s.Lock.Update(ctx, r); !errors.Is(err, leadership.ErrNotFound) && !errors.Is(err, leadership.ErrConflict) {
		t.Errorf("Update on a missing record: %v; want an error wrapping leadership.ErrNotFound (or ErrConflict)", err)
	}
	if _, err := s.Lock.Get(ctx); !errors.Is(err, leadership.ErrNotFound) {
		t.Errorf("after an Update on a missing record, Get: %v; want ErrNotFound (an update must never create)", err)
	}
	if _, err := s.Lock.Create(ctx, sample("a")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Lock.Create(ctx, sample("b")); !errors.Is(err, leadership.ErrConflict) {
		t.Errorf("Create on an existing record: %v; want an error wrapping leadership.ErrConflict", err)
	}
	if got, err := s.Lock.Get(ctx); err != nil || got.HolderIdentity != "a" {
		t.Errorf("after a refused Create, Get = %+v, %v; want the first record", got, err)
	}
}

func testRoundTrip(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	w := sample("a")
	c, err := s.Lock.Create(ctx, w)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c.Version == 0 {
		t.Errorf("Create returned version 0; a version must be positive (0 means none)")
	}
	if err := same(w, c); err != nil {
		t.Errorf("Create's answer: %v", err)
	}
	g, err := s.Lock.Get(ctx)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := same(w, g); err != nil {
		t.Errorf("Get: %v", err)
	}
	if g.Version != c.Version {
		t.Errorf("Get version %d, Create returned %d", g.Version, c.Version)
	}
	// A release: empty holder, the release mark, no values.
	rel := leadership.Record{Version: g.Version, LeaseDuration: time.Second, Released: 41, Instance: "instance-a", RenewTime: g.RenewTime}
	u, err := s.Lock.Update(ctx, rel)
	if err != nil {
		t.Fatalf("Update (release): %v", err)
	}
	g, err = s.Lock.Get(ctx)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	rel.Values = g.Values // an empty map and nil are the same to the elector
	if len(g.Values) != 0 {
		t.Errorf("values after a write without them: %v; want none", g.Values)
	}
	if err := same(rel, g); err != nil {
		t.Errorf("release: %v", err)
	}
	if g.Version != u.Version {
		t.Errorf("Get version %d, Update returned %d", g.Version, u.Version)
	}
}

func testCompareAndSwap(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	r := c
	r.HolderIdentity = "b"
	u, err := s.Lock.Update(ctx, r)
	if err != nil {
		t.Fatalf("Update from the current version: %v", err)
	}
	if u.Version <= c.Version {
		t.Errorf("Update returned version %d after %d; versions must increase", u.Version, c.Version)
	}
	stale := c
	stale.HolderIdentity = "c"
	if _, err := s.Lock.Update(ctx, stale); !errors.Is(err, leadership.ErrConflict) {
		t.Errorf("Update from stale version %d (stored %d): %v; want an error wrapping leadership.ErrConflict (a broken compare-and-swap)", c.Version, u.Version, err)
	}
	g, err := s.Lock.Get(ctx)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if g.HolderIdentity != "b" || g.Version != u.Version {
		t.Errorf("after a stale Update the record is %q at version %d; want %q at %d (a broken compare-and-swap)", g.HolderIdentity, g.Version, "b", u.Version)
	}
}

func testProbe(t *testing.T, s Subject) {
	pa, ok := s.Lock.(leadership.PingAnswerer)
	if !ok {
		t.Skip("the lock is no leadership.PingAnswerer: nothing to check")
	}
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := pa.AnswerPing(ctx, c.Version-1, "a/1"); !errors.Is(err, leadership.ErrConflict) {
		t.Errorf("AnswerPing at stale version %d (stored %d): %v; want an error wrapping leadership.ErrConflict", c.Version-1, c.Version, err)
	}
	p, err := pa.AnswerPing(ctx, c.Version, "a/1")
	if err != nil {
		t.Fatalf("AnswerPing at the current version: %v", err)
	}
	if p.Pong != "a/1" || p.Version <= c.Version {
		t.Errorf("AnswerPing returned pong %q at version %d after %d; want %q at a higher version", p.Pong, p.Version, c.Version, "a/1")
	}
	if err := same(c, p); err != nil {
		t.Errorf("AnswerPing changed more than the pong: %v", err)
	}
	r := p
	r.Pong, r.RenewTime = "", r.RenewTime.Add(time.Second)
	u, err := s.Lock.Update(ctx, r)
	if err != nil {
		t.Fatalf("Update after the answer: %v", err)
	}
	g, err := s.Lock.Get(ctx)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if u.Pong != "a/1" || g.Pong != "a/1" {
		t.Errorf("after an Update whose record has no pong, Update returned pong %q and Get %q; want the stored %q kept", u.Pong, g.Pong, "a/1")
	}
}

func testConcurrentCAS(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []string
	var other []error
	for i := range n {
		wg.Go(func() {
			r := c
			r.HolderIdentity = fmt.Sprintf("c%d", i)
			_, err := s.Lock.Update(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, r.HolderIdentity)
			case !errors.Is(err, leadership.ErrConflict):
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("concurrent updates failed otherwise than with ErrConflict: %v", other)
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent updates from version %d succeeded (%v); want exactly one (a broken compare-and-swap)", len(won), n, c.Version, won)
	}
	if g, err := s.Lock.Get(ctx); err != nil || g.HolderIdentity != won[0] {
		t.Errorf("Get = %q, %v; want the winner %q", g.HolderIdentity, err, won[0])
	}
}

func testVersionsAcrossDeletion(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	var last uint64
	for round := range 3 {
		c, err := s.Lock.Create(ctx, sample("a"))
		if err != nil {
			t.Fatalf("round %d: Create: %v", round, err)
		}
		if c.Version <= last {
			t.Fatalf("round %d: re-created at version %d after %d; versions must increase across deletion (they are fencing tokens)", round, c.Version, last)
		}
		// A renewal: a store may skip a write that changes nothing and
		// keep its version (Kubernetes does), so this one changes the
		// renew time, as every write of the elector changes something.
		c.RenewTime = c.RenewTime.Add(time.Millisecond)
		u, err := s.Lock.Update(ctx, c)
		if err != nil {
			t.Fatalf("round %d: Update: %v", round, err)
		}
		if u.Version <= c.Version {
			t.Fatalf("round %d: Update returned version %d after %d", round, u.Version, c.Version)
		}
		last = u.Version
		if err := s.Delete(ctx); err != nil {
			t.Fatalf("round %d: delete: %v", round, err)
		}
		if _, err := s.Lock.Get(ctx); !errors.Is(err, leadership.ErrNotFound) {
			t.Fatalf("round %d: Get after deletion: %v; want ErrNotFound", round, err)
		}
	}
}

// An update is a compare-and-swap on a record that exists, never a create:
// Kubernetes creates a Lease that an update names but that does not exist,
// unless the update carries the UID of the object it read.
func testUpdateAfterDeletion(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	u := c
	u.RenewTime = u.RenewTime.Add(time.Millisecond)
	if u, err = s.Lock.Update(ctx, u); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	// From the last version, and from an older one: a candidate acts on
	// the version it observed, which may lag what its Lock saw last.
	for _, from := range []leadership.Record{u, c} {
		r := from
		r.HolderIdentity = "b"
		r.RenewTime = r.RenewTime.Add(time.Second)
		if _, err := s.Lock.Update(ctx, r); !errors.Is(err, leadership.ErrNotFound) && !errors.Is(err, leadership.ErrConflict) {
			t.Errorf("Update from version %d after the record was deleted: %v; want an error wrapping ErrNotFound or ErrConflict", from.Version, err)
		}
		if g, err := s.Lock.Get(ctx); !errors.Is(err, leadership.ErrNotFound) {
			t.Fatalf("an Update from version %d, seen before the deletion, re-created the record (holder %q, version %d): an update must never create, or two candidates lead (%v)", from.Version, g.HolderIdentity, g.Version, err)
		}
	}
}

// next waits for the next event on ch.
func next(t *testing.T, ch <-chan leadership.Event, what string) leadership.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("the watch closed while waiting for %s", what)
		}
		if ev.Type == leadership.Failed {
			t.Fatalf("the watch failed while waiting for %s: %v", what, ev.Err)
		}
		return ev
	case <-time.After(suiteTimeout):
		t.Fatalf("no event within %v while waiting for %s", suiteTimeout, what)
	}
	panic("unreachable")
}

func testWatchFromZero(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	ch, err := s.Lock.Watch(ctx, 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	ev := next(t, ch, "the current record")
	if ev.Type != leadership.Put || ev.Record.Version != c.Version || ev.Record.HolderIdentity != "a" {
		t.Fatalf("first event from 0: %v at version %d holder %q; want the current record, put, version %d", ev.Type, ev.Record.Version, ev.Record.HolderIdentity, c.Version)
	}
	r := ev.Record
	r.HolderIdentity = "b"
	u, err := s.Lock.Update(ctx, r)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	ev = next(t, ch, "the update")
	if ev.Type != leadership.Put || ev.Record.Version != u.Version || ev.Record.HolderIdentity != "b" {
		t.Fatalf("event after the update: %v version %d holder %q; want put, version %d, holder b", ev.Type, ev.Record.Version, ev.Record.HolderIdentity, u.Version)
	}
}

func testWatchFromVersion(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	var versions []uint64
	r := c
	for i := range 3 {
		r.HolderIdentity = fmt.Sprintf("h%d", i)
		if r, err = s.Lock.Update(ctx, r); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
		versions = append(versions, r.Version)
	}
	// From the create: the three updates, in order, nothing before.
	ch, err := s.Lock.Watch(ctx, c.Version)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	for i, v := range versions {
		ev := next(t, ch, fmt.Sprintf("update %d", i))
		if ev.Type != leadership.Put || ev.Record.Version != v || ev.Record.HolderIdentity != fmt.Sprintf("h%d", i) {
			t.Fatalf("event %d from version %d: %v version %d holder %q; want put version %d holder h%d", i, c.Version, ev.Type, ev.Record.Version, ev.Record.HolderIdentity, v, i)
		}
	}
	// From the last write: nothing until the next write.
	ch2, err := s.Lock.Watch(ctx, r.Version)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	r.HolderIdentity = "last"
	u, err := s.Lock.Update(ctx, r)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	ev := next(t, ch2, "the write after the watch's version")
	if ev.Record.Version != u.Version {
		t.Fatalf("watch from the current version %d first sent version %d; want only later changes (the next is %d)", r.Version, ev.Record.Version, u.Version)
	}
}

func testWatchDeletion(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	c, err := s.Lock.Create(ctx, sample("a"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	ch, err := s.Lock.Watch(ctx, c.Version)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	ev := next(t, ch, "the deletion")
	if ev.Type != leadership.Deleted {
		t.Fatalf("event after a deletion: %v; want deleted", ev.Type)
	}
	if ev.Record.Version <= c.Version {
		t.Fatalf("deletion event at version %d, after a write at %d; a deletion must carry a version above the last write (the elector counts from it)", ev.Record.Version, c.Version)
	}
	re, err := s.Lock.Create(ctx, sample("b"))
	if err != nil {
		t.Fatalf("re-create: %v", err)
	}
	if re.Version <= ev.Record.Version {
		t.Fatalf("re-created at version %d, not above the deletion's %d", re.Version, ev.Record.Version)
	}
	ev = next(t, ch, "the re-creation")
	if ev.Type != leadership.Put || ev.Record.Version != re.Version || ev.Record.HolderIdentity != "b" {
		t.Fatalf("event after the re-creation: %v version %d holder %q; want put version %d holder b", ev.Type, ev.Record.Version, ev.Record.HolderIdentity, re.Version)
	}
}

func testWatchEnds(t *testing.T, s Subject) {
	ctx := suiteCtx(t)
	if _, err := s.Lock.Create(ctx, sample("a")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	ch, err := s.Lock.Watch(wctx, 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	next(t, ch, "the current record")
	cancel()
	deadline := time.After(suiteTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the watch's channel did not close within %v of its context ending", suiteTimeout)
		}
	}
}
