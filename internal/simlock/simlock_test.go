package simlock

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leadership-dev/leadership"
)

func TestVersionsIncreaseAcrossDeleteAndRecreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := NewStore(1, nil)
		c := s.Connect("a", 1)
		r1, err := c.Create(ctx, leadership.Record{HolderIdentity: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(ctx, leadership.Record{}); !errors.Is(err, leadership.ErrConflict) {
			t.Fatalf("create over an existing record: %v, want ErrConflict", err)
		}
		r2, err := c.Update(ctx, r1)
		if err != nil || r2.Version <= r1.Version {
			t.Fatalf("update: %+v, %v", r2, err)
		}
		if _, err := c.Update(ctx, r1); !errors.Is(err, leadership.ErrConflict) {
			t.Fatalf("update on a stale version: %v, want ErrConflict", err)
		}
		s.Delete("op")
		if _, err := c.Update(ctx, r2); !errors.Is(err, leadership.ErrNotFound) {
			t.Fatalf("update of a deleted record: %v, want ErrNotFound", err)
		}
		if _, err := c.Get(ctx); !errors.Is(err, leadership.ErrNotFound) {
			t.Fatalf("get of a deleted record: %v, want ErrNotFound", err)
		}
		r3, err := c.Create(ctx, leadership.Record{HolderIdentity: "a"})
		if err != nil || r3.Version <= r2.Version+1 {
			t.Fatalf("re-create after a delete: version %d after %d and a deletion, %v", r3.Version, r2.Version, err)
		}
		s.Wait()
	})
}

// A write whose client gave up still lands, if its precondition holds then.
func TestLateAppliedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewStore(1, nil)
		c := s.Connect("a", 1)
		r, err := c.Create(context.Background(), leadership.Record{HolderIdentity: "a"})
		if err != nil {
			t.Fatal(err)
		}
		s.SetFaults(Faults{MinLatency: 5 * time.Second, MaxLatency: 5 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.HolderIdentity = "late"
		if _, err := c.Update(ctx, r); !errors.Is(err, ErrTimeout) {
			t.Fatalf("update past its deadline: %v, want ErrTimeout (the client gives up just before the context's deadline)", err)
		}
		if cur, _ := s.Current(); cur.HolderIdentity != "a" {
			t.Fatalf("applied before it arrived: %+v", cur)
		}
		time.Sleep(5 * time.Second)
		if cur, _ := s.Current(); cur.HolderIdentity != "late" {
			t.Fatalf("the late write did not land: %+v", cur)
		}
		// A late write whose compare-and-swap no longer holds does not land.
		cur, _ := s.Current()
		stale := cur
		stale.HolderIdentity = "stale"
		ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		_, _ = c.Update(ctx2, stale)
		s.Edit("op", "meta", func(*leadership.Record) bool { return true })
		s.Wait()
		if cur, _ := s.Current(); cur.HolderIdentity == "stale" {
			t.Fatalf("a late write landed over a newer version: %+v", cur)
		}
	})
}

func TestWatchDeliversInOrderWithDeletionVersions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s := NewStore(7, nil)
		s.SetFaults(Faults{MinLatency: time.Millisecond, MaxLatency: 50 * time.Millisecond})
		c := s.Connect("a", 1)
		w := s.Connect("w", 2)
		r, _ := c.Create(ctx, leadership.Record{HolderIdentity: "a"})
		ch, err := w.Watch(ctx, r.Version)
		if err != nil {
			t.Fatal(err)
		}
		r, _ = c.Update(ctx, r)
		s.Delete("op")
		r2, _ := c.Create(ctx, leadership.Record{HolderIdentity: "b"})
		var got []leadership.Event
		for len(got) < 3 {
			got = append(got, <-ch)
		}
		if got[0].Type != leadership.Put || got[0].Record.Version != r.Version ||
			got[1].Type != leadership.Deleted || got[1].Record.Version != r.Version+1 ||
			got[2].Type != leadership.Put || got[2].Record.Version != r2.Version {
			t.Fatalf("events %+v", got)
		}
		// A watch from an old version replays what it missed.
		ch2, _ := w.Watch(ctx, 1)
		if ev := <-ch2; ev.Record.Version != 2 {
			t.Fatalf("replay starts at %+v, want version 2", ev)
		}
		cancel()
		for range ch {
		}
		for range ch2 {
		}
		s.Wait()
	})
}

func TestPartitionCutsBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewStore(3, nil)
		s.SetFaults(Faults{MinLatency: time.Millisecond, MaxLatency: 2 * time.Millisecond, ClientTimeout: time.Second})
		c := s.Connect("a", 1)
		ctx := context.Background()
		r, _ := c.Create(ctx, leadership.Record{HolderIdentity: "a"})
		c.Partition(true)
		for range 10 {
			if _, err := c.Update(ctx, r); err == nil {
				t.Fatal("a partitioned client's write succeeded")
			}
		}
		if cur, _ := s.Current(); cur.Version != r.Version {
			t.Fatalf("a partitioned client's write landed: %+v", cur)
		}
		c.Partition(false)
		if _, err := c.Update(ctx, r); err != nil {
			t.Fatalf("after healing: %v", err)
		}
		c.Kill()
		if _, err := c.Get(ctx); !errors.Is(err, ErrKilled) {
			t.Fatalf("killed: %v", err)
		}
		s.Wait()
	})
}

// The same seed and the same requests meet the same faults.
func TestFaultsRepeatForASeed(t *testing.T) {
	run := func() []time.Duration {
		var out []time.Duration
		synctest.Test(t, func(t *testing.T) {
			s := NewStore(42, nil)
			s.SetFaults(Faults{MinLatency: time.Millisecond, MaxLatency: time.Second, SlowProb: 0.2, SlowMax: 5 * time.Second, LossRequest: 0.2, ClientTimeout: 10 * time.Second})
			c := s.Connect("a", 9)
			for range 20 {
				start := time.Now()
				_, _ = c.Get(context.Background())
				out = append(out, time.Since(start))
			}
			s.Wait()
		})
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d took %v, then %v", i, a[i], b[i])
		}
	}
}
