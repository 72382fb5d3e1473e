package bench

import (
	"math"
	"slices"
	"time"
)

// Dist summarises a sample of durations, in milliseconds. Percentiles are
// nearest-rank: each is a value that was actually observed, so with n
// samples p99 is the ⌈0.99·n⌉-th smallest (the maximum when n ≤ 100).
type Dist struct {
	N         int       `json:"n"`
	MinMS     float64   `json:"min_ms"`
	P50MS     float64   `json:"p50_ms"`
	P90MS     float64   `json:"p90_ms"`
	P99MS     float64   `json:"p99_ms"`
	MaxMS     float64   `json:"max_ms"`
	MeanMS    float64   `json:"mean_ms"`
	SamplesMS []float64 `json:"samples_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// newDist summarises ds. An empty sample gives N = 0 and zero statistics
// (never NaN), so that the JSON stays valid.
func newDist(ds []time.Duration) Dist {
	s := make([]float64, len(ds))
	for i, d := range ds {
		s[i] = ms(d)
	}
	return distOf(s)
}

func distOf(samples []float64) Dist {
	d := Dist{N: len(samples), SamplesMS: append([]float64{}, samples...)}
	if d.N == 0 {
		return d
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	d.MinMS, d.MaxMS = s[0], s[len(s)-1]
	d.P50MS, d.P90MS, d.P99MS = rank(s, 0.50), rank(s, 0.90), rank(s, 0.99)
	d.MeanMS = sum / float64(len(s))
	return d
}

// rank is the nearest-rank percentile of sorted s (0 < p ≤ 1).
func rank(s []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
