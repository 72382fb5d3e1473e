package leadership_test

import (
	"strings"
	"testing"

	"github.com/leadership-dev/leadership"
)

func TestJoinHooks(t *testing.T) {
	var got []string
	h := leadership.JoinHooks(
		leadership.Hooks{OnLeader: func(l leadership.Leader) { got = append(got, "1:"+l.Identity) }},
		leadership.Hooks{},
		leadership.Hooks{OnLeader: func(l leadership.Leader) { got = append(got, "2:"+l.Identity) }, OnAttempt: func(error) { got = append(got, "attempt") }},
	)
	h.OnLeader(leadership.Leader{Identity: "a"})
	h.OnAttempt(nil)
	if strings.Join(got, ",") != "1:a,2:a,attempt" {
		t.Errorf("calls %v", got)
	}
	if h.OnRenew != nil {
		t.Error("a hook nobody set must stay nil")
	}
}
