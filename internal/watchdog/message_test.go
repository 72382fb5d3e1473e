package watchdog

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseMessage(t *testing.T) {
	for _, c := range []struct {
		line string
		want message
	}{
		{"deadline 1 100 200 30", message{kind: "deadline", seq: "1", deadline: Deadline{Mono: 100, Boot: 200}, grace: 30}},
		{"deadline 2 100 200 0", message{kind: "deadline", seq: "2", deadline: Deadline{Mono: 100, Boot: 200}}},
		{"  stop   3  5000000000 ", message{kind: "stop", seq: "3", grace: 5 * time.Second}},
		{"stop 4 0", message{kind: "stop", seq: "4"}},
		{"signal 5 15", message{kind: "signal", seq: "5", signal: syscall.SIGTERM}},
		{"signal 6 64", message{kind: "signal", seq: "6", signal: 64}},
	} {
		got, err := parseMessage(c.line)
		if err != nil || got != c.want {
			t.Errorf("parseMessage(%q) = %+v, %v; want %+v", c.line, got, err, c.want)
		}
	}
	for _, line := range []string{
		"",
		"deadline",
		"deadline x 1 2 3",           // sequence number not a number
		"deadline -1 1 2 3",          // nor negative
		"deadline 1 1 2",             // a field missing
		"deadline 1 1 2 3 4",         // one too many
		"deadline 1 1 2 -3",          // negative grace
		"deadline 1 soon 2 3",        // not a number
		"stop 1",                     // no grace
		"stop 1 -1",                  // negative grace
		"signal 1 0",                 // no such signal
		"signal 1 65",                // out of range
		"signal 1 9 9",               // one too many
		"kill 1 9",                   // no such message
		"DEADLINE 1 1 2 3",           // kinds are lower case
		"deadline 1 1 2 3000000000x", // trailing garbage
	} {
		m, err := parseMessage(line)
		if err == nil {
			t.Errorf("parseMessage(%q) = %+v, want an error", line, m)
		} else if !strings.Contains(err.Error(), "malformed message") {
			t.Errorf("parseMessage(%q): error %q does not say the message is malformed", line, err)
		}
	}
}
