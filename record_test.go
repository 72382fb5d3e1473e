package leadership

import (
	"testing"
	"time"
)

func TestTermToken(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		r    Record
		want uint64
	}{
		{"acquiring write: its own version", Record{HolderIdentity: "a", Instance: "i", AcquireTime: at, RenewTime: at, Version: 70}, 70},
		{"renewal: the published token", Record{HolderIdentity: "a", Instance: "i", AcquireTime: at, RenewTime: at.Add(time.Second), Token: 70, Version: 75}, 70},
		{"released", Record{Instance: "i", AcquireTime: at, RenewTime: at, Version: 80, Released: 70}, 0},
		{"client-go holder", Record{HolderIdentity: "a", AcquireTime: at, RenewTime: at, Version: 90}, 0},
		{"client-go renewal", Record{HolderIdentity: "a", AcquireTime: at, RenewTime: at.Add(time.Second), Version: 91}, 0},
	}
	for _, c := range cases {
		if got := c.r.TermToken(); got != c.want {
			t.Errorf("%s: TermToken() = %d, want %d", c.name, got, c.want)
		}
	}
}
