package main

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := []string{"-kubeconfig", "k", "-lease", "l", "-identity", "i", "-ledger", "127.0.0.1:1"}
	o, err := parse(good)
	if err != nil {
		t.Fatal(err)
	}
	if o.fleet != "l" || o.impl != "leadership" {
		t.Fatalf("defaults: fleet %q impl %q", o.fleet, o.impl)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"-impl", "etcd"}, good...), `-impl "etcd"`},
		{[]string{"-lease", "l"}, "are required"},
		{append([]string{"-tick", "0s"}, good...), "tick > 0"},
		{append([]string{"-margin", "-1s"}, good...), "margin ≥ 0"},
		{append(good, "extra"), "unexpected arguments"},
		{append([]string{"-tick", "soon"}, good...), "invalid value"},
	} {
		if _, err := parse(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q) = %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
