package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client sends a candidate's writes and events to a Server.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the ledger at addr (host:port on loopback).
func NewClient(addr string) (*Client, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ledger: address %q: want host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("ledger: address %q is not on loopback; the suite runs on one host only (its timestamps are CLOCK_MONOTONIC)", addr)
	}
	return &Client{
		base: "http://" + addr,
		http: &http.Client{Transport: &http.Transport{
			// One leader writes every few tens of milliseconds: keep the
			// connection.
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
		}},
	}, nil
}

// Write sends w and returns the store's decision.
func (c *Client) Write(ctx context.Context, w Write) (Result, error) {
	var r Result
	err := c.post(ctx, "/write", w, &r)
	return r, err
}

// Event sends e.
func (c *Client) Event(ctx context.Context, e Event) error {
	return c.post(ctx, "/event", e, nil)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("ledger: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("ledger: POST %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("ledger: POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("ledger: POST %s: response: %w", path, err)
	}
	return nil
}
