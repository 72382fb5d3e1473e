package leadership

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Identity: "a"}.validated()
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseDuration != 15*time.Second || c.RenewInterval != 5*time.Second || c.RetryPeriod != 2*time.Second ||
		c.MaxClockDrift != 0.01 || c.StopMargin != 100*time.Millisecond || c.KeepLockOnStop || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = Config{Identity: "a", MaxClockDrift: None, StopMargin: None}.validated()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxClockDrift != 0 || c.StopMargin != 0 || c.termValidity() != 15*time.Second {
		t.Fatalf("None did not select zero: drift %v margin %v", c.MaxClockDrift, c.StopMargin)
	}
	c, err = Config{Identity: "a", LeaseDuration: 2 * time.Second}.validated()
	if err != nil {
		t.Fatal(err)
	}
	if c.RenewInterval != 2*time.Second/3 || c.RetryPeriod != time.Second/3 {
		t.Fatalf("scaled defaults: renew %v retry %v", c.RenewInterval, c.RetryPeriod)
	}
}

func TestConfigInvalid(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string
		rule  string
	}{
		{"no identity", Config{}, "Identity", "required"},
		{"space identity", Config{Identity: " a"}, "Identity", "leading/trailing"},
		{"control identity", Config{Identity: "a\nb"}, "Identity", "control"},
		{"long identity", Config{Identity: strings.Repeat("x", 1025)}, "Identity", "1024"},
		{"negative lease", Config{Identity: "a", LeaseDuration: -time.Second}, "LeaseDuration", "at least 1s"},
		{"sub-second lease", Config{Identity: "a", LeaseDuration: 500 * time.Millisecond}, "LeaseDuration", "at least 1s"},
		{"fractional lease", Config{Identity: "a", LeaseDuration: 1500 * time.Millisecond}, "LeaseDuration", "whole number of seconds"},
		{"huge lease", Config{Identity: "a", LeaseDuration: time.Duration(math.MaxInt64)}, "LeaseDuration", ""},
		{"negative drift", Config{Identity: "a", MaxClockDrift: -0.1}, "MaxClockDrift", "(0, 0.5)"},
		{"big drift", Config{Identity: "a", MaxClockDrift: 0.5}, "MaxClockDrift", "(0, 0.5)"},
		{"NaN drift", Config{Identity: "a", MaxClockDrift: math.NaN()}, "MaxClockDrift", ""},
		{"negative renew", Config{Identity: "a", RenewInterval: -time.Second}, "RenewInterval", "positive"},
		{"renew too long", Config{Identity: "a", RenewInterval: 8 * time.Second}, "RenewInterval", "two renewals"},
		{"renew equals lease", Config{Identity: "a", RenewInterval: 15 * time.Second}, "RenewInterval", "two renewals"},
		{"negative retry", Config{Identity: "a", RetryPeriod: -1}, "RetryPeriod", "at least 1ms"},
		{"retry above renew", Config{Identity: "a", RetryPeriod: 6 * time.Second}, "RetryPeriod", "must not exceed RenewInterval"},
		{"sub-millisecond retry", Config{Identity: "a", RetryPeriod: 500 * time.Microsecond}, "RetryPeriod", "at least 1ms"},
		{"infinite drift", Config{Identity: "a", MaxClockDrift: math.Inf(1)}, "MaxClockDrift", "(0, 0.5)"},
		{"negative infinite drift", Config{Identity: "a", MaxClockDrift: math.Inf(-1)}, "MaxClockDrift", "(0, 0.5)"},
		{"lease beyond leaseDurationSeconds", Config{Identity: "a", LeaseDuration: maxLeaseDuration + time.Second}, "LeaseDuration", "must fit leaseDurationSeconds"},
		{"negative stop margin", Config{Identity: "a", StopMargin: -2}, "StopMargin", "[0, "},
		{"stop margin half the validity", Config{Identity: "a", LeaseDuration: time.Second, StopMargin: 495 * time.Millisecond}, "StopMargin", "half the leader's validity"},
		{"two renewals do not fit once the drift margin is taken", Config{Identity: "a", LeaseDuration: time.Second, RenewInterval: 496 * time.Millisecond}, "RenewInterval", "two renewals"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if ce.Field != c.field || !strings.Contains(err.Error(), c.rule) || !strings.Contains(err.Error(), "Config."+c.field) {
				t.Fatalf("got %q (field %s), want field %s and rule containing %q", err, ce.Field, c.field, c.rule)
			}
			if _, err := New(noLock{}, c.cfg); err == nil {
				t.Fatal("New accepted an invalid Config")
			}
		})
	}
	if _, err := New(nil, Config{Identity: "a"}); err == nil {
		t.Fatal("New accepted a nil Lock")
	}
}

