package credentials

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Everything that talks to PostgreSQL or Kubernetes is tested for real in
// e2e/credentials; these are the pure parts.

func TestRoleNameDeterministicAndValid(t *testing.T) {
	uid := types.UID("0b5e8d52-6c1f-4f38-9a53-1c2f0e4d7a10")
	if a, b := RoleName("pod_", uid), RoleName("pod_", uid); a != b {
		t.Fatalf("not deterministic: %s %s", a, b)
	}
	if RoleName("pod_", uid) == RoleName("pod_", "0b5e8d52-6c1f-4f38-9a53-1c2f0e4d7a11") {
		t.Fatal("two UIDs, one role")
	}
	odd := RoleName("pod_", "NOT-a-uuid; DROP ROLE x")
	if !strings.HasPrefix(odd, "pod_") || len(odd) != 4+32 || !hex32.MatchString(odd[4:]) {
		t.Fatalf("a non-UUID UID gives %q, want pod_ and 32 hex digits", odd)
	}
	long := strings.Repeat("p", 31)
	if n := RoleName(long, uid); len(n) > 63 {
		t.Fatalf("role name %d bytes, beyond PostgreSQL's 63", len(n))
	}
}

func TestSecretName(t *testing.T) {
	if got := SecretName("web-0"); got != "web-0-db-credentials" {
		t.Fatal(got)
	}
	long := strings.Repeat("a", 250)
	a, b := SecretName(long), SecretName(long[:249]+"b")
	if len(a) > 253 || len(validation.IsDNS1123Subdomain(a)) > 0 {
		t.Fatalf("%q is not a valid Secret name", a)
	}
	if a == b {
		t.Fatal("two long pod names share a Secret")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Namespace: "apps"}, ""},
		{Config{}, "Namespace is required"},
		{Config{Namespace: "Apps"}, "not a namespace name"},
		{Config{Namespace: "apps", Annotation: "not an annotation"}, "not an annotation name"},
		{Config{Namespace: "apps", TTL: 2 * time.Second}, "at least 3s"},
		{Config{Namespace: "apps", SweepInterval: -time.Second}, "must not be negative"},
		{Config{Namespace: "apps", RolePrefix: "Pod-"}, "RolePrefix"},
		{Config{Namespace: "apps", RolePrefix: strings.Repeat("p", 32)}, "RolePrefix"},
	} {
		err := tc.c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	c := Config{Namespace: "apps"}.withDefaults()
	if c.TTL != time.Hour || c.Annotation != DefaultAnnotation || c.RolePrefix != "pod_" || c.SweepInterval != 5*time.Minute {
		t.Fatalf("defaults %+v", c)
	}
}

func TestCheckBaseRole(t *testing.T) {
	for v, ok := range map[string]bool{
		"app": true, "_x1": true, "app_readers": true,
		"": false, "App": false, "1app": false, `app"; DROP ROLE x; --`: false, strings.Repeat("a", 64): false,
	} {
		if err := checkBaseRole(DefaultAnnotation, v); (err == nil) != ok {
			t.Errorf("base role %q: %v", v, err)
		}
	}
}

func TestStaleTokenError(t *testing.T) {
	err := error(&StaleTokenError{Op: "claim", Token: 1, Highest: 2})
	if !errors.Is(err, ErrStaleToken) {
		t.Fatal("not ErrStaleToken")
	}
}

func TestPasswords(t *testing.T) {
	a, b := newPassword(), newPassword()
	if a == b || len(a) != 48 {
		t.Fatalf("passwords %q %q", a, b)
	}
	if passwordHash(a) == passwordHash(b) || len(passwordHash(a)) != 64 {
		t.Fatal("hashes")
	}
}
