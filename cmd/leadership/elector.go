package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/events"
	"github.com/leadership-dev/leadership/internal/restartflags"
	"github.com/leadership-dev/leadership/kubelease"
	"github.com/leadership-dev/leadership/metrics"
	"github.com/leadership-dev/leadership/podlabel"
)

// electorFlags are the flags of the commands that campaign (run, serve).
type electorFlags struct {
	lease         string
	identity      string
	leaseDuration time.Duration
	renewInterval time.Duration
	retryPeriod   time.Duration
	httpAddr      string
	noEvents      bool
	restart       restartflags.Flags
	labelPodFlags
}

func (f *electorFlags) register(fs *pflag.FlagSet, defaultHTTP string) {
	fs.StringVarP(&f.lease, "lease", "l", "", "name of the Lease the replicas share (required)")
	fs.StringVar(&f.identity, "identity", "", "this replica's identity in the Lease; must be unique (default: host name, i.e. the pod name, plus a random suffix)")
	fs.DurationVar(&f.leaseDuration, "lease-duration", leadership.DefaultLeaseDuration, "how long a crashed leader goes unreplaced; whole seconds, at least 1s")
	fs.DurationVar(&f.renewInterval, "renew-interval", 0, "how often the leader renews (default: lease-duration/3)")
	fs.DurationVar(&f.retryPeriod, "retry-period", 0, "pause after a failed request (default: min(2s, renew-interval/2))")
	fs.StringVar(&f.httpAddr, "http-addr", defaultHTTP, "address for /leader, /healthz, /readyz and /metrics (empty: no HTTP server)")
	fs.BoolVar(&f.noEvents, "no-events", false, "do not record Kubernetes Events on the Lease")
	f.restart.Register(fs)
	f.labelPodFlags.register(fs)
}

// flagOf names the command-line flag behind a Config field.
var flagOf = map[string]string{
	"Identity":      "--identity",
	"LeaseDuration": "--lease-duration",
	"RenewInterval": "--renew-interval",
	"RetryPeriod":   "--retry-period",
	"MaxClockDrift": "MaxClockDrift",
}

// config builds and validates the elector's Config, reporting a bad value
// by its flag.
func (f *electorFlags) config(log *slog.Logger) (leadership.Config, error) {
	if err := checkLeaseName(f.lease); err != nil {
		return leadership.Config{}, err
	}
	id := f.identity
	if id == "" {
		if f.restart.Dir != "" {
			return leadership.Config{}, usageErrorf("--restart-proof-dir needs a stable --identity, the same after a restart of the container: the pod name (--identity=$(POD_NAME) in a pod spec); the default adds a random suffix per process")
		}
		id = leadership.DefaultIdentity()
	}
	cfg := leadership.Config{
		Identity:      id,
		LeaseDuration: f.leaseDuration,
		RenewInterval: f.renewInterval,
		RetryPeriod:   f.retryPeriod,
		Restart:       f.restart.Config(),
		Logger:        log,
	}
	// New, not Validate: it also checks that the restart proof's
	// directory exists.
	if _, err := leadership.New(nopLock{}, cfg); err != nil {
		var ce *leadership.ConfigError
		if errors.As(err, &ce) {
			name := flagOf[ce.Field]
			if n := restartflags.FlagOf(ce.Field); n != "" {
				name = "--" + n
			}
			return cfg, usageErrorf("invalid %s %v: %s", name, ce.Value, ce.Rule)
		}
		return cfg, withCode(exitUsage, err)
	}
	return cfg, nil
}

// campaign is what run and serve share: the connection, the elector with
// its metrics and events, and the HTTP endpoints.
type campaign struct {
	k        *kube
	lock     *kubelease.Lock
	e        *leadership.Elector
	cfg      leadership.Config
	reg      *prometheus.Registry
	events   *events.Recorder
	labeler  *podlabel.Labeler
	api      *apiHealth
	log      *slog.Logger
	identity string
	lease    string // namespace/name
}

func newCampaign(g *globalFlags, f *electorFlags, extra leadership.Hooks) (*campaign, error) {
	cfg, err := f.config(g.log)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api := &apiHealth{}
	var m *metrics.Metrics
	k, err := g.connect(func(ns string, rc *rest.Config) error {
		var err error
		if m, err = metrics.New(reg, ns, f.lease); err != nil {
			return withCode(exitFailure, err)
		}
		api.instrument(rc)
		m.InstrumentConfig(rc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	lock, err := kubelease.New(k.client.CoordinationV1(), k.namespace, f.lease)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	c := &campaign{k: k, lock: lock, reg: reg, api: api, identity: cfg.Identity, lease: k.namespace + "/" + f.lease}
	c.log = g.log.With("lease", c.lease, "identity", cfg.Identity)
	hooks := []leadership.Hooks{m.Hooks(), extra}
	if !f.noEvents {
		c.events = events.NewRecorder(k.client, k.namespace, f.lease, cfg.Identity, g.log)
		hooks = append(hooks, c.events.Hooks())
	}
	if c.labeler, err = f.labelPodFlags.labeler(k, f.lease, cfg); err != nil {
		c.close()
		return nil, err
	}
	if c.labeler != nil {
		hooks = append(hooks, c.labeler.Hooks())
	}
	cfg.Hooks = leadership.JoinHooks(hooks...)
	cfg.Logger = g.log
	if c.e, err = leadership.New(lock, cfg); err != nil {
		return nil, withCode(exitUsage, err)
	}
	c.cfg = c.e.Config()
	return c, nil
}

// close flushes the events (the last one is usually Released).
func (c *campaign) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.labeler != nil {
		c.labeler.Close(ctx) // the label off this Pod: the term has ended
	}
	if c.events != nil {
		c.events.Close(ctx)
	}
}

// apiHealth remembers the outcome of the latest API request, for /readyz:
// a replica that cannot reach the API server, or is refused, is not ready.
type apiHealth struct {
	mu   sync.Mutex
	seen bool
	err  string
}

func (a *apiHealth) instrument(cfg *rest.Config) {
	prev := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if req.Context().Err() != nil {
				return resp, err // our own cancellation says nothing
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			a.seen = true
			switch {
			case err != nil:
				a.err = fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err)
			case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode >= 500:
				a.err = fmt.Sprintf("%s %s: HTTP %d", req.Method, req.URL.Path, resp.StatusCode)
			default:
				a.err = ""
			}
			return resp, err
		})
	}
}

func (a *apiHealth) ready() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !a.seen:
		return errors.New("no answer from the API server yet")
	case a.err != "":
		return fmt.Errorf("the last API request failed: %s", a.err)
	}
	return nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// describe is a one-line summary of the timing, for the start-up log.
func describe(cfg leadership.Config) string {
	return strings.Join([]string{
		"lease " + cfg.LeaseDuration.String(),
		"renew every " + cfg.RenewInterval.String(),
		"retry " + cfg.RetryPeriod.String(),
	}, ", ")
}