// FuzzConfig checks that Validate never panics, and that whatever it accepts
// keeps the invariants the safety argument relies on.
func FuzzConfig(f *testing.F) {
	f.Add("a", int64(15e9), int64(5e9), int64(2e9), 0.01)
	f.Add("", int64(0), int64(0), int64(0), 0.0)
	f.Add("b", int64(1e9), int64(4e8), int64(1e6), 0.49)
	f.Add("c", int64(-1), int64(math.MaxInt64), int64(math.MinInt64), math.Inf(1))
	f.Fuzz(func(t *testing.T, id string, lease, renew, retry int64, drift float64) {
		c := Config{Identity: id, LeaseDuration: time.Duration(lease), RenewInterval: time.Duration(renew),
			RetryPeriod: time.Duration(retry), MaxClockDrift: drift}
		v, err := c.validated()
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field == "" || ce.Rule == "" {
				t.Fatalf("error without field or rule: %v", err)
			}
			return
		}
		valid := v.validity()
		switch {
		case v.Identity == "":
			t.Fatal("empty identity accepted")
		case v.LeaseDuration < time.Second || v.LeaseDuration%time.Second != 0:
			t.Fatalf("lease %v accepted", v.LeaseDuration)
		case !(v.MaxClockDrift >= 0 && v.MaxClockDrift < 0.5):
			t.Fatalf("drift %v accepted", v.MaxClockDrift)
		case valid > v.LeaseDuration || valid <= 0:
			t.Fatalf("validity %v for lease %v", valid, v.LeaseDuration)
		case v.RenewInterval <= 0 || 2*v.RenewInterval > valid:
			t.Fatalf("renew %v accepted for validity %v", v.RenewInterval, valid)
		case v.RetryPeriod <= 0 || v.RetryPeriod > v.RenewInterval:
			t.Fatalf("retry %v accepted with renew %v", v.RetryPeriod, v.RenewInterval)
		}
	})
}

