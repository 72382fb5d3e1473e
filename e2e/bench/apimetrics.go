package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// leaseRequests reads apiserver_request_total from the API server's
// /metrics and sums it by verb over requests on coordination.k8s.io Leases.
// The API server records a request when it completes, so a watch counts
// when it ends, not when it opens.
func leaseRequests(ctx context.Context, admin kubernetes.Interface) (map[string]int64, error) {
	body, err := admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the API server's /metrics: %w", err)
	}
	return parseLeaseRequests(string(body))
}

func parseLeaseRequests(text string) (map[string]int64, error) {
	out := map[string]int64{}
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			return nil, fmt.Errorf("malformed metric line %q", line)
		}
		labels, err := parseLabels(line[len("apiserver_request_total{"):end])
		if err != nil {
			return nil, fmt.Errorf("malformed metric line %q: %w", line, err)
		}
		if labels["resource"] != "leases" || labels["group"] != "coordination.k8s.io" {
			continue
		}
		fields := strings.Fields(line[end+1:])
		if len(fields) == 0 {
			return nil, fmt.Errorf("metric line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[labels["verb"]] += int64(v)
	}
	return out, nil
}

// parseLabels parses name="value",… as in the Prometheus text format.
func parseLabels(s string) (map[string]string, error) {
	m := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, fmt.Errorf("bad labels near %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		var b strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated label value near %q", s)
		}
		m[name] = b.String()
		s = strings.TrimPrefix(strings.TrimSpace(s[i+1:]), ",")
	}
	return m, nil
}

// sub returns a − b per key (keys of either).
func sub(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] -= v
	}
	return out
}
