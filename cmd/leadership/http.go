package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// leaderJSON is GET /leader's answer.
type leaderJSON struct {
	// Name is the holder's identity ("" when the Lease is free).
	Name string `json:"name"`
	// Self is this replica's identity.
	Self string `json:"self"`
	// Leader is true while this replica leads.
	Leader bool `json:"leader"`
	// Token is the holder's fencing token (0 until it is published).
	Token uint64 `json:"token"`
	// ValidForSeconds is, while this replica leads, how long its term stays
	// valid if no renewal succeeds from now on.
	ValidForSeconds float64 `json:"validForSeconds,omitempty"`
}

// serveHTTP listens on addr and serves the campaign's endpoints until ctx
// is done. The listener is opened before it returns, so a bad or busy
// address is reported at start-up.
func (c *campaign) serveHTTP(ctx context.Context, addr string, readyWhenLeader bool) (<-chan error, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /leader", func(w http.ResponseWriter, r *http.Request) {
		l := c.e.Leader()
		out := leaderJSON{Name: l.Identity, Self: c.identity, Leader: l.Self, Token: l.Token}
		if t, ok := c.e.Term(); ok {
			out.ValidForSeconds = max(0, t.Remaining().Seconds())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := c.e.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		err := c.e.Healthy()
		if err == nil {
			err = c.api.ready()
		}
		if err == nil && readyWhenLeader && !c.e.Leader().Self {
			err = errors.New("not the leader")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageErrorf("cannot listen on --http-addr %q: %v", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	c.log.Info("serving HTTP", "addr", ln.Addr().String(), "endpoints", "/leader /healthz /readyz /metrics")
	return done, nil
}