// TestDecide drives the observation through sequences of records, reads
// and deletions seen at given times, and checks what a candidate decides.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }
	rec := func(v uint64, holder string, d time.Duration) Record {
		return Record{HolderIdentity: holder, LeaseDuration: d, Version: v, Instance: "x", RenewTime: t0.Add(time.Duration(v))}
	}
	released := func(v uint64) Record {
		r := rec(v, "", time.Second)
		r.Released = 3
		return r
	}
	type step struct {
		at   float64 // seconds after t0
		ev   Record  // Version 0: none
		read bool    // ev came from a read
		del  uint64  // a deletion event with this version
		miss bool    // a read that found nothing
	}
	cases := []struct {
		name  string
		steps []step
		mine  bool
		now   float64
		act   action
		wait  time.Duration
	}{
		{"nothing observed yet", nil, false, 0, actWait, 0},
		{"held, fresh", []step{{at: 0, ev: rec(7, "x", sec(15))}}, false, 5, actWait, sec(10)},
		{"held, 1ns short", []step{{at: 0, ev: rec(7, "x", sec(15))}}, false, 15 - 1e-9, actWait, 1},
		{"held, expired exactly", []step{{at: 0, ev: rec(7, "x", sec(15))}}, false, 15, actTake, 0},
		{"holder's shorter lease: ours is the floor", []step{{at: 0, ev: rec(7, "x", sec(3))}}, false, 3, actWait, sec(12)},
		{"holder's longer lease", []step{{at: 0, ev: rec(7, "x", sec(20))}}, false, 15, actWait, sec(5)},
		{"absurd lease capped at 4× ours", []step{{at: 0, ev: rec(7, "x", time.Duration(math.MaxInt32)*time.Second)}}, false, 59, actWait, sec(1)},
		{"zero duration reads as ours", []step{{at: 0, ev: rec(7, "x", 0)}}, false, 14, actWait, sec(1)},
		{"negative duration reads as ours", []step{{at: 0, ev: rec(7, "x", -time.Hour)}}, false, 15, actTake, 0},
		{"renewal restarts the countdown", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 5, ev: rec(8, "x", sec(15))}}, false, 15, actWait, sec(5)},
		{"label only: no restart", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 5, ev: func() Record { r := rec(7, "x", sec(15)); r.Version = 8; return r }()}}, false, 15, actTake, 0},
		{"marked release", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, ev: released(8)}}, false, 1, actTake, 0},
		{"own leftover", []step{{at: 0, ev: rec(7, "me", sec(15))}}, true, 0, actTake, 0},
		{"same identity, other process", []step{{at: 0, ev: rec(7, "me", sec(15))}}, false, 0, actWait, sec(15)},
		// Path 1: a hand edit that shortens the duration does not shorten the wait.
		{"edit shortens duration", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, ev: rec(8, "x", sec(1))}}, false, 2, actWait, sec(14)},
		{"edit renames holder", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, ev: rec(8, "y", sec(1))}}, false, 2, actWait, sec(14)},
		{"new holder's longer lease", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, ev: rec(8, "y", sec(20))}}, false, 6, actWait, sec(15)},
		// Path 2: an empty holder nobody marked is waited out.
		{"unmarked empty holder", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, ev: rec(8, "", sec(1))}}, false, 2, actWait, sec(14)},
		{"unmarked empty holder, first sight", []step{{at: 0, ev: rec(7, "", sec(1))}}, false, 1, actWait, sec(14)},
		{"unmarked empty holder, waited out", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, ev: rec(8, "", sec(1))}}, false, 16, actTake, 0},
		// Path 3: deletions.
		{"deleted (event) while held", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, del: 8}}, false, 1, actWait, sec(14)},
		{"deleted (event), lease over", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 1, del: 8}}, false, 15, actCreate, 0},
		// A deletion learned by a read keeps the chain; the create that
		// follows is held a lease before leading (TestCreateIsHeldALease).
		{"deleted (read), chain kept", []step{{at: 0, ev: rec(7, "x", sec(15))}, {at: 10, miss: true}}, false, 12, actWait, sec(3)},
		{"deleted (read) of our own stale view", []step{{at: 0, ev: rec(7, "me", sec(15))}, {at: 10, miss: true}}, true, 10, actWait, sec(5)},
		{"nothing there on first read", []step{{at: 0, miss: true}}, false, 1, actCreate, 0},
		{"repeated reads do not push the deadline", []step{{at: 0, miss: true}, {at: 5, miss: true}, {at: 10, miss: true}}, false, 15, actCreate, 0},
		{"deleted after a marked release", []step{{at: 0, ev: released(7)}, {at: 1, del: 8}}, false, 1, actCreate, 0},
		// A read with a lower version than known: the store went back.
		{"restored store", []step{{at: 0, ev: rec(70, "x", sec(15))}, {at: 20, ev: rec(7, "y", sec(15)), read: true}}, false, 30, actWait, sec(5)},
		{"stale watch event ignored", []step{{at: 0, ev: rec(70, "x", sec(15))}, {at: 20, ev: rec(7, "y", sec(15))}}, false, 20, actTake, 0},
	}
	rel := released(8)
	rel.PreferredHolder = "other"
	cases = append(cases,
		struct {
			name  string
			steps []step
			mine  bool
			now   float64
			act   action
			wait  time.Duration
		}{"released to another", []step{{at: 0, ev: rel}}, false, 1, actWait, sec(4)},
		struct {
			name  string
			steps []step
			mine  bool
			now   float64
			act   action
			wait  time.Duration
		}{"released to another, grace over", []step{{at: 0, ev: rel}}, false, 5, actTake, 0})
	for _, c := range cases {
		// In a bubble the elector's clock, the time package's, is virtual:
		// each step is seen at exactly its instant after the bubble's
		// start, which stands for t0.
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				e, err := newElector(noLock{}, Config{Identity: "me", LeaseDuration: 15 * time.Second}, realClock{}, func() time.Duration { return 0 })
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range c.steps {
					time.Sleep(time.Until(start.Add(sec(s.at))))
					switch {
					case s.del != 0:
						e.seeMissing(s.del, e.epoch())
					case s.miss:
						e.seeMissing(0, e.epoch())
					case s.read:
						e.seeRead(s.ev, e.epoch())
					default:
						e.seeEvent(s.ev)
					}
				}
				act, wait := e.decide(e.snapshot(), start.Add(sec(c.now)), c.mine, time.Time{})
				if act != c.act || wait != c.wait {
					t.Errorf("got %v %v, want %v %v", act, wait, c.act, c.wait)
				}
			})
		})
	}
}

// noLock is a Lock that holds nothing, for tests of the elector's
// judgement alone, which never reach the lock.
type noLock struct{}

func (noLock) Get(context.Context) (Record, error)            { return Record{}, ErrNotFound }
func (noLock) Create(context.Context, Record) (Record, error) { return Record{}, ErrConflict }
func (noLock) Update(context.Context, Record) (Record, error) { return Record{}, ErrNotFound }
func (noLock) Watch(context.Context, uint64) (<-chan Event, error) {
	return nil, ErrForbidden
}
func (noLock) String() string { return "nolock" }
