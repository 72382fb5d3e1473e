package main

import (
	"bytes"
	"encoding/json"
	"github.com/leadership-dev/leadership/e2e/internal/modversion"
	"io"
	"net/http"
	"strings"
)

// clientGoVersion is the version of client-go built in.
func clientGoVersion() string { return modversion.Of("k8s.io/client-go") }

// denyWatch wraps a transport so that every watch request gets the API
// server's answer to a Role without the verb watch: 403 Forbidden with a
// Status body, which client-go turns into a Forbidden StatusError. Other
// requests pass through.
func denyWatch(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if w := req.URL.Query().Get("watch"); w != "true" && w != "1" {
			return rt.RoundTrip(req)
		}
		resource := "leases"
		if parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/"); len(parts) > 0 {
			resource = parts[len(parts)-1]
		}
		body, _ := json.Marshal(map[string]any{
			"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
			"status":  "Failure",
			"message": resource + ".coordination.k8s.io is forbidden: cannot watch resource (denied by the candidate's -deny-watch)",
			"reason":  "Forbidden",
			"details": map[string]any{"group": "coordination.k8s.io", "kind": resource},
			"code":    http.StatusForbidden,
		})
		return &http.Response{
			Status:        "403 Forbidden",
			StatusCode:    http.StatusForbidden,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Content-Type": []string{"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       req,
		}, nil
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
