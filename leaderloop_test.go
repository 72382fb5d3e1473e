package leadership

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
)

// The leader loop's decisions that are pure functions of its state, tested
// directly; the loop itself is tested through the elector (elector_test.go).

func TestWithProclaimed(t *testing.T) {
	last := map[string]string{"a": "1", "b": "2"}
	reqs := []proclaimReq{
		{values: map[string]string{"a": "", "c": "3"}},
		{values: map[string]string{"c": "4", "d": "5", "b": ""}},
		{values: map[string]string{"b": "6"}},
	}
	got := withProclaimed(last, reqs)
	if want := map[string]string{"b": "6", "c": "4", "d": "5"}; !maps.Equal(got, want) {
		t.Errorf("withProclaimed = %v, want %v (in order; an empty value deletes)", got, want)
	}
	if want := map[string]string{"a": "1", "b": "2"}; !maps.Equal(last, want) {
		t.Errorf("the last write's values were changed to %v; they must stay %v", last, want)
	}
	got = withProclaimed(nil, []proclaimReq{{values: map[string]string{"x": ""}}})
	if got == nil || len(got) != 0 {
		t.Errorf("deleting from no values = %#v, want an empty map", got)
	}
}

func TestRenewVerdict(t *testing.T) {
	errX := errors.New("x")
	for _, c := range []struct {
		name string
		r    renewResult
		want renewVerdict
	}{
		{"written", renewResult{}, renewWritten},
		{"adopted", renewResult{adopted: true}, renewAdopted},
		{"failed", renewResult{err: errX}, renewFailed},
		{"failed outweighs adopted", renewResult{err: errX, adopted: true}, renewFailed},
		{"lost", renewResult{lost: ErrLockDeleted}, renewLost},
		{"lost outweighs failed", renewResult{lost: ErrLockDeleted, err: errX, adopted: true}, renewLost},
	} {
		if got := c.r.verdict(); got != c.want {
			t.Errorf("%s: verdict = %d, want %d", c.name, got, c.want)
		}
		// The OnRenew hook reports failure(): nil exactly when written.
		if ok := c.r.failure() == nil; ok != (c.want == renewWritten) {
			t.Errorf("%s: failure() = %v, disagrees with verdict %d", c.name, c.r.failure(), c.want)
		}
	}
}

func TestReleaseDue(t *testing.T) {
	stop := errors.New("shutting down")
	for _, c := range []struct {
		name           string
		cause, run     error
		keep           bool
		voluntary, rel bool
	}{
		{"lead returned", ErrLeadReturned, nil, false, true, true},
		{"lead returned an error", fmt.Errorf("%w with an error: %w", ErrLeadReturned, errors.New("boom")), nil, false, true, true},
		{"resigned", ErrResigned, nil, false, true, true},
		{"resigned, keep lock on stop", ErrResigned, nil, true, true, true},
		{"handover", ErrHandover, nil, false, true, true},
		{"lost", fmt.Errorf("%w: holder is now %q", ErrLockLost, "b"), nil, false, false, false},
		{"deleted", ErrLockDeleted, nil, false, false, false},
		{"identity clash", ErrIdentityClash, nil, false, false, false},
		{"validity expired", ErrValidityExpired, nil, false, false, false},
		{"suspended", ErrSuspended, nil, false, false, false},
		{"Run stopped", context.Canceled, context.Canceled, false, false, true},
		{"Run stopped with a cause", stop, stop, false, false, true},
		{"Run stopped, keep lock on stop", context.Canceled, context.Canceled, true, false, false},
		{"lost while Run stops", ErrLockLost, context.Canceled, false, false, false},
		{"expired while Run stops", ErrValidityExpired, context.Canceled, false, false, false},
	} {
		if got := voluntaryEnd(c.cause); got != c.voluntary {
			t.Errorf("%s: voluntaryEnd = %v, want %v", c.name, got, c.voluntary)
		}
		if got := releaseDue(c.cause, c.run, c.keep); got != c.rel {
			t.Errorf("%s: releaseDue = %v, want %v", c.name, got, c.rel)
		}
	}
}
