package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
		{append([]string{"-clock-rate", "2"}, good...), "want a rate within"},
		{append([]string{"-clock-rate", "NaN"}, good...), "want a rate within"},
		{append([]string{"-impl", "client-go", "-clock-rate", "1.01"}, good...), "no clock to replace"},
	} {
		if _, err := parse(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q) = %v, want an error containing %q", c.args, err, c.want)
		}
	}
}

func TestClockRate(t *testing.T) {
	good := []string{"-kubeconfig", "k", "-lease", "l", "-identity", "i", "-ledger", "127.0.0.1:1", "-clock-rate", "0.995"}
	if o, err := parse(good); err != nil || o.clockRate != 0.995 {
		t.Fatalf("parse(%q): %v, rate %v; want rate 0.995", good, err, o.clockRate)
	}
}

// A watch through the denying transport fails as a Role without the verb
// does (Forbidden); a get goes through.
func TestDenyWatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"l","namespace":"default","resourceVersion":"7"}}`)
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(denyWatch)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := cs.CoordinationV1().Leases("default").Get(ctx, "l", metav1.GetOptions{})
	if err != nil || l.ResourceVersion != "7" {
		t.Fatalf("get: %v %v", l, err)
	}
	_, err = cs.CoordinationV1().Leases("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=l"})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("watch: %v, want Forbidden", err)
	}
}
