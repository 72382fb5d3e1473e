package leadership

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Identity: "a"}.validated()
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseDuration != 15*time.Second || c.RenewInterval != 5*time.Second || c.RetryPeriod != 2*time.Second ||
		c.MaxClockDrift != 0.01 || !c.releaseOnStop() || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
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
		{"negative drift", Config{Identity: "a", MaxClockDrift: -0.1}, "MaxClockDrift", "[0, 0.5)"},
		{"big drift", Config{Identity: "a", MaxClockDrift: 0.5}, "MaxClockDrift", "[0, 0.5)"},
		{"NaN drift", Config{Identity: "a", MaxClockDrift: math.NaN()}, "MaxClockDrift", ""},
		{"negative renew", Config{Identity: "a", RenewInterval: -time.Second}, "RenewInterval", "positive"},
		{"renew too long", Config{Identity: "a", RenewInterval: 8 * time.Second}, "RenewInterval", "two renewals"},
		{"renew equals lease", Config{Identity: "a", RenewInterval: 15 * time.Second}, "RenewInterval", "two renewals"},
		{"negative retry", Config{Identity: "a", RetryPeriod: -1}, "RetryPeriod", "at least 1ms"},
		{"retry above renew", Config{Identity: "a", RetryPeriod: 6 * time.Second}, "RetryPeriod", "must not exceed RenewInterval"},
		{"sub-millisecond retry", Config{Identity: "a", RetryPeriod: 500 * time.Microsecond}, "RetryPeriod", "at least 1ms"},
		{"infinite drift", Config{Identity: "a", MaxClockDrift: math.Inf(1)}, "MaxClockDrift", "[0, 0.5)"},
		{"negative infinite drift", Config{Identity: "a", MaxClockDrift: math.Inf(-1)}, "MaxClockDrift", "[0, 0.5)"},
		{"lease beyond leaseDurationSeconds", Config{Identity: "a", LeaseDuration: maxLeaseDuration + time.Second}, "LeaseDuration", "must fit leaseDurationSeconds"},
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
			if _, err := New(newMemLock(), c.cfg); err == nil {
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

func TestDecide(t *testing.T) {
	h := newHarness(t)
	e := h.elector("me", newMemLock(), nil)
	t0 := h.start
	held := func(holder string, d time.Duration) observation {
		return observation{known: true, exists: true, version: 7, at: t0,
			rec: Record{HolderIdentity: holder, LeaseDuration: d, Version: 7, Instance: "x"}}
	}
	own := held("me", 15*time.Second)
	own.rec.Instance = e.instance
	cases := []struct {
		name string
		o    observation
		now  time.Time
		act  action
		wait time.Duration
	}{
		{"nothing observed yet", observation{}, t0, actWait, 0},
		{"no lock", observation{known: true}, t0, actCreate, 0},
		{"held, fresh", held("x", 15*time.Second), t0.Add(5 * time.Second), actWait, 10 * time.Second},
		{"held, 1ns short", held("x", 15*time.Second), t0.Add(15*time.Second - 1), actWait, 1},
		{"held, expired exactly", held("x", 15*time.Second), t0.Add(15 * time.Second), actTake, 0},
		{"holder's own shorter lease", held("x", 3*time.Second), t0.Add(3 * time.Second), actTake, 0},
		{"zero duration reads as ours", held("x", 0), t0.Add(14 * time.Second), actWait, time.Second},
		{"negative duration reads as ours", held("x", -time.Hour), t0.Add(15 * time.Second), actTake, 0},
		{"released", held("", time.Second), t0, actTake, 0},
		{"own leftover", own, t0, actTake, 0},
		{"same identity, other process", held("me", 15*time.Second), t0, actWait, 15 * time.Second},
		{"deleted while held by another", observation{known: true, heldUntil: t0.Add(15 * time.Second)}, t0.Add(time.Second), actWait, 14 * time.Second},
		{"deleted, holder's lease over", observation{known: true, heldUntil: t0.Add(15 * time.Second)}, t0.Add(15 * time.Second), actCreate, 0},
		{"deleted while we held it", observation{known: true, heldUntil: t0.Add(15 * time.Second), prevOwn: true}, t0, actCreate, 0},
	}
	rel := held("", time.Second)
	rel.rec.PreferredHolder = "other"
	cases = append(cases,
		struct {
			name string
			o    observation
			now  time.Time
			act  action
			wait time.Duration
		}{"released to another", rel, t0.Add(time.Second), actWait, 4 * time.Second},
		struct {
			name string
			o    observation
			now  time.Time
			act  action
			wait time.Duration
		}{"released to another, grace over", rel, t0.Add(5 * time.Second), actTake, 0})
	for _, c := range cases {
		act, wait := e.decide(c.o, c.now)
		if act != c.act || wait != c.wait {
			t.Errorf("%s: got %v %v, want %v %v", c.name, act, wait, c.act, c.wait)
		}
	}
}
