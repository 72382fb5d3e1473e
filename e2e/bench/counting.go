package bench

import (
	"maps"
	"net/http"
	"strings"
	"sync"
)

// countingTransport counts the requests a client sends to Leases, by the
// verb the API server reports in apiserver_request_total, so that the two
// can be compared. A request counts once it got a response (a watch: once
// its stream opened); one that failed before that counts as "failed".
type countingTransport struct {
	next http.RoundTripper
	c    *counts
}

type counts struct {
	mu sync.Mutex
	m  map[string]int64
}

func newCounts() *counts { return &counts{m: map[string]int64{}} }

func (c *counts) add(k string) {
	c.mu.Lock()
	c.m[k]++
	c.mu.Unlock()
}

func (c *counts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := verbOf(req)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.c.add("failed")
	} else {
		t.c.add(verb)
	}
	return resp, err
}

// verbOf names a request as the API server's metrics do: GET of one object,
// LIST and WATCH of a collection, PUT, POST, DELETE, PATCH. Requests that
// are not about Leases are "other".
func verbOf(req *http.Request) string {
	// /apis/coordination.k8s.io/VERSION[/namespaces/NS]/leases[/NAME]
	seg := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(seg) < 4 || seg[0] != "apis" || seg[1] != "coordination.k8s.io" {
		return "other"
	}
	rest := seg[3:]
	if rest[0] == "namespaces" && len(rest) >= 3 {
		rest = rest[2:]
	}
	if rest[0] != "leases" || len(rest) > 2 {
		return "other"
	}
	named := len(rest) == 2
	switch req.Method {
	case http.MethodGet:
		switch w := req.URL.Query().Get("watch"); {
		case w == "true" || w == "1":
			return "WATCH"
		case named:
			return "GET"
		}
		return "LIST"
	case http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch:
		return req.Method
	}
	return "other"
}
